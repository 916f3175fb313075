import { stat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { guestVm, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { enginePair } from '../support/engines.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('qmp-lost');

describe('the QMP connection to the source QEMU lost mid-migration', { timeout: 180_000 }, () => {
  it.each(['mirror', 'ram'])('in %s: the engine reconnects to the monitor and rolls back; the guest runs on with every write', async (phase) => {
    const pair = await enginePair(scope(), 128 * MiB);
    try {
      const disk = scope().path('disk.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
      const vm = await pair.source.launchVm(guestVm({ name: 'g1', dir: scope().dir, disk: { file: disk, format: 'qcow2' }, workload: { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 2 } }));
      await waitForSerial(vm.spec.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats on the source');
      let cut = false;
      pair.source.on('migration', (record) => {
        if (record.phase === phase && !cut) {
          cut = true;
          void vm.qmp.disconnect();
        }
      });
      const record = pair.source.migrate('g1', 'dst');
      const done = await pair.source.waitFor(record.id);
      expect(cut).toBe(true);
      expect(done.phase).toBe('failed');
      expect(done.error).toMatch(new RegExp(`; the QMP connection was lost in phase ${phase}: rolled back, the VM runs here$`));
      const again = pair.source.vms.get('g1');
      expect(again).toBeDefined();
      expect(again?.qmp).not.toBe(vm.qmp);
      expect(await again?.commands.queryStatus()).toMatchObject({ running: true });
      expect((await again?.commands.queryNamedBlockNodes())?.some((node) => node['node-name'].startsWith('cowbuf-'))).toBe(false);
      expect((await again?.commands.queryIoThrottles())?.every((limit) => limit.bps_wr === 0 && limit.iops_wr === 0)).toBe(true);
      const before = (await readSerial(vm.spec.serialLog)).verifications.length;
      const after = await waitForSerial(vm.spec.serialLog, (r) => r.verifications.length >= before + 2, 'verifications after the rollback');
      expect(after.verifications.every((v) => v.lost === 0)).toBe(true);
      expect(after.ioErrors).toEqual([]);
      expect(pair.source.loop.partition.bins).toEqual([]);
      await expect(stat(`${scope().path('source')}/buffer/${record.id}-vdisk0.qcow2`)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(pair.target.vms.size).toBe(0);
    } finally {
      await pair.close();
    }
  });
});
