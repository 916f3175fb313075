import { describe, expect, it } from 'vitest';
import { startDaemonPair } from '../../src/testbed/daemons.js';
import { waitForSerial } from '../../src/testbed/guest.js';
import { attachVm } from '../../src/vm/launcher.js';
import { migrateWithFault, outcome } from '../support/faults.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('adopted-restart');
const ADMIN = { bps_wr: 6 * MiB, iops: 400, iops_max: 800 };

describe('an adopted VM whose daemon is SIGKILLed mid-migration', { timeout: 240_000 }, () => {
  it("is rolled back by the restarted daemon with the admin's I/O limits back as they were, and writes on", async () => {
    const pair = await startDaemonPair({ dir: scope().dir, bufferSize: 128 * MiB, linkRate: '100mbit' });
    try {
      const disk = scope().path('g1.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
      // A QEMU the test starts itself on the source host, with limits of its own, then hands over.
      const own = await scope().bootGuest('g1', disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 2 }, { netns: pair.hosts.src.ns });
      await own.commands.setIoThrottle('vdisk0/virtio-backend', ADMIN);
      await own.qmp.disconnect();
      const { name, memoryMiB, kernel, initrd, append, qmpSocket, serialLog } = own.spec;
      // The daemon's namespace has a /proc/net/unix of its own: the pid is given.
      await pair.source.api.call('POST', '/1.0/vms/adopt', { name, memoryMiB, kernel, initrd, append, disks: [{ id: 'vdisk0', nodeName: 'disk0', file: disk }], qmpSocket, serialLog, pid: own.child.pid });

      const id = await migrateWithFault(pair, 'g1', 'mirror', () => pair.kill('source'));
      await pair.restart('source');
      const record = await outcome(pair, id);
      expect(record.phase).toBe('failed');
      expect(record.error).toMatch(/^cowbufd restarted during phase \w+: rolled back, the VM runs here$/);
      const before = (await waitForSerial(serialLog, () => true, 'the console')).verifications.length;
      const after = await waitForSerial(serialLog, (r) => r.verifications.length >= before + 2, 'two more verifications at the source', { timeoutMs: 60_000 });
      expect(after.verifications.every((v) => v.lost === 0)).toBe(true);
      expect(after.ioErrors).toEqual([]);

      // Its monitor back from the daemon (killed again) to read the limits as QEMU has them.
      await pair.kill('source');
      const vm = await attachVm(own.spec, own.child.pid as number, own.accel);
      try {
        expect((await vm.commands.queryIoLimits())[0]?.limits).toMatchObject(ADMIN);
        expect((await vm.commands.queryStatus()).running).toBe(true);
      } finally {
        await vm.qmp.disconnect();
      }
    } finally {
      await pair.close();
    }
  });
});
