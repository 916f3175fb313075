import { stat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { guestVm, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import type { ManagedVm } from '../../src/vm/provider.js';
import { enginePair } from '../support/engines.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('engine');

describe('the engine, source and target in one process on loopback', { timeout: 180_000 }, () => {
  it('migrates a busy guest through the buffer; it keeps writing on the target with no write lost', async () => {
    const pair = await enginePair(scope(), 128 * MiB);
    try {
      const base = scope().path('disk.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
      const vm = await pair.source.launchVm(guestVm({ name: 'g1', dir: scope().dir, disk: { file: base, format: 'qcow2' }, workload: { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 3 } }));
      await waitForSerial(vm.spec.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats on the source');
      const phases: string[] = [];
      pair.source.on('migration', (record) => {
        if (phases.at(-1) !== record.phase) phases.push(record.phase);
      });
      const record = pair.source.migrate('g1', 'dst');
      const done = await pair.source.waitFor(record.id);
      expect({ phase: done.phase, error: done.error, decisions: done.decisions }).toEqual({ phase: 'completed', error: undefined, decisions: ['RAM migration: one stream, auto-converge only if dirtying outpaces the link (90 %), post-copy off'] });
      expect(phases).toEqual(['queued', 'prepare', 'overlay', 'base', 'target', 'mirror', 'ram', 'switchover', 'finishing', 'completed']);
      const arrived = pair.target.vms.get('g1');
      expect(arrived).toBeDefined();
      const serial = arrived?.spec.serialLog ?? '';
      const onTarget = await waitForSerial(serial, (r) => r.verifications.length >= 2, 'two verifications on the target', { timeoutMs: 60_000 });
      expect(onTarget.verifications.every((v) => v.lost === 0)).toBe(true);
      expect(onTarget.ioErrors).toEqual([]);
      expect((await readSerial(vm.spec.serialLog)).ioErrors).toEqual([]);
      expect(pair.source.vms.has('g1')).toBe(false);
      expect(vm.running()).toBe(false);
      expect(pair.source.loop.partition.bins).toEqual([]);
      await expect(stat(`${scope().path('source')}/buffer/${record.id}-vdisk0.qcow2`)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await pair.close();
    }
  });
});

describe('rollback when the target QEMU dies', { timeout: 240_000 }, () => {
  it.each(['target', 'mirror', 'ram', 'switchover'] as const)('killed as the migration enters %s: the guest runs on at the source with every write, bin reclaimed', async (phase) => {
    const pair = await enginePair(scope(), 128 * MiB);
    try {
      const base = scope().path('disk.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
      const vm = await pair.source.launchVm(guestVm({ name: 'g2', dir: scope().dir, disk: { file: base, format: 'qcow2' }, workload: { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 2 } }));
      await waitForSerial(vm.spec.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats on the source');
      let targetVm: ManagedVm | undefined;
      let killedIn: string | undefined;
      pair.target.on('incoming', (started) => {
        targetVm = started;
        // In the target phase the VM exists only from this moment: kill it as it starts.
        if (phase === 'target') {
          killedIn = 'target';
          process.kill(started.pid as number, 'SIGKILL');
        }
      });
      pair.source.on('migration', (record) => {
        if (record.phase === phase && !killedIn && targetVm) {
          killedIn = record.phase;
          process.kill(targetVm.pid as number, 'SIGKILL');
        }
      });
      const record = pair.source.migrate('g2', 'dst');
      const done = await pair.source.waitFor(record.id);
      expect(killedIn).toBe(phase);
      expect(done.phase).toBe('failed');
      expect(done.error).toMatch(new RegExp(`^migration ${record.id} failed in phase `));
      expect(await vm.commands.queryStatus()).toMatchObject({ running: true });
      const before = (await readSerial(vm.spec.serialLog)).verifications.length;
      const after = await waitForSerial(vm.spec.serialLog, (r) => r.verifications.length >= before + 2, 'verifications after the rollback');
      expect(after.verifications.every((v) => v.lost === 0)).toBe(true);
      expect(after.ioErrors).toEqual([]);
      const nodes = (await vm.commands.queryNamedBlockNodes()).map((node) => node['node-name']);
      expect(nodes.some((name) => name.startsWith('cowbuf-'))).toBe(false);
      expect(pair.source.loop.partition.bins).toEqual([]);
      await expect(stat(`${scope().path('source')}/buffer/${record.id}-vdisk0.qcow2`)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(pair.target.vms.size).toBe(0);
    } finally {
      await pair.close();
    }
  });
});

describe('admission at the target', { timeout: 240_000 }, () => {
  it('a second migration waits, visibly, while the target takes its one incoming migration, then completes', async () => {
    const pair = await enginePair(scope(), 128 * MiB, { maxIncoming: 1 });
    try {
      const ids: string[] = [];
      for (const name of ['q1', 'q2']) {
        const base = scope().path(`${name}.qcow2`);
        await qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
        const vm = await pair.source.launchVm(guestVm({ name, dir: scope().dir, disk: { file: base, format: 'qcow2' }, workload: { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 1, verifyEvery: 0 } }));
        await waitForSerial(vm.spec.serialLog, (r) => r.heartbeats.length > 0, `${name} running`);
      }
      for (const name of ['q1', 'q2']) ids.push(pair.source.migrate(name, 'dst').id);
      const done = await Promise.all(ids.map((id) => pair.source.waitFor(id)));
      expect(done.map((record) => record.phase)).toEqual(['completed', 'completed']);
      const waited = done.filter((record) => record.decisions.some((d) => d === 'waiting: target busy: 1 incoming migrations (limit 1)'));
      expect(waited).toHaveLength(1);
      expect([...pair.target.vms.keys()].sort()).toEqual(['q1', 'q2']);
    } finally {
      await pair.close();
    }
  });
});
