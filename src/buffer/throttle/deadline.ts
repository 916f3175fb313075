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
 * unplanned (samples seen late, re-dirtying beyond what the RAM model has seen), and the time
 * left is never taken below `MIN_HORIZON_SECONDS` nor below `HORIZON_PERIODS` control periods,
 * or the last ticks before switchover (B → 0) would grant a rate that overshoots the room before
 * the next tick can take it back (a γ stays in force for a whole period, 60 s on some hosts).
 *
 * RAM pre-copy takes longer than RAM ÷ share when the guest re-dirties it, so in that phase the
 * time left is at least what the RAM model (src/buffer/ram-model.ts) says, from the pace at which
 * RAM remaining falls: B is taken as max(B, S · `ramSeconds`).
 *
 * Room is not the only limit: the engine gives the disk mirror `mirrorSeconds`, then half that
 * again with γ tightened, before it restarts the mirror from scratch in write-blocking mode, so
 * an overlay the link share cannot carry in that time fails the migration however large the
 * bin. F is capped by what the share carries in `MIRROR_MARGIN` of that window, less the
 * overlay already there (`mirrorRoom` says where an overlay beyond it may still grow).
 */
import type { MigrationView } from '../view.js';
import type { CopyPhase, ThrottleDemand, ThrottlePolicy } from './policy.js';

/** Unique fraction below which the estimate is not trusted (avoids dividing by ~0). */
const MIN_UNIQUE_FRACTION = 0.05;
export const RESERVE_FRACTION = 0.05;
export const MIN_HORIZON_SECONDS = 10;
export const HORIZON_PERIODS = 3;
/** Share of the mirror's window the existing overlay may take: the rest copies the writes that arrive meanwhile. */
export const MIRROR_MARGIN = 0.9;
/**
 * Once the mirror runs every write crosses the link, so writes may take only part of it, or
 * the migration's own bytes would not get through: half while the mirror copies the overlay,
 * a fifth during RAM pre-copy, which the guest re-dirties as it is sent and which the engine
 * aborts when it does not converge in time. Phase unknown: the mirror's share.
 */
export const WRITE_SHARE: Readonly<Record<CopyPhase, number>> = { base: 1, mirror: 0.5, ram: 0.2 };
/** Growth still allowed in the base phase to an overlay beyond all the mirror's window carries, per byte left to cross. */
export const BASE_OVERRUN = 0.1;
/** The mirror's window before the restart, in units of `mirrorSeconds` (source.ts `mirrorUntilReady`). */
const MIRROR_WINDOW = 1.5;

/** Room this migration can plan with: its fair part of the free space in its non-frozen bins, less the reserve. */
function usableRoom(view: MigrationView): number {
  let room = 0;
  for (const holding of view.holdings) {
    if (holding.frozen) continue;
    room += (holding.binSize * (1 - RESERVE_FRACTION) - holding.binUsed) / holding.holders;
  }
  return Math.max(0, room);
}

/**
 * Growth the mirror's window leaves: what the share carries in `MIRROR_MARGIN` of the window,
 * less the overlay already there. An overlay beyond all the window carries at the share of the
 * moment (a link dip, or newcomers sharing the link) gains nothing from a guest held at ε: it is
 * mirrored in time only if the share comes back. In the base phase, where writes cost no link,
 * it may then grow by `BASE_OVERRUN` of the bytes still to cross. An overlay the window can
 * still carry is held to it, and so is any overlay once the mirror copies (every write there
 * slows the copy) and in RAM pre-copy, where the window has passed but the writes of a guest
 * this large for its share take the link its RAM needs before the engine's completion timeout.
 * No window is planned on a link not yet measured: the assumed rate (100 Mbit/s by default)
 * says nothing of what a 25 Gbit/s uplink will mirror, and held every new migration at ε for
 * its first seconds; the room and the horizon still bound γ until the first measurement.
 */
function mirrorRoom(view: MigrationView, demand: ThrottleDemand): number {
  if (demand.mirrorSeconds === undefined || demand.linkAssumed) return Infinity;
  const carried = demand.linkShare * demand.mirrorSeconds * MIRROR_WINDOW;
  if (demand.phase === 'base' && view.cowBytes >= carried) return BASE_OVERRUN * demand.remainingBytes;
  return carried * MIRROR_MARGIN - view.cowBytes;
}

export const deadline: ThrottlePolicy = {
  name: 'deadline',
  summary: 'room left ÷ bytes still to ship: the fastest writes that cannot overflow before switchover',
  rate(view, demand) {
    const room = Math.max(0, Math.min(usableRoom(view), mirrorRoom(view, demand)));
    const unique = Math.max(MIN_UNIQUE_FRACTION, demand.uniqueFraction);
    const horizon = Math.max(MIN_HORIZON_SECONDS, HORIZON_PERIODS * demand.periodSeconds);
    const toShip = Math.max(demand.remainingBytes, demand.linkShare * Math.max(horizon, demand.ramSeconds ?? 0));
    const denominator = unique * (toShip + room);
    const rate = denominator > 0 ? (demand.linkShare * room) / denominator : demand.linkShare;
    return Math.min(rate, demand.linkShare * WRITE_SHARE[demand.phase ?? 'mirror']);
  },
};
