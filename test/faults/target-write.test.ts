/**
 * The target stops taking the mirror's writes after the disks are in sync: its copy of the disk
 * is then missing writes the guest made, so the migration must not reach the switchover.
 */
import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import type { MigrationRecord } from '../../src/migration/engine.js';
import { guestVm, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import type { ManagedVm } from '../../src/vm/provider.js';
import { enginePair } from '../support/engines.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('target-write');

describe('the target failing the mirror’s writes', { timeout: 180_000 }, () => {
  it('in the RAM phase (its NBD export gone): the migration fails at once, the guest writes on at the source with every write, the target keeps nothing', async () => {
    const pair = await enginePair(scope(), 128 * MiB);
    try {
      const disk = scope().path('g1.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
      await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 3 32M 8M', disk]);
      const vm = await pair.source.launchVm(guestVm({ name: 'g1', dir: scope().dir, disk: { file: disk, format: 'qcow2' }, workload: { diskRateMiB: 2, diskSpanMiB: 8, dirtyRateMiB: 16, verifyEvery: 3 } }));
      await waitForSerial(vm.spec.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats on the source');
      let incoming: ManagedVm | undefined;
      pair.target.on('incoming', (arriving: ManagedVm) => (incoming = arriving));
      let removed: Promise<unknown> | undefined;
      const phases: string[] = [];
      pair.source.on('migration', (record: MigrationRecord) => {
        phases.push(record.phase);
        // The moment RAM starts to move, the mirrors are ready: every guest write from now on
        // must reach the target, and the target refuses them all.
        if (record.phase === 'ram' && !removed) removed = incoming?.commands.blockExportDel('exp-vdisk0', 'hard');
      });
      const record = pair.source.migrate('g1', 'dst');
      const done = await pair.source.waitFor(record.id);
      await removed;
      expect(removed).toBeDefined();
      expect(done.phase).toBe('failed');
      expect(done.error).toMatch(new RegExp(`^migration ${record.id} failed in phase ram: mirror cowbuf-mirror0 (failed writing to the target|stopped)`));
      expect(phases).not.toContain('switchover');
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
