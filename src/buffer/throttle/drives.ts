/**
 * From one migration's γ to the `bps_wr` of each of its guest drives. γ is the budget for the
 * whole VM; a guest that writes to one disk and not the other would lose half of it to an even
 * split, so each drive gets a part in proportion to how fast it writes. Every drive keeps a
 * small floor of an even split (`IDLE_SHARE`): a throttled drive can only show the rate it was
 * allowed, and one that starts writing must be able to show more. Each rate is then held within
 * [ε, U/N], after the slow-mirror factor, so no factor can reach 0 (unlimited to QEMU) and no
 * drive may outrun the link share.
 */
import { EPSILON } from './policy.js';

/** Part of the budget shared evenly whatever the drives write. */
export const IDLE_SHARE = 0.1;

/**
 * Rates in bytes/s, one per entry of `writeRates` (each drive's measured guest write rate).
 * @param budget γ times the slow-mirror factor, bytes/s
 * @param linkShare U/N, bytes/s
 */
export function driveRates(budget: number, linkShare: number, writeRates: readonly number[]): number[] {
  const count = writeRates.length;
  const total = writeRates.reduce((sum, rate) => sum + Math.max(0, rate), 0);
  const ceiling = Math.max(EPSILON, linkShare);
  return writeRates.map((rate) => {
    const share = total > 0 ? (1 - IDLE_SHARE) * (Math.max(0, rate) / total) + IDLE_SHARE / count : 1 / count;
    return Math.round(Math.min(ceiling, Math.max(EPSILON, budget * share)));
  });
}
