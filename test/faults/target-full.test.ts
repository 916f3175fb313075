import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import { guestVm, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { enginePair } from '../support/engines.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('target-full');

describe('the target out of disk space', { timeout: 180_000 }, () => {
  it('refuses the base it cannot hold: the migration fails naming it, the guest writes on at the source, the target keeps nothing', async () => {
    const pair = await enginePair(scope(), 128 * MiB, {}, { targetQuota: 12 * MiB });
    try {
      const disk = scope().path('g1.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
      await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 3 32M 24M', disk]);
      const vm = await pair.source.launchVm(guestVm({ name: 'g1', dir: scope().dir, disk: { file: disk, format: 'qcow2' }, workload: { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 3 } }));
      await waitForSerial(vm.spec.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats on the source');
      const record = pair.source.migrate('g1', 'dst');
      const done = await pair.source.waitFor(record.id);
      expect(done.phase).toBe('failed');
      expect(done.error).toMatch(new RegExp(`^migration ${record.id} failed in phase base: target refused base of vdisk0: .*(EDQUOT|ENOSPC|quota|space)`, 'i'));
      expect(await vm.commands.queryStatus()).toMatchObject({ running: true });
      const before = (await readSerial(vm.spec.serialLog)).verifications.length;
      const after = await waitForSerial(vm.spec.serialLog, (r) => r.verifications.length >= before + 2, 'verifications after the rollback');
      expect(after.verifications.every((v) => v.lost === 0)).toBe(true);
      expect(after.ioErrors).toEqual([]);
      expect(pair.source.loop.partition.bins).toEqual([]);
      expect(pair.target.vms.size).toBe(0);
      expect(await readdir(scope().path('target/vms')).catch(() => [])).toEqual([]);
    } finally {
      await pair.close();
    }
  });
});
