/**
 * The engine's durable memory over the journal: the phase of each outgoing migration, and which
 * migrations arrived here (whoever owns the VM now: the provider keeps its own VMs). `open` is
 * the first half of a restart.
 */
import { Journal, type Arrival, type OutgoingEntry } from './journal.js';

export class Persistence {
  readonly journal: Journal;
  private arrivals: Arrival[] = [];
  private readonly written = new Map<string, { readonly phase: string; readonly done: Promise<void> }>();

  constructor(dir: string) {
    this.journal = new Journal(dir);
  }

  async open(): Promise<void> {
    await this.journal.open();
    this.arrivals = await this.journal.arrivals();
  }

  hasArrived(migration: string): boolean {
    return this.arrivals.some((arrival) => arrival.migration === migration);
  }

  arrived(migration: string, vm: string): Promise<void> {
    this.arrivals.push({ migration, vm, at: new Date().toISOString() });
    return this.journal.saveArrivals(this.arrivals);
  }

  /** Journals an outgoing migration when its phase moved (progress alone is not worth an fsync). */
  outgoing(entry: OutgoingEntry): Promise<void> {
    const last = this.written.get(entry.id);
    if (last?.phase === entry.phase) return last.done;
    const done = this.journal.saveOutgoing(entry);
    this.written.set(entry.id, { phase: entry.phase, done });
    return done;
  }
}
