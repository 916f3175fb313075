/**
 * `lx066`: the paper's heuristic exactly (DESIGN §4, LXD spec LX066):
 *
 *     γ_i = min( Π·exp(−Σα·s / ((Π − s) + ε)) + ε , U/N )
 *
 * with Π and s taken over the migration's non-frozen bins, Σα its mean priority over every bin
 * that holds it (1 when not sharded), and γ = ε once s ≥ Π. Sizes in bytes and rates in bytes/s
 * with ε = 10^4 B/s is the paper's MB formula scaled by 10^6, so its figures carry over.
 * It looks only at the migration's own bytes, not at the shards its bin hosts: that is the
 * paper's, and the reason the project has a second policy.
 */
import type { MigrationView } from '../view.js';
import { EPSILON, type ThrottlePolicy } from './policy.js';

/** The red curve: the left term of the paper's min(). */
export function lx066Red(binBytes: number, cowBytes: number, meanPriority: number): number {
  if (binBytes <= 0 || cowBytes >= binBytes) return EPSILON;
  return binBytes * Math.exp((-meanPriority * cowBytes) / (binBytes - cowBytes + EPSILON)) + EPSILON;
}

/** Π and s of DESIGN §4: summed over the bins holding the migration that are not frozen. */
export function usableBinAndCow(view: MigrationView): { readonly binBytes: number; readonly cowBytes: number } {
  let binBytes = 0;
  let cowBytes = 0;
  for (const holding of view.holdings) {
    if (holding.frozen) continue;
    binBytes += holding.binSize;
    cowBytes += holding.bytes;
  }
  return { binBytes, cowBytes };
}

export const lx066: ThrottlePolicy = {
  name: 'lx066',
  summary: "the LX066 paper's heuristic, exact: exponential in the bin's fill, capped by the link share",
  rate(view) {
    const { binBytes, cowBytes } = usableBinAndCow(view);
    return lx066Red(binBytes, cowBytes, view.meanPriority);
  },
};
