import { describe, expect, it } from 'vitest';
import { NotOfferedError, UnknownVmError, VmBusyError } from '../../src/errors.js';
import type { MigrationHead, Phase } from '../../src/migration/record.js';
import { removeVm, type RemovalHost } from '../../src/migration/removal.js';
import type { QmpCommands } from '../../src/qmp/commands.js';
import type { ManagedVm, Removal, VmProvider } from '../../src/vm/provider.js';

/** A running VM whose QEMU shows `nodes` and records every command the removal sends it. */
function fakeVm(name: string, nodes: readonly string[] = ['root']): ManagedVm & { readonly sent: string[][] } {
  const sent: string[][] = [];
  const answer =
    (command: string, value: unknown = undefined) =>
    (...args: unknown[]) => {
      sent.push([command, ...args.map((arg) => JSON.stringify(arg))]);
      return Promise.resolve(value);
    };
  const commands = {
    queryNamedBlockNodes: answer('query-named-block-nodes', nodes.map((node) => ({ 'node-name': node, file: `/srv/${node}` }))),
    queryMigrate: answer('query-migrate', { status: 'completed' }),
    queryBlockJobs: answer('query-block-jobs', []),
    blockdevDel: answer('blockdev-del'),
    setIoThrottle: answer('block_set_io_throttle'),
    queryStatus: answer('query-status', { running: true, status: 'running' }),
  } as unknown as QmpCommands;
  return { spec: { name, memoryMiB: 64, vcpus: 1, disks: [{ id: 'vda', nodeName: 'root', file: '/srv/root', format: 'qcow2' }], qmpSocket: `/run/${name}.qmp`, serialLog: '' }, accel: 'tcg', qmp: {} as ManagedVm['qmp'], commands, pid: 4242, running: () => true, stop: () => Promise.resolve(), sent };
}

const migration = (vm: string, phase: Phase, extra: Partial<MigrationHead> = {}): MigrationHead => ({ id: `m-${phase}`, vm, peer: 'dst', policy: 'deadline', phase, createdAt: '', updatedAt: '', ...extra });

/** An engine's parts; `removal` is what its provider answers, `null` a provider without `remove`. */
function host(vms: readonly ManagedVm[], options: { removal?: Removal | Error | null; migrations?: MigrationHead[]; evacuation?: string; receiving?: string } = {}): RemovalHost & { readonly removed: string[] } {
  const removed: string[] = [];
  const { removal = 'stopped' } = options;
  const provider: Pick<VmProvider, 'remove'> =
    removal === null
      ? {}
      : {
          remove: (vm) => {
            if (removal instanceof Error) return Promise.reject(removal);
            removed.push(vm.spec.name);
            return Promise.resolve(removal);
          },
        };
  return { vms: new Map(vms.map((vm) => [vm.spec.name, vm])), provider, bufferPath: '/buffer', migrations: () => options.migrations ?? [], evacuation: (name) => (name === 'web1' ? options.evacuation : undefined), receiving: (name) => (name === 'web1' ? options.receiving : undefined), removed };
}

describe("removing a VM at an admin's request", () => {
  it('hands it to the provider and takes it off the books, answering what the provider did', async () => {
    const engine = host([fakeVm('web1'), fakeVm('db1')], { removal: 'released', migrations: [migration('web1', 'failed'), migration('web1', 'cancelled'), migration('db1', 'mirror')] });
    expect(await removeVm(engine, 'web1')).toEqual({ name: 'web1', removal: 'released', pid: 4242 });
    expect(engine.removed).toEqual(['web1']);
    expect([...engine.vms.keys()]).toEqual(['db1']);
  });

  it('names the VM and those this host has when it is unknown', async () => {
    await expect(removeVm(host([fakeVm('db1')]), 'web1')).rejects.toThrow(new UnknownVmError('web1', ['db1']));
    await expect(removeVm(host([]), 'web1')).rejects.toThrow('unknown VM "web1" (this host\'s VMs: none)');
  });

  it.each(['queued', 'overlay', 'mirror', 'ram', 'switchover', 'rolling-back', 'finishing', 'in-doubt'] as const)('refuses while a migration of it is in phase %s, naming VM and migration, and changes nothing', async (phase) => {
    const vm = fakeVm('web1');
    const engine = host([vm], { migrations: [migration('web1', 'failed'), migration('web1', phase)] });
    const refusal = removeVm(engine, 'web1');
    await expect(refusal).rejects.toBeInstanceOf(VmBusyError);
    await expect(refusal).rejects.toThrow(`VM web1 cannot be removed: migration m-${phase} to dst holds it (phase ${phase}); it can be once that is over`);
    expect(engine.removed).toEqual([]);
    expect(engine.vms.get('web1')).toBe(vm);
    expect(vm.sent).toEqual([]);
  });

  it('refuses while an evacuation batch holds it, naming the batch', async () => {
    const engine = host([fakeVm('web1')], { evacuation: 'evac-12ab' });
    await expect(removeVm(engine, 'web1')).rejects.toThrow('VM web1 cannot be removed: evacuation evac-12ab holds it; it can be once that is over');
    expect(engine.vms.has('web1')).toBe(true);
  });

  it('refuses a guest whose RAM still follows by post-copy: the copy here is its only one', async () => {
    const vm = fakeVm('web1');
    const engine = host([vm], { receiving: 'm-in' });
    await expect(removeVm(engine, 'web1')).rejects.toThrow('VM web1 cannot be removed: incoming migration m-in holds it (its RAM is still arriving); it can be once that is over');
    expect(engine.vms.get('web1')).toBe(vm);
    expect(vm.sent).toEqual([]);
  });

  it('keeps a VM on the books when its provider failed to remove it and its QEMU still runs', async () => {
    const vm = fakeVm('web1');
    const engine = host([vm], { removal: new Error('quit timed out') });
    await expect(removeVm(engine, 'web1')).rejects.toThrow('quit timed out');
    expect(engine.vms.get('web1')).toBe(vm);
  });

  it("says so when the engine's provider removes no VMs (an embedder's own), before anything else", async () => {
    const engine = host([fakeVm('web1')], { removal: null, migrations: [migration('web1', 'mirror')] });
    await expect(removeVm(engine, 'web1')).rejects.toThrow(new NotOfferedError('web1', 'removed'));
    await expect(removeVm(engine, 'web1')).rejects.toThrow(/VM web1 cannot be removed here: this engine's VM provider does not offer it/);
    expect(engine.vms.has('web1')).toBe(true);
  });

  it("folds back what a failed rollback left (an NBD client here) and puts the admin's limits back, before the provider lets it go", async () => {
    const vm = fakeVm('web1', ['root', 'cowbuf-nbd0']);
    const limits = { vda: { bps_wr: 4_000_000, iops: 200 } };
    const engine = host([vm], { removal: 'released', migrations: [migration('web1', 'failed', { ioLimits: limits })] });
    await removeVm(engine, 'web1');
    expect(vm.sent).toContainEqual(['blockdev-del', '"cowbuf-nbd0"']);
    expect(vm.sent).toContainEqual(['block_set_io_throttle', '"vda/virtio-backend"', JSON.stringify(limits.vda)]);
    expect(engine.removed).toEqual(['web1']);
  });

  it('keeps the VM on the books, untouched by the provider, when folding back fails', async () => {
    const vm = fakeVm('web1');
    (vm.commands as unknown as Record<string, unknown>).queryNamedBlockNodes = () => Promise.reject(new Error('monitor closed'));
    const engine = host([vm]);
    await expect(removeVm(engine, 'web1')).rejects.toThrow('monitor closed');
    expect(engine.vms.get('web1')).toBe(vm);
    expect(engine.removed).toEqual([]);
  });
});
