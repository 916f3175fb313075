/**
 * What a restarted daemon does with the outgoing migrations its previous run left in flight (and
 * what a running one does when it lost its QMP connection to a migrating VM: the same situation).
 * It trusts the QEMU it reattached to, not the journal, for what exists: node and job names are
 * fixed (qemu-steps.ts), so it can see which steps had happened. If RAM had fully crossed, the
 * target holds the VM: finishing there completes the migration. Otherwise it rolls back: cancel
 * the RAM migration and the mirrors, drop the NBD nodes, lift the throttle, commit each overlay
 * back, make sure the guest runs. If QEMU died as well, the overlays are committed offline with
 * `qemu-img commit`, since they hold writes the bases do not have.
 */
import { rm, stat } from 'node:fs/promises';
import { run } from '../exec/run.js';
import { ControlClient } from '../peer/channel.js';
import type { Identity } from '../peer/identity.js';
import type { TrustedPeer } from '../peer/trust.js';
import { overlayPath, removeOverlay } from '../storage/overlays.js';
import type { DiskShipping } from '../storage/shipping.js';
import type { ManagedVm } from '../vm/provider.js';
import { throttleTarget, type VmSpec } from '../vm/spec.js';
import type { OutgoingEntry } from './journal.js';
import type { MigrationHead } from './record.js';
import { cancelMigration, cancelMirrors, commitBack, ensureRunning, nbdNode, overlayName, overlayNode } from './qemu-steps.js';

export interface RecoveryContext {
  readonly bufferPath: string;
  readonly shipping: Pick<DiskShipping, 'abandon'>;
  readonly identity: Identity;
  /** The migration's target, if it is still trusted. */
  readonly peer: TrustedPeer | undefined;
  readonly log: (message: string) => void;
}

export interface Recovered {
  /** `in-doubt`: RAM had crossed, so the guest is the target's until it answers (handoff.ts). */
  readonly phase: 'in-doubt' | 'failed';
  readonly error?: string;
}

async function askTarget(ctx: RecoveryContext, method: 'abort', migration: string): Promise<void> {
  if (!ctx.peer) throw new Error('the target is no longer trusted');
  await ControlClient.once(ctx.peer, ctx.identity, { method, migration }, { timeoutMs: 60_000 });
}

/** @param limits the admin's I/O limits by disk id (none: the drives had none) */
async function rollBackLive(vm: ManagedVm, limits: MigrationHead['ioLimits'] = {}): Promise<void> {
  const qmp = vm.commands;
  const disks = vm.spec.disks;
  await cancelMigration(qmp);
  await cancelMirrors(qmp, disks.length);
  const nodes = new Set((await qmp.queryNamedBlockNodes()).map((node) => node['node-name']));
  for (const index of disks.keys()) if (nodes.has(nbdNode(index))) await qmp.blockdevDel(nbdNode(index));
  for (const disk of disks) await qmp.setIoThrottle(throttleTarget(disk), limits[disk.id] ?? {}).catch(() => undefined);
  for (const index of disks.keys()) {
    if (!nodes.has(overlayNode(index))) continue;
    await commitBack(qmp, overlayNode(index), index);
    await qmp.blockdevDel(overlayNode(index));
  }
  await ensureRunning(qmp);
}

/**
 * A VM no migration is under way for, that still carries cowbuf's nodes (a rollback that failed
 * kept its overlay attached, or left an NBD client): folded back now, so no write is stranded in
 * the buffer and the next migration's fixed node names are free.
 * @param limits the admin's I/O limits the failed migration journaled (none: unthrottled)
 * @returns whether anything was left
 */
export async function reconcileLeftovers(vm: ManagedVm, bufferPath: string, limits?: MigrationHead['ioLimits']): Promise<boolean> {
  const nodes = await vm.commands.queryNamedBlockNodes();
  const ours = nodes.filter((node) => node['node-name'].startsWith('cowbuf-'));
  if (ours.length === 0) return false;
  const files = ours.filter((node) => node['node-name'].startsWith(overlayNode(0).slice(0, -1)) && node.file.startsWith(`${bufferPath}/`)).map((node) => node.file);
  await rollBackLive(vm, limits);
  for (const file of files) await rm(file, { force: true });
  return true;
}

/** QEMU is gone: fold each overlay into its base with the VM stopped, so no write is lost. */
async function commitOffline(spec: VmSpec, ctx: RecoveryContext, migration: string): Promise<void> {
  for (const disk of spec.disks) {
    const path = overlayPath(ctx.bufferPath, overlayName(migration, disk.id));
    if (!(await stat(path).then(() => true, () => false))) continue;
    await run('qemu-img', ['commit', '-q', path], { timeoutMs: 600_000 });
  }
}

/**
 * @param vm the reattached source VM, or undefined if its QEMU died with the daemon
 * @throws when the rollback itself fails (the overlays are then kept: they hold guest writes)
 */
export async function recoverOutgoing(entry: OutgoingEntry, spec: VmSpec, vm: ManagedVm | undefined, ctx: RecoveryContext, interrupted = `cowbufd restarted during phase ${entry.phase}`): Promise<Recovered> {
  // Past the point of no return the source never resumes on its own: the target decides.
  const status = vm && (await vm.commands.queryMigrate()).status;
  if (status === 'completed' || status?.startsWith('postcopy')) return { phase: 'in-doubt' };
  if (vm) await rollBackLive(vm, entry.ioLimits);
  else await commitOffline(spec, ctx, entry.id);
  for (const disk of spec.disks) await removeOverlay(ctx.bufferPath, overlayName(entry.id, disk.id));
  await ctx.shipping.abandon(entry.id);
  await askTarget(ctx, 'abort', entry.id).catch((error: Error) => ctx.log(`${entry.id}: could not abort on ${entry.peer}: ${error.message}`));
  return { phase: 'failed', error: `${interrupted}: rolled back, ${vm ? 'the VM runs here' : 'its QEMU had died; overlays committed into the bases'}` };
}
