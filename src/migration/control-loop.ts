/**
 * The control loop (one per daemon; a background loop that owns its timer). Every period it:
 * samples the overlay and link trackers, records the overlays in the partition Π, computes γ for
 * every migration with the configured policy from the measured link share U/N of its peer, and
 * applies `block_set_io_throttle bps_wr` to each migrating guest drive when γ moved beyond the
 * hysteresis. Migrations whose bytes no bin can hold are reported to be failed. Each tick emits a
 * trace of exactly the inputs γ was computed from.
 */
import { admit, emptyPartition, observe, release, resize, type Partition } from '../buffer/partition.js';
import { computeThrottles, type CopyPhase, type Throttle, type ThrottleDemand, type ThrottlePolicy } from '../buffer/throttle/policy.js';
import type { CowTracker, TrackedOverlay } from '../monitor/cow-tracker.js';
import type { LinkTracker } from '../monitor/link-tracker.js';
import type { QmpCommands } from '../qmp/commands.js';

export interface LoopMigration {
  readonly id: string;
  readonly peer: string;
  readonly qmp: QmpCommands;
  readonly overlays: readonly TrackedOverlay[];
  /** qdev paths (`<id>/virtio-backend`) of the guest drives to throttle. */
  readonly throttleTargets: readonly string[];
  /** Bytes still to cross the link before switchover, as last reported by the orchestrator. */
  remainingBytes: number;
  /** What it is putting on the link, as the orchestrator last set it. */
  phase?: CopyPhase;
  /** Multiplies γ: < 1 when the disk phase escalates. */
  throttleFactor: number;
  /** False once the throttle is lifted (pre-switchover): no more actuation. */
  throttled: boolean;
  lastApplied: number | undefined;
  /** This migration's policy; the loop's default when absent. */
  readonly policy?: ThrottlePolicy;
}

export interface TraceEntry {
  readonly id: string;
  readonly bin: number;
  readonly cow: number;
  readonly shards: ReadonlyArray<{ readonly bin: string; readonly bytes: number; readonly priority: number }>;
  readonly frozen: boolean;
  readonly meanPriority: number;
  readonly linkShare: number;
  readonly remainingBytes: number;
  readonly uniqueFraction: number;
  readonly throttle: number;
  readonly applied: boolean;
  /** How long applying it took (QMP round trips), when it was applied this tick. */
  readonly actuationMs?: number;
}

export interface TickTrace {
  readonly t: number;
  readonly durationMs: number;
  readonly capacity: number;
  readonly links: ReadonlyArray<{ readonly peer: string; readonly rate: number; readonly phase: string; readonly bytesAcked: number }>;
  readonly migrations: readonly TraceEntry[];
}

export interface ControlLoopOptions {
  readonly periodMs: number;
  readonly policy: ThrottlePolicy;
  /** Relative change of γ below which the throttle is not re-applied. */
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

export class ControlLoop {
  private state: Partition;
  private readonly migrations = new Map<string, LoopMigration>();
  /** Overlay id → migration id, so a tick maps readings to migrations without a scan. */
  private readonly overlayOwner = new Map<string, string>();
  private readonly unique = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly began = performance.now();

  constructor(
    capacity: number,
    private options: ControlLoopOptions,
  ) {
    this.state = emptyPartition(capacity);
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
  }

  /** Lifts the throttle of a migration now (pre-switchover or rollback) and stops actuating it. */
  async lift(id: string): Promise<void> {
    const migration = this.migrations.get(id);
    if (!migration) return;
    migration.throttled = false;
    for (const target of migration.throttleTargets) await migration.qmp.setIoThrottle(target, {});
    migration.lastApplied = undefined;
  }

  /** Forgets a migration and gives its bin back; its throttle must already be lifted. */
  remove(id: string): void {
    const migration = this.migrations.get(id);
    for (const overlay of migration?.overlays ?? []) {
      this.options.cow.untrack(overlay.id);
      this.overlayOwner.delete(overlay.id);
    }
    this.migrations.delete(id);
    this.unique.delete(id);
    if (this.state.bins.some((bin) => bin.owner === id)) this.state = release(this.state, id);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.tick((performance.now() - this.began) / 1000)
        .then((trace) => this.options.onTick?.(trace))
        .catch((error: unknown) => this.options.onError?.(error))
        .finally(() => {
          this.running = undefined;
        });
    }, this.options.periodMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One control step at time `t` (seconds). Public so tests and the simulator-like checks can drive it. */
  async tick(t: number): Promise<TickTrace> {
    const began = performance.now();
    const [cows, links] = await Promise.all([this.options.cow.sample(t), this.options.links.sample(t)]);
    const perMigration = new Map<string, number>();
    for (const reading of cows) {
      const owner = this.overlayOwner.get(reading.id);
      if (owner === undefined) continue;
      perMigration.set(owner, (perMigration.get(owner) ?? 0) + reading.allocated);
      this.unique.set(owner, reading.estimate.uniqueFraction);
    }
    this.state = observe(this.state, [...perMigration].filter(([id]) => this.state.bins.some((bin) => bin.owner === id)));
    for (const entry of this.state.unplaced) this.options.onMustFail(entry.migration, entry.bytes);

    const linkRate = new Map(links.map((reading) => [reading.peer, reading.estimate.rate > 0 ? reading.estimate.rate : this.options.assumedLinkRate]));
    const sharing = new Map<string, number>();
    for (const migration of this.migrations.values()) sharing.set(migration.peer, (sharing.get(migration.peer) ?? 0) + 1);
    const demands = new Map<string, ThrottleDemand>();
    for (const bin of this.state.bins) {
      const migration = this.migrations.get(bin.owner);
      const peerRate = migration ? (linkRate.get(migration.peer) ?? this.options.assumedLinkRate) : this.options.assumedLinkRate;
      demands.set(bin.owner, {
        linkShare: peerRate / Math.max(1, migration ? (sharing.get(migration.peer) ?? 1) : 1),
        remainingBytes: migration?.remainingBytes ?? 0,
        uniqueFraction: this.unique.get(bin.owner) ?? 1,
        ...(this.options.mirrorReadySeconds !== undefined ? { mirrorSeconds: this.options.mirrorReadySeconds } : {}),
        ...(migration?.phase ? { phase: migration.phase } : {}),
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
    const entries: TraceEntry[] = [];
    for (const throttle of throttles) {
      const migration = this.migrations.get(throttle.id);
      const demand = demands.get(throttle.id);
      let applied = false;
      let actuationMs: number | undefined;
      if (migration?.throttled && this.options.actuate) {
        const rate = Math.max(1, Math.round((throttle.rate * migration.throttleFactor) / migration.throttleTargets.length));
        const moved = migration.lastApplied === undefined || Math.abs(rate - migration.lastApplied) > this.options.hysteresis * migration.lastApplied;
        if (moved) {
          const sent = performance.now();
          for (const target of migration.throttleTargets) await migration.qmp.setIoThrottle(target, { bps_wr: rate });
          actuationMs = performance.now() - sent;
          migration.lastApplied = rate;
          applied = true;
        }
      }
      const own = throttle.view.holdings[0];
      entries.push({
        id: throttle.id,
        bin: own?.binSize ?? 0,
        cow: throttle.view.cowBytes,
        shards: throttle.view.holdings.slice(1).map((h) => ({ bin: h.bin, bytes: h.bytes, priority: h.priority })),
        frozen: own?.frozen ?? false,
        meanPriority: throttle.view.meanPriority,
        linkShare: demand?.linkShare ?? 0,
        remainingBytes: demand?.remainingBytes ?? 0,
        uniqueFraction: demand?.uniqueFraction ?? 1,
        throttle: throttle.rate,
        applied,
        ...(actuationMs !== undefined ? { actuationMs } : {}),
      });
    }
    return {
      t,
      durationMs: performance.now() - began,
      capacity: this.state.capacity,
      links: links.map((reading) => ({ peer: reading.peer, rate: reading.estimate.rate, phase: reading.estimate.phase, bytesAcked: reading.bytesAcked })),
      migrations: entries,
    };
  }
}
