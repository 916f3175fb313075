/**
 * `deadline`: the project's own policy (DESIGN §4, "going beyond the paper").
 *
 * The overlay never shrinks before switchover, so what matters is whether the room left can
 * absorb the writes still to come. With F the usable room, B the bytes still to cross the link
 * (base left + overlay not yet mirrored + RAM), S = U/N the link share and u the unique fraction
 * of writes, a write rate γ grows the overlay at u·γ and itself adds u·γ bytes to ship, so the
 * time left is T = B / (S − u·γ). Requiring u·γ·T ≤ F gives the largest sustainable rate:
 *
 *     γ = S · F / (u · (B + F))
 *
 * F counts every byte already in a bin, the owner's and the shards it hosts (the hole `lx066`
 * leaves), and a bin shared by several migrations splits its room among them.
 *
 * Two margins keep the bound honest on a real loop: F leaves `RESERVE_FRACTION` of the bin
 * unplanned (RAM re-dirtying and auto-converge stretch the time left beyond B/S), and the time
 * left is never taken below `MIN_HORIZON_SECONDS` nor below `HORIZON_PERIODS` control periods,
 * or the last ticks before switchover (B → 0) would grant a rate that overshoots the room before
 * the next tick can take it back (a γ stays in force for a whole period, 60 s on some hosts).
 */
import type { MigrationView } from '../view.js';
import type { ThrottlePolicy } from './policy.js';

/** Unique fraction below which the estimate is not trusted (avoids dividing by ~0). */
const MIN_UNIQUE_FRACTION = 0.05;
export const RESERVE_FRACTION = 0.05;
export const MIN_HORIZON_SECONDS = 10;
export const HORIZON_PERIODS = 3;

/** Room this migration can plan with: its fair part of the free space in its non-frozen bins, less the reserve. */
function usableRoom(view: MigrationView): number {
  let room = 0;
  for (const holding of view.holdings) {
    if (holding.frozen) continue;
    room += (holding.binSize * (1 - RESERVE_FRACTION) - holding.binUsed) / holding.holders;
  }
  return Math.max(0, room);
}

export const deadline: ThrottlePolicy = {
  name: 'deadline',
  summary: 'room left ÷ bytes still to ship: the fastest writes that cannot overflow before switchover',
  rate(view, demand) {
    const room = usableRoom(view);
    const unique = Math.max(MIN_UNIQUE_FRACTION, demand.uniqueFraction);
    const horizon = Math.max(MIN_HORIZON_SECONDS, HORIZON_PERIODS * demand.periodSeconds);
    const toShip = Math.max(demand.remainingBytes, demand.linkShare * horizon);
    const denominator = unique * (toShip + room);
    return denominator > 0 ? (demand.linkShare * room) / denominator : demand.linkShare;
  },
};
