/**
 * U(t): the source→target link rate estimated from samples of a cumulative byte counter (bytes
 * acknowledged on the daemon's transport sockets). Pure: the tracker feeds samples, this folds
 * them into an estimate.
 *
 * Shape it must reproduce (DESIGN §5): a transient ramp, then a steady state, and steps when
 * the link or the number of streams sharing it changes. Two EWMAs do it: a fast one that follows
 * the ramp and a slow one that is the steady estimate. When they disagree by more than
 * `stepThreshold` for longer than `stepSeconds`, the link has changed and the slow one snaps to
 * the fast one instead of crawling after it.
 *
 * Robustness: a counter that goes backwards (socket replaced, daemon restarted) starts a new
 * baseline; a gap longer than `maxGapSeconds` starts a new baseline too (its average would
 * blur a step); samples marked app-limited (nothing queued to send) may raise the estimate but
 * never lower it, since an idle link says nothing about its capacity.
 *
 * A cut link is not an error TCP reports for many minutes (it retransmits), so the model says
 * since when bytes have been waiting to go while none was acknowledged (`stalledSince`): the
 * daemon gives a migration up on that, not on a socket error that comes too late.
 */

export interface LinkSample {
  /** Seconds, monotonic. */
  readonly t: number;
  /** Cumulative bytes acknowledged. */
  readonly bytes: number;
  readonly appLimited?: boolean;
}

export type LinkPhase = 'unknown' | 'transient' | 'steady';

export interface LinkEstimate {
  /** Best estimate of U in bytes/s (0 while unknown). */
  readonly rate: number;
  readonly phase: LinkPhase;
  readonly fast: number;
  readonly slow: number;
  readonly last: LinkSample | undefined;
  /** Since when fast and slow have disagreed, or agreed (for the steady phase). */
  readonly divergingSince: number | undefined;
  readonly agreeingSince: number | undefined;
  /** Since when bytes have been queued to send and none acknowledged (undefined: moving, or idle). */
  readonly stalledSince: number | undefined;
}

export interface LinkModelOptions {
  readonly fastSeconds: number;
  readonly slowSeconds: number;
  readonly stepThreshold: number;
  readonly stepSeconds: number;
  readonly maxGapSeconds: number;
}

export const DEFAULT_LINK_OPTIONS: LinkModelOptions = {
  fastSeconds: 0.5,
  slowSeconds: 3,
  stepThreshold: 0.2,
  stepSeconds: 1,
  maxGapSeconds: 5,
};

export const UNKNOWN_LINK: LinkEstimate = {
  rate: 0,
  phase: 'unknown',
  fast: 0,
  slow: 0,
  last: undefined,
  divergingSince: undefined,
  agreeingSince: undefined,
  stalledSince: undefined,
};

/** Folds one sample into the estimate. Out-of-order or duplicate timestamps are ignored. */
export function updateLink(
  estimate: LinkEstimate,
  sample: LinkSample,
  options: LinkModelOptions = DEFAULT_LINK_OPTIONS,
): LinkEstimate {
  const last = estimate.last;
  if (!last) return { ...estimate, last: sample };
  const dt = sample.t - last.t;
  if (!(dt > 0)) return estimate;
  if (sample.bytes < last.bytes || dt > options.maxGapSeconds) return { ...estimate, last: sample, stalledSince: undefined };
  const observed = (sample.bytes - last.bytes) / dt;
  const stalledSince = observed === 0 && !sample.appLimited ? (estimate.stalledSince ?? last.t) : undefined;
  if (estimate.phase === 'unknown') {
    if (sample.appLimited) return { ...estimate, last: sample, stalledSince };
    return { ...estimate, rate: observed, fast: observed, slow: observed, phase: 'transient', last: sample, agreeingSince: sample.t, stalledSince };
  }
  const rate = sample.appLimited ? Math.max(observed, estimate.fast) : observed;
  const fast = ewma(estimate.fast, rate, dt, options.fastSeconds);
  let slow = ewma(estimate.slow, rate, dt, options.slowSeconds);
  const apart = Math.abs(fast - slow) > options.stepThreshold * Math.max(slow, fast);
  let divergingSince = apart ? (estimate.divergingSince ?? sample.t) : undefined;
  let agreeingSince = apart ? undefined : (estimate.agreeingSince ?? sample.t);
  if (divergingSince !== undefined && sample.t - divergingSince >= options.stepSeconds) {
    slow = fast;
    divergingSince = undefined;
    agreeingSince = sample.t;
  }
  const steady = agreeingSince !== undefined && sample.t - agreeingSince >= options.slowSeconds;
  return {
    rate: steady ? slow : fast,
    phase: steady ? 'steady' : 'transient',
    fast,
    slow,
    last: sample,
    divergingSince,
    agreeingSince,
    stalledSince,
  };
}

function ewma(previous: number, observed: number, dt: number, tau: number): number {
  return previous + (1 - Math.exp(-dt / tau)) * (observed - previous);
}
