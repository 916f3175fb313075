/**
 * An admin takes a VM off this host (`DELETE /1.0/vms/{name}`, `cowbuf vm delete`): refused while
 * a migration or an evacuation batch holds it; what cowbuf left in its QEMU is undone; then the
 * provider quits or releases it (provider.ts). No AbortSignal: a removal once begun finishes,
 * bounded by the QEMU's own quit (`quit`, then SIGTERM, then SIGKILL); a QEMU half quit and still
 * on the books would be worse than the wait.
 */
import { NotOfferedError, UnknownVmError, VmBusyError } from '../errors.js';
import type { ManagedVm, Removal, VmProvider } from '../vm/provider.js';
import { FINAL, type MigrationHead } from './record.js';
import { reconcileLeftovers } from './recovery.js';

export interface RemovalHost {
  readonly vms: Map<string, ManagedVm>;
  readonly provider: Pick<VmProvider, 'remove'>;
  readonly bufferPath: string;
  /** Every migration this host sent, oldest first. */
  migrations(): readonly MigrationHead[];
  /** The evacuation batch that holds the VM (planning, or yet to move it), if one does. */
  evacuation(vm: string): string | undefined;
  /** The incoming migration that still holds the VM (arriving, or its RAM following by post-copy), if one does. */
  receiving(vm: string): string | undefined;
}

export interface VmRemoval {
  readonly name: string;
  readonly removal: Removal;
  /** Its QEMU process: quit when `stopped`, running on when `released`. */
  readonly pid: number | undefined;
}

/** @throws UnknownVmError, NotOfferedError (the provider removes no VMs), VmBusyError naming the migration or batch */
export async function removeVm(host: RemovalHost, name: string): Promise<VmRemoval> {
  const vm = host.vms.get(name);
  if (!vm) throw new UnknownVmError(name, [...host.vms.keys()]);
  if (!host.provider.remove) throw new NotOfferedError(name, 'removed');
  const migrations = host.migrations().filter((record) => record.vm === name);
  // Any phase before its guest departed: until then the migration may resume this copy.
  const migration = migrations.find((record) => !FINAL.has(record.phase));
  if (migration) throw new VmBusyError(name, 'removed', `migration ${migration.id} to ${migration.peer} holds it (phase ${migration.phase})`);
  const batch = host.evacuation(name);
  if (batch !== undefined) throw new VmBusyError(name, 'removed', `evacuation ${batch} holds it`);
  const arriving = host.receiving(name);
  if (arriving !== undefined) throw new VmBusyError(name, 'removed', `incoming migration ${arriving} holds it (its RAM is still arriving)`);
  // Off the books first, so no migration or batch takes it up while it goes.
  host.vms.delete(name);
  try {
    // An overlay a failed rollback kept holds guest writes its disk lacks, and the cap may still
    // be on: committed back and the admin's limits put back before its QEMU quits or is let go.
    if (vm.running()) await reconcileLeftovers(vm, host.bufferPath, migrations.at(-1)?.ioLimits);
  } catch (error) {
    host.vms.set(name, vm);
    throw error;
  }
  try {
    return { name, removal: await host.provider.remove(vm), pid: vm.pid };
  } catch (error) {
    // A QEMU that outlived a failed removal stays on the books, or it would run unmanaged.
    if (vm.running()) host.vms.set(name, vm);
    throw error;
  }
}
