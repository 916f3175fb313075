/**
 * The control loop (one per daemon; a background loop that owns its timer). Every period it:
 * samples the overlay and link trackers, records the overlays in the partition Π, computes γ for
 * every migration with the configured policy from the measured link share U/N of its peer (and,
 * in RAM pre-copy, the pace at which QEMU's RAM remaining falls), and
 * applies `block_set_io_throttle bps_wr` to each migrating guest drive, split by how fast each
 * drive writes. Migrations whose bytes no bin can hold are reported to be failed. Each tick emits
 * a trace of exactly the inputs γ was computed from, and how late the tick ran.
 *
 * No tick is blind for all because one VM failed: VMs are sampled and actuated in parallel, each
 * bounded by the period; a VM that fails keeps its last sample and the others go on. Nor is a
 * bin's edge reached blind between ticks: each tick arms a write threshold on every overlay a
 * period of γ ahead of its bin's edge (re-armed as bins are re-cut), and a crossing runs a tick
 * early (early-warning.ts).
 */
import { tickDeadline } from '../abort.js';
import { admit, emptyPartition, observe, release, resize, type Partition } from '../buffer/partition.js';
import { ramSecondsLeft, UNKNOWN_RAM, updateRam, type RamEstimate } from '../buffer/ram-model.js';
import { driveRates } from '../buffer/throttle/drives.js';
import { writeThresholds } from '../buffer/write-threshold.js';
import { computeThrottles, type CopyPhase, type Throttle, type ThrottleDemand, type ThrottlePolicy } from '../buffer/throttle/policy.js';
import type { CowReading, CowSampling, CowTracker, TrackedOverlay } from '../monitor/cow-tracker.js';
import type { LinkTracker } from '../monitor/link-tracker.js';
import type { QmpClient } from '../qmp/client.js';
import type { IoLimits, QmpCommands } from '../qmp/commands.js';
import { capWrites } from '../buffer/throttle/limits.js';
import { EarlyWarning } from './early-warning.js';
import { linkTrace, type TickTrace, type TickTrigger, type TraceEntry } from './tick-trace.js';

export interface LoopMigration {
  readonly id: string;
  readonly peer: string;
  readonly qmp: QmpCommands;
  /** Its QEMU's events, for the early warning (`BLOCK_WRITE_THRESHOLD`); none: no early warning. */
  readonly events?: Pick<QmpClient, 'listen'>;
  readonly overlays: readonly TrackedOverlay[];
  /** The guest drives to throttle (`throttleTarget()` of each disk), in the order of `overlays`. */
  readonly throttleTargets: readonly string[];
  /** Bytes still to cross the link before switchover, as last reported by the orchestrator. */
  remainingBytes: number;
  /**
   * What it is putting on the link, as the orchestrator last set it. In `base` no mirror counts
   * the overlay in `remainingBytes` yet: the loop adds its sampled size, all still to move.
   */
  phase?: CopyPhase;
  /** Multiplies γ: < 1 when the disk phase escalates. */
  throttleFactor: number;
  /** False once the throttle is lifted (pre-switchover): no more actuation. */
  throttled: boolean;
  /** The I/O limits an admin set on each of `throttleTargets`: kept under the cap, restored at the lift. */
  readonly baseline?: ReadonlyArray<Partial<IoLimits>>;
  /** `bps_wr` in force on each of `throttleTargets`, once applied. */
  lastApplied: readonly number[] | undefined;
  /** This migration's policy; the loop's default when absent. */
  readonly policy?: ThrottlePolicy;
}

export interface ControlLoopOptions {
  readonly periodMs: number;
  readonly policy: ThrottlePolicy;
  /** Relative increase of γ below which the throttle is not re-applied (decreases always are). */
  readonly hysteresis: number;
  /** False computes and traces γ but never applies it: only to show what the throttle prevents. */
  readonly actuate: boolean;
  /** Link rate assumed for a peer until its first measurement, bytes/s. */
  readonly assumedLinkRate: number;
  /** Seconds the disk mirror gets before the orchestrator escalates (policies plan for it). */
  readonly mirrorReadySeconds?: number;
  readonly cow: CowTracker;
  readonly links: LinkTracker;
  readonly onMustFail: (id: string, unplacedBytes: number) => void;
  readonly onTick?: (trace: TickTrace) => void;
  readonly onError?: (error: unknown) => void;
}

/** What the last successful sample of a migration's overlays said. */
interface Sampled {
  readonly cow: number;
  readonly uniqueFraction: number;
  /** Guest write rate of each drive, in the order of its overlays. */
  readonly writeRates: readonly number[];
  /** Guest bytes written to all its drives; undefined when QEMU did not say for one. */
  readonly written: number | undefined;
  /** Each overlay file's end (written extent, or allocation where QEMU did not say). */
  readonly extents: readonly number[];
  readonly monitorMs: number | undefined;
  /** The tick time of the sample. */
  readonly t: number;
}

interface Actuation {
  readonly applied: boolean;
  readonly actuationMs?: number;
  readonly error?: string;
}

export class ControlLoop {
  private state: Partition;
  private readonly migrations = new Map<string, LoopMigration>();
  /** Overlay id → migration id, so a tick maps readings to migrations without a scan. */
  private readonly overlayOwner = new Map<string, string>();
  private readonly sampled = new Map<string, Sampled>();
  /** RAM pre-copy's pace, per migration in the `ram` phase. */
  private readonly rams = new Map<string, RamEstimate>();
  /** Throttles being applied, so a lift waits for them instead of being overwritten by one. */
  private readonly actuating = new Map<string, Promise<Actuation>>();
  private timer: NodeJS.Timeout | undefined;
  /** An early tick waiting for its turn (at most 4 ticks a period). */
  private early: NodeJS.Timeout | undefined;
  /** A threshold fired during a tick: tick again when it is done. */
  private earlyAgain = false;
  private readonly warning: EarlyWarning;
  private running: Promise<void> | undefined;
  private readonly began = performance.now();
  private lastTick: number | undefined;

  constructor(
    capacity: number,
    private options: ControlLoopOptions,
  ) {
    this.state = emptyPartition(capacity);
    this.warning = new EarlyWarning(options.hysteresis, () => this.tickEarly());
  }

  get partition(): Partition {
    return this.state;
  }

  /** Swaps the policy (config reload). */
  setPolicy(policy: ThrottlePolicy): void {
    this.options = { ...this.options, policy };
  }

  /** Gives `id` a bin (Π re-cuts the others). */
  admit(id: string): void {
    this.state = admit(this.state, id);
  }

  /** Resizes the buffer and re-partitions the running migrations. @throws ShrinkBelowUsedError */
  resize(capacity: number): void {
    this.state = resize(this.state, capacity);
  }

  /** Starts throttling `migration`'s drives from the next tick on. */
  add(migration: LoopMigration): void {
    this.migrations.set(migration.id, migration);
    for (const overlay of migration.overlays) {
      this.options.cow.track(overlay);
      this.overlayOwner.set(overlay.id, migration.id);
    }
    this.warning.watch(migration);
  }

  /**
   * Lifts the throttle of a migration now (pre-switchover or rollback) and stops actuating it.
   * Its overlays stop being sampled too: its QEMU stops or its overlay is removed right after,
   * and the bin keeps the last size seen until `remove`.
   */
  async lift(id: string): Promise<void> {
    const migration = this.migrations.get(id);
    if (!migration) return;
    migration.throttled = false;
    this.warning.unwatch(id);
    for (const overlay of migration.overlays) this.options.cow.untrack(overlay.id);
    await this.actuating.get(id);
    await Promise.all(migration.throttleTargets.map((target, i) => migration.qmp.setIoThrottle(target, migration.baseline?.[i] ?? {})));
    migration.lastApplied = undefined;
  }

  /** Forgets a migration and gives its bin back; its throttle must already be lifted. */
  remove(id: string): void {
    const migration = this.migrations.get(id);
    this.warning.unwatch(id);
    for (const overlay of migration?.overlays ?? []) {
      this.options.cow.untrack(overlay.id);
      this.overlayOwner.delete(overlay.id);
    }
    this.migrations.delete(id);
    this.sampled.delete(id);
    this.rams.delete(id);
    if (this.state.bins.some((bin) => bin.owner === id)) this.state = release(this.state, id);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.run('period'), this.options.periodMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearTimeout(this.early);
    this.timer = undefined;
    this.early = undefined;
    await this.running;
  }

  private now(): number {
    return (performance.now() - this.began) / 1000;
  }

  private run(trigger: TickTrigger): void {
    if (this.running) {
      if (trigger === 'write-threshold') this.earlyAgain = true;
      return;
    }
    this.running = this.tick(this.now(), trigger)
      .then((trace) => this.options.onTick?.(trace))
      .catch((error: unknown) => this.options.onError?.(error))
      .finally(() => {
        this.running = undefined;
        if (this.earlyAgain) this.tickEarly();
        this.earlyAgain = false;
      });
  }

  /**
   * A write crossed a threshold: tick now instead of at the next period, but no sooner than a
   * quarter period after the last tick, so an overlay sitting at its edge cannot make the loop spin.
   */
  private tickEarly(): void {
    if (!this.timer || this.early) return;
    const sinceMs = this.lastTick === undefined ? Infinity : (this.now() - this.lastTick) * 1000;
    this.early = setTimeout(() => {
      this.early = undefined;
      this.run('write-threshold');
    }, Math.max(0, this.options.periodMs / 4 - sinceMs));
  }

  /** One control step at time `t` (seconds). Public so tests and the simulator-like checks can drive it. */
  async tick(t: number, trigger: TickTrigger = 'period'): Promise<TickTrace> {
    const began = performance.now();
    const { periodMs } = this.options;
    // A tick still running when the next was due, or a late timer: the throttle went unrevised that long.
    const lagMs = this.lastTick === undefined ? 0 : Math.max(0, (t - this.lastTick) * 1000 - periodMs);
    this.lastTick = t;
    // Sampling and actuation get half a period each, so a VM that hangs can neither stretch the
    // tick nor starve the others' actuation.
    const [cows, links] = await Promise.all([this.options.cow.sample(t, tickDeadline(periodMs / 2)), this.options.links.sample(t)]);
    const failed = this.record(t, cows);
    this.state = observe(this.state, [...this.sampled].filter(([id]) => this.state.bins.some((bin) => bin.owner === id)).map(([id, sample]) => [id, sample.cow] as const));
    for (const entry of this.state.unplaced) this.options.onMustFail(entry.migration, entry.bytes);

    // Until a link has been measured its rate is unknown; a measured 0 is a dead link, not unknown.
    const linkRate = new Map(links.map((reading) => [reading.peer, reading.estimate.phase === 'unknown' ? this.options.assumedLinkRate : reading.estimate.rate]));
    const measured = new Set(links.filter((reading) => reading.estimate.phase !== 'unknown').map((reading) => reading.peer));
    const sharing = new Map<string, number>();
    for (const migration of this.migrations.values()) sharing.set(migration.peer, (sharing.get(migration.peer) ?? 0) + 1);
    this.trackRam(t);
    const demands = new Map<string, ThrottleDemand>();
    for (const bin of this.state.bins) {
      const migration = this.migrations.get(bin.owner);
      const sample = this.sampled.get(bin.owner);
      const peerRate = migration ? (linkRate.get(migration.peer) ?? this.options.assumedLinkRate) : this.options.assumedLinkRate;
      const overlayLeft = migration?.phase === 'base' ? (sample?.cow ?? 0) : 0;
      const ram = this.rams.get(bin.owner);
      const ramSeconds = ram ? ramSecondsLeft(ram) : undefined;
      demands.set(bin.owner, {
        linkShare: peerRate / Math.max(1, migration ? (sharing.get(migration.peer) ?? 1) : 1),
        ...(migration && measured.has(migration.peer) ? {} : { linkAssumed: true }),
        remainingBytes: (migration?.remainingBytes ?? 0) + overlayLeft,
        uniqueFraction: sample?.uniqueFraction ?? 1,
        periodSeconds: (periodMs + lagMs) / 1000,
        ...(this.options.mirrorReadySeconds !== undefined ? { mirrorSeconds: this.options.mirrorReadySeconds } : {}),
        ...(migration?.phase ? { phase: migration.phase } : {}),
        ...(ramSeconds !== undefined ? { ramSeconds } : {}),
      });
    }
    // Each policy computes over the whole partition (Π and the owner clamp see every bin); each
    // migration takes the γ of its own policy.
    const policyOf = (id: string) => this.migrations.get(id)?.policy ?? this.options.policy;
    const byPolicy = new Map<ThrottlePolicy, Map<string, Throttle>>();
    for (const bin of this.state.bins) {
      const policy = policyOf(bin.owner);
      if (!byPolicy.has(policy)) byPolicy.set(policy, new Map(computeThrottles(policy, this.state, demands).map((t) => [t.id, t])));
    }
    const throttles = this.state.bins.map((bin) => byPolicy.get(policyOf(bin.owner))?.get(bin.owner)).filter((t) => t !== undefined);
    const actuating = tickDeadline(periodMs / 2);
    const [actuations, arming] = await Promise.all([
      Promise.all(throttles.map((throttle) => this.actuate(throttle, demands.get(throttle.id)?.linkShare ?? 0, actuating))),
      Promise.all(throttles.map((throttle) => this.arm(throttle, (periodMs + lagMs) / 1000, actuating))),
    ]);
    const entries = throttles.map((throttle, index): TraceEntry => {
      const demand = demands.get(throttle.id);
      const { applied, actuationMs, error = failed.get(throttle.id) ?? arming[index] } = actuations[index] ?? { applied: false };
      const migration = this.migrations.get(throttle.id);
      const drives = migration?.lastApplied;
      const sample = this.sampled.get(throttle.id);
      const monitorMs = sample?.t === t ? sample.monitorMs : undefined;
      const thresholds = migration?.events ? this.warning.armed(migration) : undefined;
      const own = throttle.view.holdings[0];
      return {
        id: throttle.id,
        bin: own?.binSize ?? 0,
        cow: throttle.view.cowBytes,
        shards: throttle.view.holdings.slice(1).map((h) => ({ bin: h.bin, bytes: h.bytes, priority: h.priority })),
        frozen: own?.frozen ?? false,
        meanPriority: throttle.view.meanPriority,
        linkShare: demand?.linkShare ?? 0,
        remainingBytes: demand?.remainingBytes ?? 0,
        uniqueFraction: demand?.uniqueFraction ?? 1,
        ...(sample?.written !== undefined ? { written: sample.written } : {}),
        throttle: throttle.rate,
        ...(drives ? { drives } : {}),
        ...(thresholds ? { thresholds } : {}),
        applied,
        ...(actuationMs !== undefined ? { actuationMs } : {}),
        ...(monitorMs !== undefined ? { monitorMs } : {}),
        ...(error !== undefined ? { error } : {}),
      };
    });
    return {
      t,
      trigger,
      durationMs: performance.now() - began,
      lagMs,
      capacity: this.state.capacity,
      links: links.map((reading) => linkTrace(reading, t)),
      migrations: entries,
    };
  }

  /** In the `ram` phase the orchestrator reports QEMU's RAM remaining: its pace says how long pre-copy still needs. */
  private trackRam(t: number): void {
    for (const migration of this.migrations.values()) {
      if (migration.phase === 'ram') this.rams.set(migration.id, updateRam(this.rams.get(migration.id) ?? UNKNOWN_RAM, { t, remaining: migration.remainingBytes }));
      else this.rams.delete(migration.id);
    }
  }

  /** Keeps each migration's sample when all its overlays answered; returns why the others did not. */
  private record(t: number, sampling: CowSampling): Map<string, string> {
    const failed = new Map<string, string>();
    for (const { id, error } of sampling.failures) {
      const owner = this.overlayOwner.get(id);
      if (owner !== undefined) failed.set(owner, error.message);
    }
    const readings = new Map(sampling.readings.map((reading) => [reading.id, reading]));
    for (const migration of this.migrations.values()) {
      const own = migration.overlays.map((overlay) => readings.get(overlay.id));
      if (failed.has(migration.id) || !own.every((reading) => reading !== undefined)) continue;
      // A migration's overlays are one VM's, measured by one set of queries: one round trip.
      this.sampled.set(migration.id, { cow: own.reduce((sum, r) => sum + r.allocated, 0), uniqueFraction: uniqueFraction(own), writeRates: own.map((r) => r.estimate.writeRate), written: sumKnown(own.map((r) => r.written)), extents: own.map((r) => r.extent ?? r.allocated), monitorMs: own[0]?.monitorMs, t });
    }
    return failed;
  }

  /** Arms the early warning one period of γ ahead of the bin's edge, while the migration is throttled. */
  private arm(throttle: Throttle, periodSeconds: number, signal: AbortSignal): Promise<string | undefined> {
    const migration = this.migrations.get(throttle.id);
    const sample = this.sampled.get(throttle.id);
    if (!migration?.throttled || !sample) return Promise.resolve(undefined);
    return this.warning.arm(migration, writeThresholds(throttle.view, sample.extents, throttle.rate * migration.throttleFactor * periodSeconds), signal);
  }

  /** Applies γ to a migration's drives when it fell, or rose beyond the hysteresis; never throws. */
  private actuate(throttle: Throttle, linkShare: number, signal: AbortSignal): Promise<Actuation> {
    const migration = this.migrations.get(throttle.id);
    if (!migration?.throttled || !this.options.actuate) return Promise.resolve({ applied: false });
    const writeRates = this.sampled.get(migration.id)?.writeRates ?? [];
    const rates = driveRates(throttle.rate * migration.throttleFactor, linkShare, migration.throttleTargets.map((_, i) => writeRates[i] ?? 0));
    const last = migration.lastApplied;
    const moved = rates.map((rate, i) => {
      const before = last?.[i];
      return before === undefined || rate < before || rate > before * (1 + this.options.hysteresis);
    });
    if (!moved.includes(true)) return Promise.resolve({ applied: false });
    const sent = performance.now();
    const applying = Promise.all(
      migration.throttleTargets.map((target, i) => (moved[i] ? migration.qmp.setIoThrottle(target, capWrites(migration.baseline?.[i] ?? {}, rates[i] ?? 0), { signal }) : undefined)),
    ).then(
      (): Actuation => {
        migration.lastApplied = rates.map((rate, i) => (moved[i] ? rate : (last?.[i] ?? rate)));
        return { applied: true, actuationMs: performance.now() - sent };
      },
      (error: unknown): Actuation => {
        // Which drives took it is unknown: every drive is applied again next tick.
        migration.lastApplied = undefined;
        return { applied: false, error: `applying the throttle: ${(error as Error).message}` };
      },
    );
    this.actuating.set(migration.id, applying);
    return applying.finally(() => {
      if (this.actuating.get(migration.id) === applying) this.actuating.delete(migration.id);
    });
  }
}

/** Overlay growth per byte written, over all of a VM's drives: each drive's u weighted by its writes. */
function uniqueFraction(readings: readonly CowReading[]): number {
  const written = readings.reduce((sum, r) => sum + r.estimate.writeRate, 0);
  // Nothing written lately: the most pessimistic drive speaks for the VM.
  if (written <= 0) return readings.length > 0 ? Math.max(...readings.map((r) => r.estimate.uniqueFraction)) : 1;
  return readings.reduce((sum, r) => sum + r.estimate.uniqueFraction * r.estimate.writeRate, 0) / written;
}

/** The sum, or undefined when any is unknown. */
function sumKnown(values: ReadonlyArray<number | undefined>): number | undefined {
  return values.every((v) => v !== undefined) ? values.reduce<number>((sum, v) => sum + v, 0) : undefined;
}
