/**
 * What an overlay's samples say (pure): how fast it grows (allocated bytes), how fast the guest
 * writes (QEMU's wr_bytes, guest I/O only), and so the share of writes that land on new clusters,
 * the unique fraction the `deadline` policy needs. Both rates are EWMAs over `tauSeconds`.
 * Until the guest has written enough to tell, the unique fraction stays at 1 (the safe guess:
 * every byte grows the overlay). A write counter that goes backwards (a new QEMU after a
 * migration) starts a new baseline.
 */

export interface CowSample {
  readonly t: number;
  readonly allocated: number;
  /** Cumulative guest write bytes (query-blockstats wr_bytes), when known. */
  readonly written?: number;
}

export interface CowEstimate {
  readonly last: CowSample | undefined;
  /** Overlay growth, bytes/s. */
  readonly growthRate: number;
  /** Guest writes, bytes/s. */
  readonly writeRate: number;
  readonly uniqueFraction: number;
}

export const UNKNOWN_COW: CowEstimate = { last: undefined, growthRate: 0, writeRate: 0, uniqueFraction: 1 };

/** Below this write rate (bytes/s) the ratio is noise and the unique fraction is kept. */
const MIN_WRITE_RATE = 64 * 1024;

export function updateCow(estimate: CowEstimate, sample: CowSample, tauSeconds = 2): CowEstimate {
  const last = estimate.last;
  if (!last) return { ...estimate, last: sample };
  const dt = sample.t - last.t;
  if (!(dt > 0)) return estimate;
  const alpha = 1 - Math.exp(-dt / tauSeconds);
  const growth = Math.max(0, sample.allocated - last.allocated) / dt;
  const growthRate = estimate.growthRate + alpha * (growth - estimate.growthRate);
  let writeRate = estimate.writeRate;
  if (sample.written !== undefined && last.written !== undefined && sample.written >= last.written) {
    writeRate += alpha * ((sample.written - last.written) / dt - writeRate);
  }
  const uniqueFraction = writeRate >= MIN_WRITE_RATE ? Math.min(1, Math.max(0, growthRate / writeRate)) : estimate.uniqueFraction;
  return { last: sample, growthRate, writeRate, uniqueFraction };
}
