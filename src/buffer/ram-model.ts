/**
 * How long RAM pre-copy still needs, from samples of QEMU's `ram.remaining` (pure): the control
 * loop and the simulated daemon fold the same samples through it.
 *
 * RAM remaining over the link share is not the time left: the guest re-dirties pages already
 * sent, so a pass leaves part of the RAM to send again, and auto-converge only slows the guest
 * once dirtying outpaces the link. On `single-busy-vm` the RAM phase takes about four times
 * RAM ÷ share. What is measured is the pace at which remaining falls: an EWMA of it over
 * `tauSeconds` (long enough to smooth QEMU's per-pass steps and ticks with no new sample), and
 * the time left is remaining ÷ that pace.
 */

export interface RamSample {
  /** Seconds, monotonic. */
  readonly t: number;
  /** Bytes of RAM still to send (query-migrate `ram.remaining`). */
  readonly remaining: number;
}

export interface RamEstimate {
  readonly last: RamSample | undefined;
  /** How fast remaining falls, bytes/s (EWMA); undefined until two samples. */
  readonly drainRate: number | undefined;
}

export interface RamModelOptions {
  readonly tauSeconds: number;
}

export const DEFAULT_RAM_OPTIONS: RamModelOptions = { tauSeconds: 30 };

export const UNKNOWN_RAM: RamEstimate = { last: undefined, drainRate: undefined };

export function updateRam(estimate: RamEstimate, sample: RamSample, options: RamModelOptions = DEFAULT_RAM_OPTIONS): RamEstimate {
  const last = estimate.last;
  if (!last || sample.t < last.t) return { last: sample, drainRate: estimate.drainRate };
  const dt = sample.t - last.t;
  if (dt === 0) return estimate;
  const rate = (last.remaining - sample.remaining) / dt;
  if (estimate.drainRate === undefined) return { last: sample, drainRate: rate };
  const weight = Math.min(1, dt / options.tauSeconds);
  return { last: sample, drainRate: estimate.drainRate + weight * (rate - estimate.drainRate) };
}

/**
 * Seconds until RAM remaining reaches 0 at the pace seen; undefined while unknown or while it
 * does not fall (a stall is the engine's to handle: its stall detector aborts or goes post-copy).
 */
export function ramSecondsLeft(estimate: RamEstimate): number | undefined {
  const { last, drainRate } = estimate;
  if (!last || drainRate === undefined || drainRate <= 0) return undefined;
  return last.remaining / drainRate;
}
