/**
 * The target stops taking the mirror's writes after the disks are in sync: its copy of the disk
 * is then missing writes the guest made, so the migration must not reach the switchover.
 */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import type { MigrationRecord } from '../../src/migration/engine.js';
import { guestVm, waitForSerial } from '../../src/testbed/guest.js';
import type { ManagedVm } from '../../src/vm/provider.js';
import { enginePair, expectKeptAtSource } from '../support/engines.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('target-write');

/** A pair and one busy guest on the source; `faults` sees each phase the source enters (synchronously, in process). */
async function busyGuestMigrating(faults: (phase: string, source: ManagedVm, target: ManagedVm | undefined) => void) {
  const pair = await enginePair(scope(), 128 * MiB);
  const disk = scope().path('g1.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
  await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 3 32M 8M', disk]);
  const vm = await pair.source.launchVm(guestVm({ name: 'g1', dir: scope().dir, disk: { file: disk, format: 'qcow2' }, workload: { diskRateMiB: 2, diskSpanMiB: 8, dirtyRateMiB: 16, verifyEvery: 3 } }));
  await waitForSerial(vm.spec.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats on the source');
  let incoming: ManagedVm | undefined;
  pair.target.on('incoming', (arriving: ManagedVm) => (incoming = arriving));
  const phases: string[] = [];
  pair.source.on('migration', (record: MigrationRecord) => {
    if (phases.at(-1) !== record.phase) faults(record.phase, vm, incoming);
    phases.push(record.phase);
  });
  const record = pair.source.migrate('g1', 'dst');
  return { pair, vm, id: record.id, phases, done: pair.source.waitFor(record.id) };
}

describe('the target failing the mirror’s writes', { timeout: 180_000 }, () => {
  it('in the RAM phase (its NBD export gone): the migration fails at once, the guest writes on at the source with every write, the target keeps nothing', async () => {
    let removed: Promise<unknown> | undefined;
    // The moment RAM starts to move, the mirrors are ready: every guest write from now on must
    // reach the target, and the target refuses them all.
    const migration = await busyGuestMigrating((phase, _source, target) => {
      if (phase === 'ram') removed = target?.commands.blockExportDel('exp-vdisk0', 'hard');
    });
    try {
      const done = await migration.done;
      await removed;
      expect(removed).toBeDefined();
      expect(done.phase).toBe('failed');
      // On loopback RAM may complete before a mirrored write is refused: QEMU then fails the
      // completion itself, on flushing the dead NBD target (10.0 says so; 7.2 gives no reason).
      // Either way, before the switchover.
      expect(done.error).toMatch(new RegExp(`^migration ${migration.id} failed in phase ram: (mirror cowbuf-mirror0 (failed writing to the target|stopped)|RAM migration failed(: Error in migration completion: Input/output error)?$)`));
      expect(migration.phases).not.toContain('switchover');
      await expectKeptAtSource(migration.pair, migration.vm, scope().path('target/vms'));
    } finally {
      await migration.pair.close();
    }
  });

  it('in the final drain at the switchover (its NBD export gone as the drain starts): rolled back, the guest resumes at the source with every write', async () => {
    let removed: Promise<unknown> | undefined;
    let gated: Promise<unknown> | undefined;
    let resumed: Promise<unknown> | undefined;
    // A speed limit cannot hold writes back for the drain (QEMU 7.2 ignores one on a ready
    // mirror), so the mirror is paused through the RAM phase, holding what the guest writes.
    // The export must then be gone before the drain touches it, and the drain starts within a
    // monitor round trip of the stop: racing it lost in CI. A monitor runs its commands in order,
    // so at the switchover the source's is handed, ahead of the engine's drain, a blockdev-add
    // whose NBD handshake this test holds until the target has dropped the export, then the
    // resume: the drain always meets a resumed mirror and a dead export.
    const gate = createServer((socket) => void removed?.then(() => socket.destroy(), () => socket.destroy()));
    const gatePath = scope().path('gate.sock');
    await new Promise<void>((resolve) => gate.listen(gatePath, resolve));
    try {
      const migration = await busyGuestMigrating((phase, source, target) => {
        if (phase === 'ram') void source.qmp.execute('job-pause', { id: 'cowbuf-mirror0' });
        if (phase !== 'switchover' || !target) return;
        removed = target.commands.blockExportDel('exp-vdisk0', 'hard');
        gated = source.qmp.execute('blockdev-add', { driver: 'nbd', 'node-name': 'gate', server: { type: 'unix', path: gatePath }, export: 'gate' }).then(
          () => Promise.reject(new Error('the gate’s NBD handshake succeeded')),
          (error: Error) => error.message,
        );
        resumed = source.qmp.execute('job-resume', { id: 'cowbuf-mirror0' });
      });
      try {
        const done = await migration.done;
        await Promise.all([removed, resumed]);
        expect(await gated).toMatch(/^`blockdev-add` failed/);
        expect(done.phase).toBe('failed');
        // The resumed mirror fails either before the source's cancel reached it or while it drains.
        expect(done.error).toMatch(new RegExp(`^migration ${migration.id} failed in phase switchover: mirror cowbuf-mirror0 (ended out of sync|is not in sync at the switchover)`));
        await expectKeptAtSource(migration.pair, migration.vm, scope().path('target/vms'));
      } finally {
        await migration.pair.close();
      }
    } finally {
      // A gate the engine never reached (the cell failed before the switchover) is not waited for.
      void gated?.catch(() => undefined);
      gate.close();
    }
  });
});
