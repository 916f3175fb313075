/**
 * The engine's two ways back from losing its hold on QEMU, both resolved by recovery.ts from
 * QEMU's own state: a restart of the daemon (reattach to every owned VM, clean up incoming
 * migrations cut short, re-queue or resolve outgoing ones), and a lost QMP connection to one
 * migrating VM (reconnect to its monitor, resolve that migration).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CowbufError } from '../errors.js';
import { processAlive } from '../exec/run.js';
import type { DiskShipping } from '../storage/shipping.js';
import { attachVm } from '../vm/launcher.js';
import type { ManagedVm, VmProvider } from '../vm/provider.js';
import type { VmSpec } from '../vm/spec.js';
import { continueHandoff, type OutgoingParts } from './background.js';
import type { Persistence } from './persistence.js';
import { reconcileLeftovers, recoverOutgoing, type RecoveryContext, type Recovered } from './recovery.js';
import { FINAL, HANDOFF, type Phase } from './record.js';
import { removeShipped, type TargetSide } from './target.js';
import type { IncomingEntry, OutgoingEntry } from './journal.js';

export interface RestartHost {
  readonly state: Persistence;
  readonly provider: Pick<VmProvider, 'vms'>;
  readonly target: TargetSide;
  readonly shipping: Pick<DiskShipping, 'discard'>;
  readonly bufferPath: string;
  /** The recovery context for a migration to this peer, logging under that migration. */
  context(migration: string, peer: string): RecoveryContext;
  /** A VM the provider runs (it keeps its own record of it). */
  adopt(vm: ManagedVm): void;
  /** A fresh monitor of a VM whose connection was lost: it replaces the old handle, with the provider too. */
  reattached(vm: ManagedVm): void;
  vm(name: string): ManagedVm | undefined;
  /** A journaled migration becomes a record again (history, or about to be resolved). */
  restore(entry: OutgoingEntry): void;
  requeue(id: string): void;
  settle(id: string, phase: Phase, error?: string): void;
  /** Past its point of no return: ask the target until it answers (in the background). */
  handOff(id: string, vm: ManagedVm | undefined, spec: VmSpec): void;
  log(message: string, migration?: string): void;
}

/** The engine's parts a restart works with, beyond those of its outgoing migrations. */
export interface RestartParts extends OutgoingParts {
  readonly state: Persistence;
  readonly provider: Pick<VmProvider, 'vms' | 'attached' | 'departed'>;
  readonly target: TargetSide;
  readonly vms: Map<string, ManagedVm>;
  /** A journaled migration that was still queued waits for admission again. */
  requeue(id: string): void;
}

/** The engine as a restart sees it: its VMs and records, re-taken from the journal and QEMU. */
export function restartHostOf(parts: RestartParts): RestartHost {
  const log = (message: string, migration?: string) => parts.log({ level: 'warn', ...(migration ? { migration } : {}), message });
  const { ledger, vms } = parts;
  return {
    state: parts.state,
    provider: parts.provider,
    target: parts.target,
    shipping: parts.shipping,
    bufferPath: parts.bufferPath,
    context: (migration, peer) => ({ bufferPath: parts.bufferPath, shipping: parts.shipping, identity: parts.identity, peer: parts.peer(peer), log: (message) => log(message, migration) }),
    adopt: (vm) => vms.set(vm.spec.name, vm),
    reattached: (vm) => {
      vms.set(vm.spec.name, vm);
      void parts.provider.attached?.(vm);
    },
    vm: (name) => vms.get(name),
    restore: (entry) => ledger.restore(entry),
    requeue: (id) => parts.requeue(id),
    settle: (id, phase, error) => ledger.settle(id, phase, error),
    handOff: (id, vm, spec) => continueHandoff(parts, id, vm, spec),
    log,
  };
}

export async function restart(host: RestartHost): Promise<void> {
  await host.state.open();
  const { running, gone } = await host.provider.vms();
  for (const vm of running) host.adopt(vm);
  for (const entry of await host.state.journal.incoming()) {
    if (host.state.hasArrived(entry.id)) {
      await host.state.journal.dropIncoming(entry.id);
      continue;
    }
    const vm = await reattachIncoming(entry);
    // An incoming QEMU whose streams broke with the daemon exits on its own: any QMP error here
    // means there is no copy to keep.
    const state = vm && (await Promise.all([vm.commands.queryStatus(), vm.commands.queryMigrate()]).catch(() => undefined));
    if (vm && state?.[0].running) {
      host.log(`incoming migration ${entry.id} had resumed its guest here before the restart: it has arrived`, entry.id);
      await host.target.arrivedBeforeRestart(entry, vm);
    } else if (vm && state?.[1].status === 'completed') {
      // The source may have completed as well: this paused copy may be the guest's only one.
      host.log(`incoming migration ${entry.id} holds all of its guest, paused: kept until its source says finish or abort`, entry.id);
      host.target.keep(entry, vm);
    } else {
      host.log(`incoming migration ${entry.id} was cut short by the restart: its target VM and files are removed`, entry.id);
      // A paused incoming VM is nobody's only copy: discardIncoming kills it.
      await vm?.qmp.disconnect().catch(() => undefined);
      await discardIncoming(entry, host.shipping);
      await host.state.journal.dropIncoming(entry.id);
    }
  }
  const inFlight = new Set<string>();
  for (const entry of await host.state.journal.outgoing()) {
    host.restore(entry);
    if (FINAL.has(entry.phase)) continue;
    inFlight.add(entry.vm);
    if (entry.phase === 'queued') {
      host.requeue(entry.id);
      continue;
    }
    const vm = host.vm(entry.vm);
    const spec = vm?.spec ?? gone.find((candidate) => candidate.name === entry.vm);
    if (!spec) {
      host.settle(entry.id, 'failed', `cowbufd restarted during phase ${entry.phase} and knows no VM ${entry.vm}`);
      continue;
    }
    if (HANDOFF.has(entry.phase) && !vm) {
      // Its QEMU quit after completing: the target may run the guest, and only it can say.
      host.handOff(entry.id, undefined, spec);
      continue;
    }
    try {
      const outcome = await recoverOutgoing(entry, spec, vm, host.context(entry.id, entry.peer));
      if (outcome.phase === 'in-doubt') host.handOff(entry.id, vm, spec);
      else host.settle(entry.id, outcome.phase, outcome.error);
    } catch (error) {
      host.settle(entry.id, 'failed', `cowbufd restarted during phase ${entry.phase}; rollback failed, overlays kept: ${(error as Error).message}`);
    }
  }
  for (const vm of running) {
    if (inFlight.has(vm.spec.name)) continue;
    if (await reconcileLeftovers(vm, host.bufferPath).catch((error: Error) => (host.log(`${vm.spec.name}: leftover cowbuf nodes could not be folded back: ${error.message}`), false))) {
      host.log(`${vm.spec.name} carried cowbuf's nodes from an earlier migration: committed back and removed`);
    }
  }
}

/** Cleans up what an incoming migration left when the daemon died before it arrived or was aborted. */
async function discardIncoming(entry: IncomingEntry, shipping: Pick<DiskShipping, 'discard'>): Promise<void> {
  if (entry.pid !== undefined && processAlive(entry.pid)) {
    // A paused VM waiting for its RAM: nothing in it is anyone's only copy.
    process.kill(entry.pid, 'SIGKILL');
    for (let i = 0; i < 100 && processAlive(entry.pid); i += 1) await sleep(50);
  }
  await removeShipped(entry, shipping);
}

async function reattachIncoming(entry: IncomingEntry): Promise<ManagedVm | undefined> {
  if (entry.pid === undefined || !entry.spec || !entry.accel || !processAlive(entry.pid)) return undefined;
  return attachVm(entry.spec, entry.pid, entry.accel).catch(() => undefined);
}

/**
 * The QMP connection to a migrating VM was lost, so none of the undos could reach QEMU. Like a
 * restarted daemon: reconnect to its monitor and resolve the migration from QEMU's own state.
 */
export async function afterQmpLoss(host: RestartHost, entry: OutgoingEntry, vm: ManagedVm): Promise<Recovered> {
  try {
    if (vm.pid === undefined) throw new CowbufError(`the pid of ${vm.spec.name}'s QEMU is unknown: its monitor cannot be reattached`);
    const fresh = await attachVm(vm.spec, vm.pid, vm.accel);
    host.reattached(fresh);
    host.log(`QMP connection to ${vm.spec.name} lost in phase ${entry.phase}; reconnected`, entry.id);
    const outcome = await recoverOutgoing(entry, vm.spec, fresh, host.context(entry.id, entry.peer), `the QMP connection was lost in phase ${entry.phase}`);
    if (outcome.phase !== 'in-doubt') return outcome;
    host.handOff(entry.id, fresh, vm.spec);
    return { phase: 'in-doubt' };
  } catch (error) {
    return { phase: 'failed', error: `the QMP connection was lost and recovery failed, overlays kept: ${(error as Error).message}` };
  }
}
