/**
 * The simulated daemon: what its control loop knows of a run and what it does with it, so a
 * policy is judged on what it would get for real, not on the simulator's true state:
 * - samples are `samplingLagSeconds` old (0 by default: QEMU's written extent is current; a
 *   buffer sized by st_blocks alone, on zfs, sees allocation only once it syncs)
 *   and pass through the daemon's own estimators: the link model for U, the cow model for the
 *   unique fraction (1 until the guest has written enough to tell), the RAM model for the time
 *   RAM pre-copy still needs;
 * - Π is the daemon's: admissions and releases at once, overlay sizes from the lagged samples;
 * - γ computed at one control tick is in effect from the next tick on, and replaces the γ in
 *   effect only when it moved beyond the hysteresis, as `ControlLoop` does.
 * It also counts the bin overflows of its Π: bins that froze and shards that were pushed.
 */
import { admit, emptyPartition, observe, release, type Partition } from '../buffer/partition.js';
import { viewMigrations } from '../buffer/view.js';
import { DEFAULT_LINK_OPTIONS, UNKNOWN_LINK, updateLink, type LinkEstimate } from '../buffer/link-model.js';
import { ramSecondsLeft, UNKNOWN_RAM, updateRam, type RamEstimate } from '../buffer/ram-model.js';
import { RESERVE_FRACTION } from '../buffer/throttle/deadline.js';
import { computeThrottles, type CopyPhase, type ThrottleDemand } from '../buffer/throttle/policy.js';
import { UNKNOWN_COW, updateCow, type CowEstimate } from '../monitor/cow-model.js';
import type { SimPolicy } from './policies.js';
import type { ScenarioControl } from './scenario.js';

/** One migration's state as a sample taken at the end of a tick records it. */
export interface MigrationReading {
  readonly cow: number;
  /** Cumulative guest write bytes. */
  readonly written: number;
  /** Bytes still to cross, as the orchestrator reports them (source.ts). */
  readonly remaining: number;
  /** What it was putting on the link when sampled: in `ram`, `remaining` is QEMU's RAM remaining. */
  readonly phase: CopyPhase;
}

export interface Reading {
  readonly t: number;
  /** Cumulative bytes the link carried. */
  readonly linkBytes: number;
  /** False when the migrations left part of the link unused this tick (an app-limited sample). */
  readonly saturated: boolean;
  readonly migrations: ReadonlyMap<string, MigrationReading>;
}

/** The inputs and output of the last control tick, as the trace shows them. */
export interface Decision {
  readonly partition: Partition;
  readonly demands: ReadonlyMap<string, ThrottleDemand>;
  /** γ computed from them (bytes/s); empty when the policy does not throttle. */
  readonly throttles: ReadonlyMap<string, number>;
}

export class DaemonView {
  private partitionState: Partition;
  private readonly pendingReadings: Reading[] = [];
  private link: LinkEstimate = UNKNOWN_LINK;
  private readonly cows = new Map<string, CowEstimate>();
  private readonly remaining = new Map<string, number>();
  private readonly rams = new Map<string, RamEstimate>();
  private readonly applied = new Map<string, number>();
  private pending: ReadonlyMap<string, number> = new Map();
  private last: Decision;
  freezeEvents = 0;
  shardEvents = 0;
  /**
   * Of those, the ones an admission's re-cut caused (DESIGN §3.1) rather than growth a policy
   * could have held back: the bin's owner overflowed after a re-cut left its overlay (as it
   * truly was, written but maybe not yet sampled) fuller than the reserve `deadline` keeps, so
   * that bytes already written or growth at the floor ε were enough to overflow.
   */
  recutEvents = 0;
  /** Owners of bins an admission left fuller than the reserve allows, until space is reclaimed. */
  private squeezed = new Set<string>();

  constructor(
    capacity: number,
    private readonly policy: SimPolicy,
    private readonly control: ScenarioControl,
  ) {
    this.partitionState = emptyPartition(capacity);
    this.last = { partition: this.partitionState, demands: new Map(), throttles: new Map() };
  }

  get partition(): Partition {
    return this.partitionState;
  }

  get decision(): Decision {
    return this.last;
  }

  /**
   * `remaining`: what the orchestrator reports before its first progress sample (base + RAM);
   * `overlays`: every running overlay's true size now, to tell re-cut overflows from growth.
   */
  admit(id: string, remaining: number, overlays: ReadonlyMap<string, number>): void {
    const next = admit(this.partitionState, id);
    for (const bin of next.bins) {
      if (bin.frozen || (overlays.get(bin.owner) ?? 0) > (1 - RESERVE_FRACTION) * bin.size) this.squeezed.add(bin.owner);
    }
    this.transition(next);
    this.remaining.set(id, remaining);
  }

  release(id: string): void {
    if (this.partitionState.bins.some((bin) => bin.owner === id)) this.transition(release(this.partitionState, id));
    // Reclaimed space lifts the squeeze only where the overlay fits its bin's reserve again.
    for (const view of viewMigrations(this.partitionState)) {
      if (view.cowBytes <= (1 - RESERVE_FRACTION) * (view.holdings[0]?.binSize ?? 0)) this.squeezed.delete(view.id);
    }
    this.squeezed.delete(id);
    this.cows.delete(id);
    this.rams.delete(id);
    this.remaining.delete(id);
    this.applied.delete(id);
  }

  /** A sample was taken; the loop sees it once it is `samplingLagSeconds` old. */
  record(reading: Reading): void {
    this.pendingReadings.push(reading);
  }

  /** γ in effect for `id` this tick (bytes/s); Infinity when unthrottled. */
  throttleOf(id: string): number {
    return this.applied.get(id) ?? Infinity;
  }

  /**
   * Start of a tick: the γ decided at the last control tick, times the factor the disk phase
   * escalation set, takes effect where it moved beyond the hysteresis.
   */
  applyPending(factors: ReadonlyMap<string, number>): void {
    for (const [id, rate] of this.pending) {
      if (!this.partitionState.bins.some((bin) => bin.owner === id)) continue;
      const target = rate * (factors.get(id) ?? 1);
      const before = this.applied.get(id);
      if (before === undefined || Math.abs(target - before) > this.control.hysteresis * before) this.applied.set(id, target);
    }
    this.pending = new Map();
  }

  /**
   * One control tick at `t`: folds in the samples now old enough, observes the overlays in Π and
   * decides γ for the next tick. `phases`: what each migration puts on the link, which the
   * orchestrator knows at once. Returns the migrations whose bytes no bin can hold (must fail).
   */
  tick(t: number, phases: ReadonlyMap<string, CopyPhase>): readonly string[] {
    const seen = this.takeReadings(t);
    if (seen) {
      this.link = updateLink(this.link, { t: seen.t, bytes: seen.linkBytes, appLimited: !seen.saturated }, DEFAULT_LINK_OPTIONS);
      for (const [id, reading] of seen.migrations) {
        if (!this.partitionState.bins.some((bin) => bin.owner === id)) continue;
        this.cows.set(id, updateCow(this.cows.get(id) ?? UNKNOWN_COW, { t: seen.t, allocated: reading.cow, written: reading.written }));
        this.remaining.set(id, reading.remaining);
        if (reading.phase === 'ram') this.rams.set(id, updateRam(this.rams.get(id) ?? UNKNOWN_RAM, { t: seen.t, remaining: reading.remaining }));
        else this.rams.delete(id);
      }
      const running = [...seen.migrations].filter(([id]) => this.partitionState.bins.some((bin) => bin.owner === id));
      this.transition(observe(this.partitionState, running.map(([id, reading]) => [id, reading.cow] as const)));
    }
    const partition = this.partitionState;
    const rate = this.link.rate > 0 ? this.link.rate : this.control.assumedLinkRate;
    const share = rate / Math.max(1, partition.bins.length);
    const demands = new Map(
      partition.bins.map((bin): [string, ThrottleDemand] => {
        const phase = phases.get(bin.owner);
        const ramSeconds = phase === 'ram' ? ramSecondsLeft(this.rams.get(bin.owner) ?? UNKNOWN_RAM) : undefined;
        return [
        bin.owner,
        {
          linkShare: share,
          ...(this.link.rate > 0 ? {} : { linkAssumed: true }),
          remainingBytes: this.remaining.get(bin.owner) ?? 0,
          uniqueFraction: this.cows.get(bin.owner)?.uniqueFraction ?? 1,
          mirrorSeconds: this.control.mirrorReadySeconds,
          periodSeconds: this.control.periodSeconds,
          ...(phase ? { phase } : {}),
          ...(ramSeconds !== undefined ? { ramSeconds } : {}),
        },
      ];
      }),
    );
    const throttles =
      this.policy.throttle && demands.size > 0
        ? new Map(computeThrottles(this.policy.throttle, partition, demands).map((throttle) => [throttle.id, throttle.rate]))
        : new Map<string, number>();
    this.pending = throttles;
    this.last = { partition, demands, throttles };
    return partition.unplaced.map((entry) => entry.migration);
  }

  /** The newest reading at least `samplingLagSeconds` old, dropping the older ones; undefined when none is new. */
  private takeReadings(t: number): Reading | undefined {
    let seen: Reading | undefined;
    while (this.pendingReadings.length > 0 && (this.pendingReadings[0] as Reading).t <= t - this.control.samplingLagSeconds + 1e-9) {
      seen = this.pendingReadings.shift();
    }
    return seen;
  }

  /** Moves to `next`, counting its bin overflows. */
  private transition(next: Partition): void {
    const before = new Map(this.partitionState.bins.map((bin) => [bin.owner, bin]));
    for (const bin of next.bins) {
      const was = before.get(bin.owner);
      if (bin.frozen && !was?.frozen) this.count('freeze', bin.owner);
      const guestsBefore = new Set(was?.stack.slice(1).map((layer) => layer.migration));
      for (const layer of bin.stack.slice(1)) if (!guestsBefore.has(layer.migration)) this.count('shard', layer.migration);
    }
    this.partitionState = next;
  }

  /** One bin overflow of `migration`'s overlay. */
  private count(kind: 'freeze' | 'shard', migration: string): void {
    if (kind === 'freeze') this.freezeEvents += 1;
    else this.shardEvents += 1;
    if (this.squeezed.has(migration)) this.recutEvents += 1;
  }
}
