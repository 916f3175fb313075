/**
 * The evacuation batch: moves every VM of this host to the targets the planner chose, as many at
 * once as `nextStarts` allows, asking it again whenever one of the batch's migrations ends or the
 * link to one of them stalls (`linksStalled`). It talks to the engine only through
 * `EvacuationPort`, so it runs on fakes in tests.
 *
 * A VM no target can take, or whose migration fails, is recorded with why and the others go on.
 * A target lost mid-batch fails the migrations to it on their own (the engine rolls them back);
 * their VMs stay here and are not re-planned onto other targets in this version: the plan's
 * placement stands, so an operator can read what went where from the journal alone.
 *
 * Every change is saved through the port before it is announced. A restarted daemon hands the
 * saved state to `resume`: VMs not started yet start as before; migrations that were running are
 * the engine journal's business, and the batch only re-reads their outcome (`waitFor`).
 */
import { planEvacuation, nextStarts, type EvacuationVm, type InFlight, type PlanOptions } from './plan.js';
import type { Headroom } from './headroom.js';
import { bytesLeft, progressRecord, type BatchState, type BatchVm, type EvacuationRecord, type MigrationStatus, type VmOutcome } from './progress.js';

export interface EvacuationPort {
  ownHeadroom(signal: AbortSignal): Promise<Headroom>;
  /**
   * What this host's interfaces can send to `targets` at in all, bytes/s; undefined when it cannot
   * tell (uplink.ts). @throws only once `signal` aborted
   */
  uplink(targets: readonly string[], signal: AbortSignal): Promise<number | undefined>;
  /** @throws when the peer cannot be reached or answers badly: it is left out */
  peerHeadroom(peer: string, signal: AbortSignal): Promise<Headroom>;
  /** This host's VMs that are not migrating already. */
  vms(signal: AbortSignal): Promise<readonly EvacuationVm[]>;
  /** Starts (or queues) a migration; its id. @throws when the engine refuses it (the VM went away...) */
  migrate(vm: string, target: string): string;
  /** Resolves once the migration ended; rejects when the engine does not know it. */
  waitFor(migration: string): Promise<MigrationStatus>;
  status(migration: string): MigrationStatus | undefined;
  /** @throws when it can no longer be cancelled (past its point of no return) */
  cancel(migration: string): void;
  save(state: BatchState): Promise<void>;
  /** After each save, and whenever the port wants the progress re-read. */
  changed(record: EvacuationRecord): void;
  log(level: 'info' | 'warn' | 'error', message: string): void;
}

/** PlanOptions, with `uplink` derived from this host's interfaces or links when not given (`planBatch`). */
export type BatchOptions = Omit<PlanOptions, 'uplink'> & { readonly uplink?: number };

const message = (error: unknown) => (error as Error).message;

/**
 * Asks every target for its headroom (one that does not answer is left out, with why), lists the
 * VMs, takes the uplink from this host's interfaces (else `linkUplink`) and plans. @throws what
 * the port throws for this host's own headroom or VMs
 */
export async function planBatch(port: EvacuationPort, request: { readonly id: string; readonly targets: readonly string[]; readonly options: BatchOptions }, signal: AbortSignal): Promise<BatchState> {
  const [own, vms, answers] = await Promise.all([
    port.ownHeadroom(signal),
    port.vms(signal),
    Promise.all(request.targets.map((peer) => port.peerHeadroom(peer, signal).then((headroom) => ({ peer, headroom }), (error: unknown) => ({ peer, reason: message(error) })))),
  ]);
  const leftOut = answers.flatMap((answer) => ('reason' in answer ? [{ peer: answer.peer, reason: answer.reason }] : []));
  for (const { peer, reason } of leftOut) port.log('warn', `evacuation ${request.id}: target ${peer} left out: ${reason}`);
  const targets = answers.flatMap((answer) => ('headroom' in answer ? [answer.headroom] : []));
  const uplink = request.options.uplink ?? (await port.uplink(targets.map((target) => target.host), signal)) ?? linkUplink(own, targets, request.options.assumedLinkRate);
  const plan = planEvacuation(own, vms, targets, { ...request.options, uplink });
  for (const unplaced of plan.unplaced) port.log('warn', `evacuation ${request.id}: ${unplaced.message}`);
  const now = new Date().toISOString();
  return {
    id: request.id,
    createdAt: now,
    updatedAt: now,
    status: 'running',
    targets: request.targets,
    leftOut,
    plan,
    vms: [
      ...plan.placements.map((placement): BatchVm => ({ vm: placement.vm.name, target: placement.target, outcome: 'waiting' })),
      ...plan.unplaced.map((unplaced): BatchVm => ({ vm: unplaced.vm.name, outcome: 'unplaced', error: unplaced.message })),
    ],
  };
}

/**
 * The uplink when no interface says what it is (a veth, a virtual NIC): the rates measured to the
 * targets (the assumed one where never measured) added up. That is the most the measurements
 * show this host sending at, and it never binds before the targets' own links do. The best single
 * rate, which stood in before, is only right when every target sits behind one link: with each on
 * a link of its own one migration filled it, and the batch ran one at a time. Where the targets
 * do share a link no interface names, this over-counts it and the batch may start migrations that
 * split it: each gets less than planned, so each takes longer and its overlay grows more (the
 * throttle's to bound), while the link, full either way, carries as much.
 */
function linkUplink(own: Headroom, targets: readonly Headroom[], assumedLinkRate: number): number {
  const measured = new Map(own.links.map((link) => [link.peer, link.rate]));
  // With no target at all nothing is placed; the planner still takes no uplink of 0.
  return targets.reduce((sum, target) => sum + (measured.get(target.host) || assumedLinkRate), 0) || assumedLinkRate;
}

export class Evacuation {
  /** The batch's migrations being waited for, by VM: each settles once its end is recorded. */
  private readonly watching = new Map<string, Promise<void>>();
  private readonly rates: Map<string, number>;
  private readonly vms: ReadonlyMap<string, EvacuationVm>;
  /** The daemon's shutdown, once `run` was given it. */
  private stopping: AbortSignal | undefined;
  /** Ends the run loop's round, so it asks `nextStarts` again without waiting for a migration to end. */
  private wake: (() => void) | undefined;

  constructor(
    private readonly port: EvacuationPort,
    readonly state: BatchState,
  ) {
    this.rates = new Map(state.plan.targets.map((target) => [target.name, target.rate]));
    this.vms = new Map(state.plan.placements.map((placement) => [placement.vm.name, placement.vm]));
  }

  get id(): string {
    return this.state.id;
  }

  /**
   * Drives the batch until every VM ended, then saves its final state. A state saved by an
   * earlier daemon carries on from where it was (`resume`). Never rejects: what went wrong is in
   * the state.
   */
  async run(signal: AbortSignal): Promise<BatchState> {
    this.stopping = signal;
    for (const entry of this.state.vms) if (entry.outcome === 'running') this.watch(entry);
    for (;;) {
      // Made before startNext: a stall it did not see yet still ends this round.
      const woken = new Promise<void>((resolve) => (this.wake = resolve));
      if (this.state.status === 'running' && !signal.aborted) await this.startNext(signal);
      if (this.watching.size > 0) await Promise.race([...this.watching.values(), woken]);
      // With nothing running, startNext starts or fails a waiting VM each round: this ends.
      else if (signal.aborted || this.state.status !== 'running' || !this.state.vms.some((entry) => entry.outcome === 'waiting')) break;
    }
    // A daemon shutting down is not the batch's end: the next start resumes it.
    if (signal.aborted) return this.state;
    this.state.status = this.state.error ? 'failed' : this.state.status === 'cancelling' ? 'cancelled' : 'done';
    await this.commit();
    return this.state;
  }

  /** Starts no more; cancels the running ones (those past their point of no return finish). */
  cancel(): void {
    if (this.state.status !== 'running') return;
    this.state.status = 'cancelling';
    this.endWaiting('cancelled', 'not started: the evacuation was cancelled');
    for (const entry of this.state.vms) {
      if (entry.outcome !== 'running' || !entry.migration) continue;
      try {
        this.port.cancel(entry.migration);
      } catch (error) {
        this.port.log('warn', `evacuation ${this.id}: ${entry.vm} goes on: ${message(error)}`);
      }
    }
    void this.commit();
  }

  /**
   * The links to `peers` stalled: their migrations take no share in the planner's model while
   * they are, so what waited for link may start now instead of when one of them ends or fails.
   */
  linksStalled(peers: readonly string[]): void {
    if (this.state.status === 'running' && this.state.vms.some((entry) => entry.outcome === 'running' && peers.includes(entry.target as string))) this.wake?.();
  }

  record(): EvacuationRecord {
    return progressRecord(this.state, (id) => this.port.status(id), this.rates);
  }

  private async startNext(signal: AbortSignal): Promise<void> {
    let own: Headroom;
    try {
      own = await this.port.ownHeadroom(signal);
    } catch (error) {
      if (signal.aborted) return;
      // Without the buffer's state no start can be judged: the running ones end, no more start.
      this.state.error = `this host's headroom could not be read: ${message(error)}`;
      this.state.status = 'cancelling';
      this.endWaiting('failed', `not started: ${this.state.error}`);
      this.port.log('error', `evacuation ${this.id}: ${this.state.error}`);
      await this.commit();
      return;
    }
    if (this.state.status !== 'running') return;
    for (const link of own.links) if (link.rate > 0 && this.rates.has(link.peer)) this.rates.set(link.peer, link.rate);
    const running = this.state.vms.filter((entry) => entry.outcome === 'running');
    const flights = running.map((entry): InFlight => {
      const status = this.port.status(entry.migration as string);
      return { vm: entry.vm, cowBytes: status?.cowBytes ?? 0, remainingBytes: bytesLeft(this.vms.get(entry.vm) as EvacuationVm, status), stalled: status?.linkStalled ?? false };
    });
    const ended = this.state.vms.filter((entry) => entry.outcome !== 'waiting' && entry.outcome !== 'running').map((entry) => entry.vm);
    const { start } = nextStarts(this.state.plan, { running: flights, ended, buffer: own.buffer, otherOutgoing: Math.max(0, own.outgoing.used - running.length) });
    const waiting = this.state.vms.filter((entry) => entry.outcome === 'waiting');
    // The plan's incoming slots are as the targets reported them when it was made, and other
    // migrations may hold the outgoing ones: with nothing of the batch running there would be
    // nothing to wait for, so the next VM goes to the engine's queue, and a target still full
    // refuses it (recorded as its failure).
    const names = start.length === 0 && running.length === 0 ? waiting.slice(0, 1).map((entry) => entry.vm) : start.map((placement) => placement.vm.name);
    const refused = waiting.filter((candidate) => names.includes(candidate.vm)).filter((entry) => !this.begin(entry));
    if (names.length > 0) await this.commit();
    // A refused start frees what nextStarts counted it for: ask again (each round ends a VM).
    if (refused.length > 0) await this.startNext(signal);
  }

  /** Whether the engine took it. */
  private begin(entry: BatchVm): boolean {
    try {
      entry.migration = this.port.migrate(entry.vm, entry.target as string);
    } catch (error) {
      this.end(entry, 'failed', message(error));
      return false;
    }
    entry.outcome = 'running';
    this.port.log('info', `evacuation ${this.id}: ${entry.vm} → ${entry.target ?? ''} started as ${entry.migration}`);
    this.watch(entry);
    return true;
  }

  private watch(entry: BatchVm): void {
    const settled = this.port
      .waitFor(entry.migration as string)
      .then(
        (status) => this.end(entry, status.phase === 'completed' ? 'moved' : status.phase === 'cancelled' ? 'cancelled' : 'failed', status.error),
        (error: unknown) => this.end(entry, 'failed', message(error)),
      )
      .then(() => this.commit())
      .finally(() => this.watching.delete(entry.vm));
    this.watching.set(entry.vm, settled);
  }

  private end(entry: BatchVm, outcome: VmOutcome, error: string | undefined): void {
    if (outcome === 'cancelled' && this.stopping?.aborted && this.state.status === 'running') {
      // The shutdown cancelled it (the engine rolls back what is in flight): it goes again on resume.
      entry.outcome = 'waiting';
      delete entry.migration;
      return;
    }
    entry.outcome = outcome;
    if (error) entry.error = error;
    this.port.log(outcome === 'moved' ? 'info' : 'warn', `evacuation ${this.id}: ${entry.vm} ${outcome}${error ? `: ${error}` : ''}`);
  }

  private endWaiting(outcome: VmOutcome, error: string): void {
    for (const entry of this.state.vms) if (entry.outcome === 'waiting') this.end(entry, outcome, error);
  }

  /** Saved, then announced; a save that fails is logged and the batch goes on (as the engine's journal does). */
  private async commit(): Promise<void> {
    this.state.updatedAt = new Date().toISOString();
    await this.port.save(structuredClone(this.state)).catch((error: unknown) => this.port.log('error', `evacuation ${this.id}: journal: ${message(error)}`));
    this.port.changed(this.record());
  }
}

/** A batch a restarted daemon found unfinished in its journal, carrying on. */
export function resume(port: EvacuationPort, saved: BatchState, signal: AbortSignal): Evacuation {
  const batch = new Evacuation(port, saved);
  void batch.run(signal);
  return batch;
}
