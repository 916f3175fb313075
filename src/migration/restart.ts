/**
 * The engine's two ways back from losing its hold on QEMU, both resolved by recovery.ts from
 * QEMU's own state: a restart of the daemon (reattach to every owned VM, clean up incoming
 * migrations cut short, re-queue or resolve outgoing ones), and a lost QMP connection to one
 * migrating VM (reconnect to its monitor, resolve that migration).
 */
import { attachVm, type RunningVm } from '../vm/launcher.js';
import type { OutgoingEntry } from './journal.js';
import type { Persistence } from './persistence.js';
import { recoverOutgoing, type RecoveryContext, type Recovered } from './recovery.js';
import type { Phase } from './source.js';
import { discardIncoming } from './target.js';

export interface RestartHost {
  readonly state: Persistence;
  /** The recovery context for a migration to this peer, logging under that migration. */
  context(migration: string, peer: string): RecoveryContext;
  adopt(vm: RunningVm): void;
  vm(name: string): RunningVm | undefined;
  /** A journaled migration becomes a record again (history, or about to be resolved). */
  restore(entry: OutgoingEntry): void;
  requeue(id: string): void;
  settle(id: string, phase: Phase, error?: string): void;
  forget(vm: RunningVm | undefined): Promise<void>;
  log(message: string, migration?: string): void;
}

const FINAL: ReadonlySet<Phase> = new Set(['completed', 'failed', 'cancelled']);

export async function restart(host: RestartHost): Promise<void> {
  const { running, gone } = await host.state.restore((message) => host.log(message));
  for (const vm of running) host.adopt(vm);
  for (const entry of await host.state.journal.incoming()) {
    if (!host.state.hasArrived(entry.id)) {
      host.log(`incoming migration ${entry.id} was cut short by the restart: its target VM and files are removed`, entry.id);
      await discardIncoming(entry);
    }
    await host.state.journal.dropIncoming(entry.id);
  }
  for (const entry of await host.state.journal.outgoing()) {
    host.restore(entry);
    if (FINAL.has(entry.phase)) continue;
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
    try {
      const outcome = await recoverOutgoing(entry, spec, vm, host.context(entry.id, entry.peer));
      if (outcome.phase === 'completed') await host.forget(vm);
      host.settle(entry.id, outcome.phase, outcome.error);
    } catch (error) {
      host.settle(entry.id, 'failed', `cowbufd restarted during phase ${entry.phase}; rollback failed, overlays kept: ${(error as Error).message}`);
    }
  }
}

/**
 * The QMP connection to a migrating VM was lost, so none of the undos could reach QEMU. Like a
 * restarted daemon: reconnect to its monitor and resolve the migration from QEMU's own state.
 */
export async function afterQmpLoss(host: RestartHost, entry: OutgoingEntry, vm: RunningVm): Promise<Recovered> {
  try {
    const fresh = await attachVm(vm.spec, vm.child.pid as number, vm.accel);
    host.adopt(fresh);
    await host.state.own(fresh);
    host.log(`QMP connection to ${vm.spec.name} lost in phase ${entry.phase}; reconnected`, entry.id);
    const outcome = await recoverOutgoing(entry, vm.spec, fresh, host.context(entry.id, entry.peer), `the QMP connection was lost in phase ${entry.phase}`);
    if (outcome.phase === 'completed') await host.forget(fresh);
    return outcome;
  } catch (error) {
    return { phase: 'failed', error: `the QMP connection was lost and recovery failed, overlays kept: ${(error as Error).message}` };
  }
}
