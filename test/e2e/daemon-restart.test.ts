/**
 * `systemctl restart cowbufd` (an upgrade, a config change) must not touch the guests: the daemon
 * stops with SIGTERM, its QEMUs run on without it, and the next daemon reattaches to them.
 */
import { describe, expect, it } from 'vitest';
import { processAlive } from '../../src/exec/run.js';
import { startDaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('daemon-restart');

interface VmView {
  readonly name: string;
  readonly running: boolean;
  readonly pid: number;
  readonly serialLog: string;
}

describe('cowbufd stopped and started again', { timeout: 180_000 }, () => {
  it('its guest runs on while no daemon runs, and the next daemon reattaches to the same QEMU', async () => {
    const pair = await startDaemonPair({ dir: scope().dir, bufferSize: 64 * MiB });
    try {
      const disk = scope().path('g1.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
      const vm = await pair.source.api.call<VmView>('POST', '/1.0/vms', guestVmBody('g1', disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 1, verifyEvery: 3 }, 128));
      await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats before the stop');

      const stopping = pair.source;
      stopping.child.kill('SIGTERM');
      expect(await stopping.child.exited).toMatchObject({ exitCode: 0 });
      expect(processAlive(vm.pid)).toBe(true);
      const alone = (await readSerial(vm.serialLog)).heartbeats.length;
      await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > alone + 1, 'heartbeats with no daemon running');

      const restarted = await pair.restart('source');
      const [listed] = await restarted.api.call<VmView[]>('GET', '/1.0/vms');
      expect(listed).toMatchObject({ name: 'g1', running: true, pid: vm.pid });
      const before = (await readSerial(vm.serialLog)).verifications.length;
      const after = await waitForSerial(vm.serialLog, (r) => r.verifications.length >= before + 2, 'verifications under the next daemon', { timeoutMs: 60_000 });
      expect(after.verifications.every((v) => v.lost === 0)).toBe(true);
      expect(after.ioErrors).toEqual([]);
    } finally {
      await pair.close();
    }
  });
});
