import { describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import type { MigrationRecord } from '../../src/migration/engine.js';
import { startDaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('multi-disk');

describe('a guest with two disks on two buses', { timeout: 300_000 }, () => {
  it('migrates under the write throttle with a ledger on each disk, and every write is kept on both', async () => {
    const pair = await startDaemonPair({ dir: scope().dir, bufferSize: 128 * MiB, linkRate: '100mbit' });
    try {
      const [root, data] = [scope().path('root.qcow2'), scope().path('data.raw')];
      await qemuImg('create', '-q', '-f', 'qcow2', root, '64M');
      // A raw disk with a hole: only its data crosses, and it arrives as sparse.
      await run('truncate', ['-s', '64M', data]);
      await run('qemu-io', ['-f', 'raw', '-c', 'write -P 5 16M 4M', data]);
      const body = guestVmBody('g1', root, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 3, disk2: 'sda' }, 192);
      const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', { ...body, disks: [...(body.disks as object[]), { id: 'sdisk0', file: data, format: 'raw', bus: 'virtio-scsi' }] });
      await waitForSerial(vm.serialLog, (r) => r.verifications.length > 0 && r.disk2Verifications.length > 0, 'a ledger round on each disk');
      const throttled = new Set<string>();
      const events = new AbortController();
      const watching = pair.source.api.events((event) => {
        const record = event.metadata as MigrationRecord;
        if (event.type === 'migration' && (record.buffer?.throttle ?? 0) > 0) throttled.add(record.phase);
      }, events.signal);
      const started = await pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm: 'g1', target: 'dst' });
      const record = (await pair.source.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${started.id}/wait`)).metadata;
      events.abort();
      await watching.catch(() => undefined);
      expect(record.phase, record.error).toBe('completed');
      expect(throttled.size).toBeGreaterThan(0);
      const [arrived] = await pair.target.api.call<Array<{ serialLog: string }>>('GET', '/1.0/vms');
      const onTarget = await waitForSerial(arrived?.serialLog ?? '', (r) => r.verifications.length >= 2 && r.disk2Verifications.length >= 2, 'two ledger rounds on each disk on the target', { timeoutMs: 120_000 });
      expect([...onTarget.verifications, ...onTarget.disk2Verifications].every((v) => v.lost === 0)).toBe(true);
      expect(onTarget.ioErrors).toEqual([]);
      expect((await readSerial(vm.serialLog)).ioErrors).toEqual([]);
    } finally {
      await pair.close();
    }
  });
});
