/**
 * What bench/calibrate.ts shows besides its table: one migration's control loop, real beside
 * simulated, so a gap in the table can be traced to the tick where the two diverge. Each side
 * gives per-tick rows (γ computed, `bps_wr` in force, overlay, bytes still to ship) and the
 * guest's cumulative writes; `timeline` prints them on a common grid of seconds since the
 * migration began. The real run's inputs and rows are saved, so `--replay` re-runs only the
 * simulator against a run already measured (a model change needs no new run of the test bed).
 */
import { readFile, writeFile } from 'node:fs/promises';

const MiB = 1024 ** 2;

/** One migration at one control tick, seconds from the migration's own start. */
export interface TickRow {
  readonly t: number;
  readonly phase: string;
  /** γ the policy computed, bytes/s (Infinity: none). */
  readonly gamma: number;
  /** Write limit in force on the guest's drive after the tick, bytes/s (Infinity: none). */
  readonly inForce: number;
  /** Whether the tick changed the limit (QEMU re-configured the drive's bucket). */
  readonly applied: boolean;
  readonly cow: number;
  readonly remaining: number;
  readonly share: number;
  /** The unique fraction the policy was given. */
  readonly unique: number;
  /** Guest bytes written to the drive so far (real: QEMU's wr_bytes as the loop sampled it). */
  readonly written?: number;
}

/** The guest's cumulative writes: bytes written since the migration began, at `t`. */
export interface WrittenPoint {
  readonly t: number;
  readonly bytes: number;
  /** The guest loop's own duration for its last iteration, seconds (real guests only). */
  readonly took?: number;
}

export interface MigrationTrace {
  readonly id: string;
  /** Seconds from the migration's start to its end. */
  readonly seconds: number;
  readonly wanted: number;
  readonly written: number;
  readonly ticks: readonly TickRow[];
  readonly writes: readonly WrittenPoint[];
  /** The engine's phases as they began, seconds from the migration's start (real runs only). */
  readonly phases?: ReadonlyArray<{ readonly phase: string; readonly t: number }>;
}

const last = <T extends { readonly t: number }>(rows: readonly T[], t: number): T | undefined => rows.filter((row) => row.t <= t + 1e-9).at(-1);

const rate = (bytes: number) => (Number.isFinite(bytes) ? (bytes / 1024).toFixed(0) : '∞');

/** Bytes written in (t − step, t], from the cumulative points. */
function writtenIn(points: readonly WrittenPoint[], t: number, step: number): number {
  return (last(points, t)?.bytes ?? 0) - (last(points, t - step)?.bytes ?? 0);
}

/** Bytes written by `t`, interpolated between the points (a heartbeat closes a second of steady writes). */
export function writtenAt(points: readonly WrittenPoint[], t: number): number {
  const after = points.findIndex((point) => point.t >= t);
  if (after < 0) return points.at(-1)?.bytes ?? 0;
  const next = points[after] as WrittenPoint;
  const before = points[after - 1];
  if (!before || next.t <= before.t) return next.bytes;
  return before.bytes + ((next.bytes - before.bytes) * (t - before.t)) / (next.t - before.t);
}

/**
 * Real beside simulated for one migration, one line every `step` seconds: phase, γ and limit in
 * force (KiB/s), re-applications in the step, overlay (MiB) and KiB written in the step.
 */
export function timeline(real: MigrationTrace, sim: MigrationTrace, step: number): string[] {
  const lines = [
    `${real.id}: real ${real.seconds.toFixed(1)} s, kept ${(real.written / real.wanted).toFixed(3)}; sim ${sim.seconds.toFixed(1)} s, kept ${(sim.written / sim.wanted).toFixed(3)}`,
    '   t  phase real/sim    γ KiB/s real/sim  in force real/sim  re-applied real/sim  cow MiB real/sim  u real/sim  written KiB real/sim  took s',
  ];
  const end = Math.max(real.seconds, sim.seconds);
  for (let t = step; t < end + step; t += step) {
    const r = last(real.ticks, t);
    const s = last(sim.ticks, t);
    const reapplied = (rows: readonly TickRow[]) => rows.filter((row) => row.applied && row.t > t - step && row.t <= t).length;
    const took = last(real.writes, t)?.took;
    lines.push(
      [
        t.toFixed(0).padStart(4),
        `${r?.phase ?? '–'}/${s?.phase ?? '–'}`.padEnd(16),
        `${r ? rate(r.gamma) : '–'}/${s ? rate(s.gamma) : '–'}`.padEnd(18),
        `${r ? rate(r.inForce) : '–'}/${s ? rate(s.inForce) : '–'}`.padEnd(18),
        `${reapplied(real.ticks)}/${reapplied(sim.ticks)}`.padEnd(20),
        `${r ? (r.cow / MiB).toFixed(1) : '–'}/${s ? (s.cow / MiB).toFixed(1) : '–'}`.padEnd(17),
        `${r ? r.unique.toFixed(2) : '–'}/${s ? s.unique.toFixed(2) : '–'}`.padEnd(11),
        `${(writtenIn(real.writes, t, step) / 1024).toFixed(0)}/${(writtenIn(sim.writes, t, step) / 1024).toFixed(0)}`.padEnd(21),
        took === undefined ? '–' : took.toFixed(2),
      ].join(' '),
    );
  }
  return lines;
}

/** Summary of where the writes went, per phase: seconds, KiB/s written and mean limit in force on each side. */
export function phaseShares(trace: MigrationTrace): string {
  const phases = [...new Set(trace.ticks.map((row) => row.phase))];
  return phases
    .map((phase) => {
      const rows = trace.ticks.filter((row) => row.phase === phase);
      const from = rows[0]?.t ?? 0;
      const to = trace.ticks[trace.ticks.indexOf(rows.at(-1) as TickRow) + 1]?.t ?? trace.seconds;
      const bytes = (last(trace.writes, to)?.bytes ?? 0) - (last(trace.writes, from)?.bytes ?? 0);
      const limits = rows.map((row) => row.inForce).filter(Number.isFinite);
      const limit = limits.length > 0 ? limits.reduce((sum, v) => sum + v, 0) / limits.length : Infinity;
      return `${phase} ${(to - from).toFixed(1)} s ${rate(bytes / Math.max(to - from, 1e-9))} KiB/s (limit ${rate(limit)})`;
    })
    .join(', ');
}

export async function save<T>(path: string, value: T): Promise<void> {
  await writeFile(path, JSON.stringify(value, (_, v: unknown) => (v === Infinity ? 'Infinity' : v)));
}

export async function load<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8'), (_, v: unknown) => (v === 'Infinity' ? Infinity : v)) as T;
}

/** Seconds from the migration's start at which `phase` began (undefined: never entered). */
export function phaseStart(trace: MigrationTrace, phase: string): number | undefined {
  return trace.phases?.find((p) => p.phase === phase)?.t;
}

/** Fraction of `writeRate` the guest wrote over [from, to] (seconds from the migration's start). */
export function keptBetween(trace: MigrationTrace, writeRate: number, from: number, to: number): number {
  return to > from ? (writtenAt(trace.writes, to) - writtenAt(trace.writes, from)) / (writeRate * (to - from)) : 1;
}

/**
 * What the drive took while the loop throttled it: wr_bytes from the first tick to the last,
 * the counterpart of the simulator's writes (heartbeats count whole iterations of the guest's
 * loop, and miss the one a switchover interrupts). Bytes written and wanted.
 */
export function throttledWindow(trace: MigrationTrace, writeRate: number): { written: number; wanted: number } | undefined {
  const sampled = trace.ticks.filter((row) => row.written !== undefined);
  const first = sampled[0];
  const final = sampled.at(-1);
  if (!first || !final || final.t <= first.t) return undefined;
  return { written: (final.written ?? 0) - (first.written ?? 0), wanted: writeRate * (final.t - first.t) };
}

/** The real guest's writes measured over three windows, to tell the throttle from the measure. */
export function windows(trace: MigrationTrace, writeRate: number): string {
  const base = phaseStart(trace, 'base') ?? 0;
  const switchover = phaseStart(trace, 'switchover') ?? trace.seconds;
  const drive = throttledWindow(trace, writeRate);
  return [
    `wr_bytes while throttled ${drive ? (drive.written / drive.wanted).toFixed(3) : '–'}`,
    `heartbeats before (10 s, unthrottled) ${keptBetween(trace, writeRate, -10, 0).toFixed(3)}`,
    `operation ${(trace.written / trace.wanted).toFixed(3)}`,
    `base at ${base.toFixed(1)} s → switchover at ${switchover.toFixed(1)} s ${keptBetween(trace, writeRate, base, switchover).toFixed(3)}`,
  ].join(', ');
}
