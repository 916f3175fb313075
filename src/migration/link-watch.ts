/**
 * Which migrations a cut link ends. TCP retransmits into a cut link for many minutes without an
 * error, so on its own a migration to an unreachable target would wait that long: its guest
 * throttled to ε while the overlay cannot drain, or, worse, switched to post-copy into nothing.
 * The link tracker says since when a peer has had bytes waiting and none acknowledged; past
 * `linkLostSeconds` every migration to that peer still before its point of no return rolls
 * back. One past it (finishing, in doubt, post-copy) is left to its own recovery, and while one
 * is, the link's streams are not broken under it.
 */
import type { TickTrace } from './tick-trace.js';
import { HANDOFF, type MigrationHead } from './record.js';

export interface LinkLoss {
  readonly peer: string;
  readonly seconds: number;
  /** Running migrations to roll back. */
  readonly rollBack: readonly string[];
}

/** `running` says whether a migration is under way (not queued, not settled). */
export function linkLosses(trace: Pick<TickTrace, 'links'>, records: Iterable<MigrationHead>, lostSeconds: number, running: (id: string) => boolean): LinkLoss[] {
  const lost = trace.links.filter((link) => (link.stalledSeconds ?? 0) >= lostSeconds);
  if (lost.length === 0) return [];
  const all = [...records];
  return lost.flatMap((link) => {
    const seconds = link.stalledSeconds ?? 0;
    const toPeer = all.filter((record) => record.peer === link.peer && running(record.id));
    if (toPeer.length === 0 || toPeer.some((record) => HANDOFF.has(record.phase))) return [];
    return [{ peer: link.peer, seconds, rollBack: toPeer.map((record) => record.id) }];
  });
}
