/**
 * The scenario's link: the steady rate U∞ follows the trace steps, and after every change the
 * real rate relaxes towards the new U∞ with time constant `rampSeconds`:
 * U(t) = U∞ + (U_before − U∞)·e^(−(t − t_change)/ramp). From a cold start (U_before = 0) this is
 * the format's U∞·(1 − e^(−t/ramp)).
 */
import type { Scenario } from './scenario.js';

export interface LinkClock {
  /** U(t) in bytes/s; call with non-decreasing t. */
  rateAt(t: number): number;
}

export function linkClock(link: Scenario['link']): LinkClock {
  let target = link.bandwidth;
  let from = 0;
  let since = 0;
  let next = 0;
  const relaxed = (t: number): number =>
    link.rampSeconds > 0 ? target + (from - target) * Math.exp(-(t - since) / link.rampSeconds) : target;
  return {
    rateAt(t) {
      for (let step = link.trace[next]; step && step.at <= t; step = link.trace[next]) {
        from = relaxed(step.at);
        target = step.bandwidth;
        since = step.at;
        next += 1;
      }
      return relaxed(t);
    },
  };
}

/** The physical floor: the earliest time by which `bytes` could cross a link running at U∞ from second `from` on. */
export function floorSeconds(link: Scenario['link'], bytes: number, from = 0): number {
  let t = from;
  let rate = link.bandwidth;
  let left = bytes;
  for (const step of link.trace) {
    const span = step.at - t;
    if (span > 0 && left <= rate * span) break;
    if (span > 0) {
      left -= rate * span;
      t = step.at;
    }
    rate = step.bandwidth;
  }
  return t + left / rate;
}
