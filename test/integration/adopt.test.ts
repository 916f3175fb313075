import { describe, expect, it } from 'vitest';
import { readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { attachRunning, type RunningVm } from '../../src/vm/launcher.js';
import { enginePair, type EnginePair } from '../support/engines.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('adopt');
const ADMIN = { bps_wr: 6 * MiB, iops: 400, iops_max: 800 };

/** The test's own guest with the admin's limits, its monitor handed to the engine. */
async function adoptedGuest(pair: EnginePair): Promise<{ vm: RunningVm; serialLog: string }> {
  const disk = scope().path('disk.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
  const own = await scope().bootGuest('g1', disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 3 });
  await own.commands.setIoThrottle('vdisk0/virtio-backend', ADMIN);
  await own.qmp.disconnect();
  const vm = await attachRunning(own.spec, own.child.pid as number);
  await pair.source.adoptVm(vm);
  return { vm, serialLog: own.spec.serialLog };
}

describe("a VM the test started itself, adopted by the engine, keeps the admin's I/O limits", { timeout: 240_000 }, () => {
  it("under cowbuf's cap while it migrates, and exactly as set after a rollback", async () => {
    const pair = await enginePair(scope(), 128 * MiB);
    try {
      const { vm } = await adoptedGuest(pair);
      const capped: number[] = [];
      const first = pair.source.migrate('g1', 'dst');
      pair.source.on('migration', (record) => {
        if (record.id === first.id && record.phase === 'mirror' && capped.length === 0) {
          capped.push(0);
          void vm.commands.queryIoThrottles().then(([limits]) => {
            capped[0] = limits?.bps_wr ?? 0;
            pair.source.cancel(first.id);
          });
        }
      });
      expect((await pair.source.waitFor(first.id)).phase).toBe('cancelled');
      expect(capped[0]).toBeGreaterThan(0);
      expect(capped[0]).toBeLessThanOrEqual(ADMIN.bps_wr);
      expect((await vm.commands.queryIoLimits())[0]?.limits).toMatchObject(ADMIN);
    } finally {
      await pair.close();
    }
  });

  it('on the target once the guest runs there', async () => {
    const pair = await enginePair(scope(), 128 * MiB);
    try {
      const { serialLog } = await adoptedGuest(pair);
      const done = await pair.source.waitFor(pair.source.migrate('g1', 'dst').id);
      expect(done.phase, done.error).toBe('completed');
      const arrived = pair.target.vms.get('g1');
      expect(await arrived?.commands.queryIoLimits()).toEqual([{ qdev: expect.stringContaining('vdisk0'), limits: expect.objectContaining(ADMIN) }]);
      const onTarget = await waitForSerial(arrived?.spec.serialLog ?? '', (r) => r.verifications.length >= 2, 'two verifications on the target', { timeoutMs: 60_000 });
      expect(onTarget.verifications.every((v) => v.lost === 0)).toBe(true);
      expect((await readSerial(serialLog)).ioErrors).toEqual([]);
    } finally {
      await pair.close();
    }
  });
});
