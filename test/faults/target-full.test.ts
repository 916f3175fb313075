import { describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import { guestVm, waitForSerial } from '../../src/testbed/guest.js';
import { enginePair, expectKeptAtSource } from '../support/engines.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('target-full');

describe('the target out of disk space', { timeout: 180_000 }, () => {
  // The target's preflight refuses before anything moves: the disks' virtual size is what their
  // images can grow to there once the mirror writes into them.
  it('refuses the disks it cannot hold before anything moves, naming the numbers: the guest writes on at the source, the target keeps nothing', async () => {
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
      expect(done.error).toMatch(new RegExp(`^migration ${record.id} failed in phase prepare: peer dst: target cannot take g1: short of disk at \\S+: [\\d.]+ MiB \\(\\d+ bytes\\) free, its bases need up to 64\\.0 MiB \\(67108864 bytes: vdisk0 67108864\\)$`));
      await expectKeptAtSource(pair, vm, scope().path('target/vms'));
    } finally {
      await pair.close();
    }
  });
});
