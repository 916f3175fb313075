/**
 * The engine's durable memory over the journal: which VMs it owns (started by it or arrived
 * here, not adopted from an embedder, which owns those), which migrations arrived, and the phase
 * of each outgoing migration. `restore` is the first half of a restart: reattach to the VMs that
 * outlived the previous daemon and report the ones that did not.
 */
import { attachVm, type RunningVm } from '../vm/launcher.js';
import type { VmSpec } from '../vm/spec.js';
import { Journal, type OutgoingEntry } from './journal.js';

export class Persistence {
  readonly journal: Journal;
  private readonly owned = new Map<string, { readonly vm: RunningVm; readonly arrivedBy?: string }>();
  private readonly written = new Map<string, { readonly phase: string; readonly done: Promise<void> }>();

  constructor(dir: string) {
    this.journal = new Journal(dir);
  }

  hasArrived(migration: string): boolean {
    return [...this.owned.values()].some((entry) => entry.arrivedBy === migration);
  }

  own(vm: RunningVm, arrivedBy?: string): Promise<void> {
    this.owned.set(vm.spec.name, { vm, ...(arrivedBy ? { arrivedBy } : {}) });
    return this.saveVms();
  }

  /** @returns whether this engine owned it (started it, or it arrived here) */
  async disown(name: string): Promise<boolean> {
    const owned = this.owned.delete(name);
    await this.saveVms();
    return owned;
  }

  /** Journals an outgoing migration when its phase moved (progress alone is not worth an fsync). */
  outgoing(entry: OutgoingEntry): Promise<void> {
    const last = this.written.get(entry.id);
    if (last?.phase === entry.phase) return last.done;
    const done = this.journal.saveOutgoing(entry);
    this.written.set(entry.id, { phase: entry.phase, done });
    return done;
  }

  /** Reattaches to the owned VMs still running. @returns them, and the specs of those that are gone */
  async restore(log: (message: string) => void): Promise<{ running: RunningVm[]; gone: VmSpec[] }> {
    await this.journal.open();
    const running: RunningVm[] = [];
    const gone: VmSpec[] = [];
    for (const entry of await this.journal.vms()) {
      try {
        const vm = await attachVm(entry.spec, entry.pid, entry.accel);
        this.owned.set(entry.spec.name, { vm, ...(entry.arrivedBy ? { arrivedBy: entry.arrivedBy } : {}) });
        running.push(vm);
        log(`reattached to VM ${entry.spec.name} (pid ${entry.pid})`);
      } catch (error) {
        gone.push(entry.spec);
        log(`VM ${entry.spec.name} did not survive: ${(error as Error).message}`);
      }
    }
    await this.saveVms();
    return { running, gone };
  }

  private saveVms(): Promise<void> {
    return this.journal.saveVms(
      [...this.owned.values()].filter(({ vm }) => vm.child.pid !== undefined && vm.child.running()).map(({ vm, arrivedBy }) => ({ spec: vm.spec, pid: vm.child.pid as number, accel: vm.accel, ...(arrivedBy ? { arrivedBy } : {}) })),
    );
  }
}
