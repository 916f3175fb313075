/**
 * What a control tick reports (control-loop.ts): exactly the inputs each migration's γ was
 * computed from, what was applied, and how late the tick ran. The engine's link watch, the
 * daemon's metrics and the benches read it; none of them needs the loop itself.
 */
import type { PeerReading } from '../monitor/link-tracker.js';

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
  /** Bytes the guest has written to its drives (QEMU's wr_bytes, summed), as last sampled. */
  readonly written?: number;
  readonly throttle: number;
  /** `bps_wr` in force on each drive after this tick, when throttled. */
  readonly drives?: readonly number[];
  readonly applied: boolean;
  /** How long applying it took (QMP round trips), when it was applied this tick. */
  readonly actuationMs?: number;
  /** This tick's monitor round trip for a read-only query on the same VM: actuation's floor. */
  readonly monitorMs?: number;
  /** Write threshold armed on each overlay file after this tick (undefined: disarmed, or not yet armed). */
  readonly thresholds?: ReadonlyArray<number | undefined>;
  /** Why this migration was not sampled or actuated this tick (its last sample stood in). */
  readonly error?: string;
}

export type TickTrigger = 'period' | 'write-threshold';

export interface TickTrace {
  readonly t: number;
  /** `period` for the timer's ticks, `write-threshold` for one run early because an overlay crossed its threshold. */
  readonly trigger: TickTrigger;
  readonly durationMs: number;
  /** How much longer than the period the interval since the previous tick was. */
  readonly lagMs: number;
  readonly capacity: number;
  /** Per peer. */
  readonly links: readonly LinkTrace[];
  readonly migrations: readonly TraceEntry[];
}

/** A peer's link as a tick saw it. */
export interface LinkTrace {
  readonly peer: string;
  /** The acknowledged-bytes rate U. */
  readonly rate: number;
  readonly phase: string;
  readonly bytesAcked: number;
  /** The rate of its interface's tx counter, when one is watched. */
  readonly interfaceRate?: number;
  /** How long bytes have been waiting with none acknowledged: how long the link has been cut. */
  readonly stalledSeconds?: number;
}

/** A link tracker's reading at tick time `t` (seconds), as the trace carries it. */
export function linkTrace(reading: PeerReading, t: number): LinkTrace {
  return {
    peer: reading.peer,
    rate: reading.estimate.rate,
    phase: reading.estimate.phase,
    bytesAcked: reading.bytesAcked,
    ...(reading.interfaceEstimate ? { interfaceRate: reading.interfaceEstimate.rate } : {}),
    ...(reading.estimate.stalledSince !== undefined ? { stalledSeconds: t - reading.estimate.stalledSince } : {}),
  };
}
