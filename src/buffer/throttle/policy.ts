/**
 * The throttle-policy interface and the rules every policy obeys (DESIGN §4): the owner of a
 * shared bin keeps priority over its guests (γ_guest ≤ γ_owner), and ε ≤ γ ≤ U/N. A policy only
 * proposes a raw rate per migration; `computeThrottles` applies those rules, so no policy can
 * break them.
 */
import type { MigrationId, Partition } from '../partition.js';
import { viewMigrations, type MigrationView } from '../view.js';

/** ε: the SLA floor, 0.01 MB/s with MB = 10^6 B. γ never goes below it (0 would mean "unlimited" to QEMU). */
export const EPSILON = 10_000;

/** What the migration is putting on the link: its base, its overlay (the disk mirror), or RAM. */
export type CopyPhase = 'base' | 'mirror' | 'ram';

/** What the control loop knows of one migration besides the partition. */
export interface ThrottleDemand {
  /** U/N: this migration's share of the measured source→target link, bytes/s. */
  readonly linkShare: number;
  /** True while the link has not been measured yet: `linkShare` is then the configured assumption. */
  readonly linkAssumed?: boolean;
  /** Bytes still to cross the link before switchover: base left + overlay not yet mirrored + RAM. */
  readonly remainingBytes: number;
  /** Learned overlay growth per byte written; above 1 when small writes allocate whole clusters. */
  readonly uniqueFraction: number;
  /** How long this γ stays in force before the next one: the control period, or longer when ticks run late. */
  readonly periodSeconds: number;
  /** Seconds the engine gives the disk mirror to become ready before it escalates; absent: no such deadline. */
  readonly mirrorSeconds?: number;
  /** Absent: not known. */
  readonly phase?: CopyPhase;
  /**
   * Seconds RAM pre-copy still needs at the pace its remaining falls (src/buffer/ram-model.ts),
   * longer than RAM remaining ÷ share when the guest re-dirties it; absent: not in RAM
   * pre-copy, or not known yet.
   */
  readonly ramSeconds?: number;
}

export interface ThrottlePolicy {
  readonly name: string;
  readonly summary: string;
  /** Raw γ in bytes/s for one migration, before the owner clamp and the [ε, U/N] bounds. */
  rate(view: MigrationView, demand: ThrottleDemand): number;
}

export interface Throttle {
  readonly id: MigrationId;
  /** γ in bytes/s, as applied with `block_set_io_throttle bps_wr`. */
  readonly rate: number;
  /** The view the policy read, kept so a trace can show the inputs of each γ. */
  readonly view: MigrationView;
}

/**
 * γ for every running migration, in admission order.
 * @throws Error when a running migration has no demand (a caller bug, not bad input)
 */
export function computeThrottles(
  policy: ThrottlePolicy,
  partition: Partition,
  demands: ReadonlyMap<MigrationId, ThrottleDemand>,
): readonly Throttle[] {
  const views = viewMigrations(partition);
  const rates = new Map<MigrationId, number>();
  for (const view of views) {
    const demand = demands.get(view.id);
    if (!demand) throw new Error(`no throttle demand for running migration ${view.id}`);
    rates.set(view.id, Math.min(policy.rate(view, demand), demand.linkShare));
  }
  clampGuestsToOwners(views, rates);
  return views.map((view) => ({ id: view.id, rate: Math.max(EPSILON, rates.get(view.id) ?? EPSILON), view }));
}

/**
 * γ_guest ≤ γ_owner for every non-frozen bin a guest's shard sits in (a frozen bin takes no new
 * bytes, so there is nothing left to compete for there). Applied to a fixed point because an
 * owner may itself be a clamped guest elsewhere; each pass only lowers rates, so it converges
 * within one pass per migration.
 */
function clampGuestsToOwners(views: readonly MigrationView[], rates: Map<MigrationId, number>): void {
  const guests = views.filter((view) => view.holdings.length > 1);
  for (let pass = 0; pass <= guests.length; pass += 1) {
    let changed = false;
    for (const guest of guests) {
      let rate = rates.get(guest.id) ?? EPSILON;
      for (const holding of guest.holdings) {
        if (holding.frozen) continue;
        const owner = rates.get(holding.bin) ?? rate;
        if (owner < rate) {
          rate = owner;
          changed = true;
        }
      }
      rates.set(guest.id, rate);
    }
    if (!changed) return;
  }
}
