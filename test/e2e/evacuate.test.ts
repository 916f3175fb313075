import { describe, expect, it } from 'vitest';
import type { EvacuationRecord } from '../../src/evacuation/progress.js';
import { startDaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, waitForSerial } from '../../src/testbed/guest.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('evacuate');

describe('evacuating a host', { timeout: 400_000 }, () => {
  it('moves every busy guest to the trusted peer within its incoming limit, each with every write kept', async () => {
    // The target takes one incoming migration at a time: the batch must respect that, not a constant.
    const pair = await startDaemonPair({ dir: scope().dir, bufferSize: 128 * MiB, linkRate: '200mbit', migration: { maxIncoming: 1 } });
    try {
      const names = ['g1', 'g2', 'g3'];
      for (const name of names) {
        const disk = scope().path(`${name}.qcow2`);
        await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
        const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', guestVmBody(name, disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 3 }, 128));
        await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > 1, `heartbeats of ${name}`);
      }
      let mostAtOnce = 0;
      const events = new AbortController();
      const watching = pair.source.api.events((event) => {
        if (event.type !== 'evacuation') return;
        const running = (event.metadata as EvacuationRecord).vms.filter((vm) => vm.outcome === 'running').length;
        mostAtOnce = Math.max(mostAtOnce, running);
      }, events.signal);
      const started = await pair.source.api.call<EvacuationRecord>('POST', '/1.0/evacuations', {});
      let batch = started;
      for (let i = 0; batch.status === 'running' || batch.status === 'cancelling'; i += 1) {
        expect(i, 'the evacuation never ended').toBeLessThan(1200);
        await new Promise((resolve) => setTimeout(resolve, 250));
        batch = await pair.source.api.call<EvacuationRecord>('GET', `/1.0/evacuations/${started.id}`);
      }
      events.abort();
      await watching.catch(() => undefined);
      expect(batch.status, JSON.stringify(batch)).toBe('done');
      expect(batch.total).toMatchObject({ moved: 3, failed: 0, left: 0 });
      expect(mostAtOnce).toBeGreaterThan(0);
      expect(mostAtOnce).toBeLessThanOrEqual(1);
      expect(await pair.source.api.call('GET', '/1.0/vms')).toEqual([]);
      const arrived = await pair.target.api.call<Array<{ name: string; serialLog: string }>>('GET', '/1.0/vms');
      expect(arrived.map((vm) => vm.name).sort()).toEqual(names);
      for (const vm of arrived) {
        const serial = await waitForSerial(vm.serialLog, (r) => r.verifications.length >= 2, `two verifications of ${vm.name} on the target`, { timeoutMs: 90_000 });
        expect(serial.verifications.every((v) => v.lost === 0)).toBe(true);
        expect(serial.ioErrors).toEqual([]);
      }
    } finally {
      await pair.close();
    }
  });
});
