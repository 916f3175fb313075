/**
 * The engine's outgoing migrations as records: each one's phase, progress and decisions, journaled
 * when its phase moves and announced on every change; the abort handle of each one under way; and
 * the admin's word each one past its point of no return may be waiting for (`resolve`).
 */
import { randomUUID } from 'node:crypto';
import { BufferFullError, UnknownMigrationError, ValidationError } from '../errors.js';
import type { TickTrace } from './tick-trace.js';
import type { Side } from './handoff.js';
import type { OutgoingEntry } from './journal.js';
import type { Persistence } from './persistence.js';
import { FINAL, HANDOFF, headOf, type MigrationHead, type Phase } from './record.js';
import type { Blackout, Progress } from './source.js';

export interface MigrationRecord extends MigrationHead {
  progress: Progress;
  /** The switchover as the hosts saw it, once the guest runs on the target. */
  blackout?: Blackout;
  /** From the last control tick: own bin, overlay bytes, shards, γ, link share. */
  buffer?: { bin: number; cow: number; shards: number; frozen: boolean; throttle: number; linkShare: number };
  readonly decisions: string[];
}

/** What the engine's `log` event carries. */
export interface MigrationLog {
  level: 'info' | 'warn' | 'error';
  migration?: string;
  message: string;
}

export interface LedgerHost {
  readonly state: Pick<Persistence, 'outgoing'>;
  /** A record changed (the engine's `migration` event). */
  changed(record: MigrationRecord): void;
  log(entry: MigrationLog): void;
}

const EMPTY_PROGRESS: Progress = { baseSent: 0, baseTotal: 0, mirrorRemaining: 0, mirrorCopied: 0, ramRemaining: 0, ramTotal: 0, ramTransferred: 0, ramStreams: 0, downtimeLimitMs: 0, cpuThrottlePercent: 0, postcopyRequests: 0 };

export class Ledger {
  private readonly records = new Map<string, MigrationRecord>();
  private readonly aborts = new Map<string, AbortController>();
  private readonly resolvers = new Map<string, (side: Side) => void>();

  constructor(private readonly host: LedgerHost) {}

  /** A new queued migration; announcing it is the caller's, once it is queued. */
  create(vm: string, peer: string, policy: string): MigrationRecord {
    const now = new Date().toISOString();
    const record: MigrationRecord = { id: `${vm}-${randomUUID().slice(0, 8)}`, vm, peer, policy, phase: 'queued', createdAt: now, updatedAt: now, progress: { ...EMPTY_PROGRESS }, decisions: [] };
    this.records.set(record.id, record);
    return record;
  }

  /** A journaled migration becomes a record again (history, or about to be resolved). */
  restore(entry: OutgoingEntry): void {
    this.records.set(entry.id, { ...entry, progress: { ...EMPTY_PROGRESS }, decisions: [] });
  }

  list(): readonly MigrationRecord[] {
    return [...this.records.values()];
  }

  /** @throws UnknownMigrationError */
  get(id: string): MigrationRecord {
    const record = this.records.get(id);
    if (!record) throw new UnknownMigrationError(id);
    return record;
  }

  changed(record: MigrationRecord): void {
    record.updatedAt = new Date().toISOString();
    this.journal(record).catch((error: Error) => this.host.log({ level: 'error', migration: record.id, message: `journal: ${error.message}` }));
    this.host.changed(record);
  }

  journal(record: MigrationRecord): Promise<void> {
    return this.host.state.outgoing(headOf(record));
  }

  settle(id: string, phase: Phase, error?: string, detail?: string): void {
    const record = this.get(id);
    record.phase = phase;
    if (error) record.error = error;
    this.changed(record);
    const said = error ?? detail;
    this.host.log({ level: phase === 'completed' ? 'info' : 'warn', migration: id, message: `migration ${phase}${said ? `: ${said}` : ''}` });
  }

  /** A migration is under way until `end`: the returned controller aborts it. */
  begin(id: string): AbortController {
    const controller = new AbortController();
    this.aborts.set(id, controller);
    return controller;
  }

  end(id: string): void {
    this.aborts.delete(id);
    this.resolvers.delete(id);
  }

  /** How many migrations are under way (neither queued nor settled). */
  get running(): number {
    return this.aborts.size;
  }

  isRunning(id: string): boolean {
    return this.aborts.has(id);
  }

  runningIds(): string[] {
    return [...this.aborts.keys()];
  }

  /** Aborts a migration under way (it rolls back); nothing for one that is not. */
  abort(id: string, reason: Error, decision?: string): void {
    if (decision) this.records.get(id)?.decisions.push(decision);
    this.aborts.get(id)?.abort(reason);
  }

  abortAll(reason: Error): void {
    for (const controller of this.aborts.values()) controller.abort(reason);
  }

  /** The buffer cannot hold this migration's overlay: it fails. */
  fail(id: string, reason: string): void {
    const record = this.records.get(id);
    if (!record) return;
    record.decisions.push(reason);
    this.host.log({ level: 'error', migration: id, message: reason });
    this.aborts.get(id)?.abort(new BufferFullError(reason));
  }

  /** Settles when an admin names the side that resumes this migration (`resolve`). */
  decision(id: string): Promise<Side> {
    return new Promise((resolve) => this.resolvers.set(id, resolve));
  }

  /** @throws UnknownMigrationError, ValidationError (not in doubt) */
  resolve(id: string, side: Side): MigrationRecord {
    const record = this.get(id);
    const resolver = this.resolvers.get(id);
    if (!HANDOFF.has(record.phase) || !resolver) throw new ValidationError('migration', id, `a migration in doubt (it is ${record.phase})`);
    record.decisions.push(`an admin resolved it: resume on the ${side}`);
    this.host.log({ level: 'warn', migration: id, message: `resolved by an admin: resume on the ${side}` });
    resolver(side);
    return record;
  }

  /** Copies what a control tick measured into the records of unsettled migrations. */
  observe(trace: TickTrace): void {
    for (const entry of trace.migrations) {
      const record = this.records.get(entry.id);
      if (!record || FINAL.has(record.phase)) continue;
      record.buffer = { bin: entry.bin, cow: entry.cow, shards: entry.shards.length, frozen: entry.frozen, throttle: entry.throttle, linkShare: entry.linkShare };
    }
  }
}
