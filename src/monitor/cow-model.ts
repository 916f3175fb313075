/**
 * What an overlay's samples say (pure): how fast it grows (allocated bytes), how fast the guest
 * writes (QEMU's wr_bytes, guest I/O only), and so the unique fraction u = growth ÷ writes that
 * the `deadline` policy needs.
 *
 * u is not bounded by 1: a 4 KiB write into a fresh 64 KiB qcow2 cluster grows the overlay by
 * 64 KiB (u = 16), and clamping it would let the throttle grant 16× what the room can take.
 *
 * The allocated size moves in steps when the filesystem only accounts at its sync (ZFS updates
 * st_blocks once per transaction group, every few seconds), while wr_bytes moves every tick. An
 * EWMA of per-tick ratios then swings between 0 and a spike on every sync. So u is taken over
 * whole step-to-step intervals, from the oldest step still within `windowSeconds` to the latest
 * one: each end sits just after a sync, and the ratio over whole intervals does not see the
 * period. When the size has not moved for `holdSeconds` (longer than any sync period), the
 * current sample ends the interval instead, so a guest that only rewrites drives u to 0.
 *
 * Until the guest has written enough to tell, u stays at 1 (the safe guess for a fresh
 * overlay). A counter that goes backwards (a new QEMU, a replaced file) starts a new baseline
 * and keeps the last estimates.
 */

export interface CowSample {
  readonly t: number;
  readonly allocated: number;
  /** Cumulative guest write bytes (query-blockstats wr_bytes), when known. */
  readonly written?: number;
}

export interface CowEstimate {
  readonly last: CowSample | undefined;
  /** Samples at which the allocated size was seen to grow (the baseline's first sample too), oldest first. */
  readonly steps: readonly CowSample[];
  /** Overlay growth over the step window, bytes/s. */
  readonly growthRate: number;
  /** Guest writes (EWMA), bytes/s. */
  readonly writeRate: number;
  /** Overlay growth per byte written; may exceed 1. */
  readonly uniqueFraction: number;
}

export interface CowModelOptions {
  /** Time constant of the write-rate EWMA. */
  readonly tauSeconds: number;
  /** How far back u and the growth rate look (several sync periods). */
  readonly windowSeconds: number;
  /** A size unchanged this long is read as no growth rather than as a sync not yet come. */
  readonly holdSeconds: number;
}

export const DEFAULT_COW_OPTIONS: CowModelOptions = { tauSeconds: 2, windowSeconds: 20, holdSeconds: 12 };

export const UNKNOWN_COW: CowEstimate = { last: undefined, steps: [], growthRate: 0, writeRate: 0, uniqueFraction: 1 };

/** Below this write rate (bytes/s) the ratio is noise and the unique fraction is kept. */
const MIN_WRITE_RATE = 64 * 1024;

export function updateCow(estimate: CowEstimate, sample: CowSample, options: CowModelOptions = DEFAULT_COW_OPTIONS): CowEstimate {
  const last = estimate.last;
  if (!last) return { ...estimate, last: sample, steps: [sample] };
  const dt = sample.t - last.t;
  if (!(dt > 0)) return estimate;
  const reset = sample.allocated < last.allocated || (sample.written !== undefined && last.written !== undefined && sample.written < last.written);
  if (reset) return { ...estimate, last: sample, steps: [sample] };

  let writeRate = estimate.writeRate;
  if (sample.written !== undefined && last.written !== undefined) {
    writeRate += (1 - Math.exp(-dt / options.tauSeconds)) * ((sample.written - last.written) / dt - writeRate);
  }
  const steps = [...estimate.steps];
  const latest = steps.at(-1);
  if (!latest || sample.allocated > latest.allocated) steps.push(sample);
  while (steps.length > 1 && (steps[1] as CowSample).t <= sample.t - options.windowSeconds) steps.shift();

  const first = steps[0] as CowSample;
  const newest = steps.at(-1) as CowSample;
  const end = sample.t - newest.t >= options.holdSeconds ? sample : newest;
  const span = end.t - first.t;
  let { growthRate, uniqueFraction } = estimate;
  if (span > 0) {
    const growth = end.allocated - first.allocated;
    growthRate = growth / span;
    const written = end.written !== undefined && first.written !== undefined ? end.written - first.written : undefined;
    if (written !== undefined && written > 0 && written >= MIN_WRITE_RATE * span) uniqueFraction = growth / written;
  }
  return { last: sample, steps, growthRate, writeRate, uniqueFraction };
}
