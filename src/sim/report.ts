/**
 * The simulator's output shapes, fixed by shared/scenarios/README.md: the `--json` summary and
 * the `--trace` line of each tick.
 */
import type { CopyPhase } from '../buffer/throttle/policy.js';
import { viewMigrations } from '../buffer/view.js';
import type { Decision } from './daemon-view.js';
import type { SimPolicy } from './policies.js';
import type { ScenarioMigration } from './scenario.js';

export type Phase = CopyPhase;
export type MigrationStatus = 'completed' | 'failed' | 'unfinished';

/** How many of `migrations` ended each way, in the summaries' key order. */
export function statusCounts(migrations: readonly { readonly status: MigrationStatus }[]): Record<MigrationStatus, number> {
  const count = (status: MigrationStatus) => migrations.filter((m) => m.status === status).length;
  return { completed: count('completed'), failed: count('failed'), unfinished: count('unfinished') };
}

export interface SimMigrationResult {
  readonly id: string;
  readonly status: MigrationStatus;
  /** Why a failed migration failed. */
  readonly reason?: string;
  readonly seconds: number;
  readonly wantedWriteBytes: number;
  readonly writtenBytes: number;
  readonly peakCowBytes: number;
  readonly floorSeconds: number;
  /** Seconds the guest wanted more than γ while γ ≤ 3ε. */
  readonly starvedSeconds: number;
}

export interface SimResult {
  readonly scenario: string;
  readonly policy: string;
  readonly completed: number;
  readonly failed: number;
  /** Still running at maxSeconds. */
  readonly unfinished: number;
  /** Ticks in which the overlays needed more space than the buffer (or a VM's cap) could give. */
  readonly overflowEvents: number;
  /** Bin overflows in Π: bins that froze, and shards pushed onto another bin. */
  readonly freezeEvents: number;
  readonly shardEvents: number;
  /** Of those, the ones an admission's re-cut caused rather than an overlay's growth. */
  readonly recutEvents: number;
  readonly peakBufferBytes: number;
  readonly makespanSeconds: number;
  /** The floor no schedule beats for the completed migrations, from their start times. */
  readonly lowerBoundSeconds: number;
  readonly retainedWriteFraction: number;
  readonly floorSeconds: number;
  readonly starvedSeconds: number;
  readonly migrations: readonly SimMigrationResult[];
}

export interface TraceShard {
  readonly bin: string;
  readonly bytes: number;
  readonly priority: number;
}

export interface TraceMigration {
  readonly id: string;
  readonly phase: Phase;
  /** Own bin size (size-state: the VM's cap). */
  readonly bin: number;
  readonly cow: number;
  readonly shards: readonly TraceShard[];
  readonly frozen: boolean;
  readonly meanPriority: number;
  /** γ the daemon computed from the inputs on this line, bytes/s; null when the policy does not throttle. */
  readonly throttle: number | null;
  /** γ in effect this tick (decided a tick earlier, held by the hysteresis); null when none. */
  readonly applied: number | null;
  /** The other inputs of γ as the daemon estimated them: U/N, bytes still to ship, unique fraction. */
  readonly linkShare: number;
  readonly remainingBytes: number;
  readonly uniqueFraction: number;
  /** Bytes the guest has written since its migration began. */
  readonly written: number;
}

export interface TraceLine {
  readonly t: number;
  readonly capacity: number;
  readonly linkRate: number;
  readonly migrations: readonly TraceMigration[];
}

interface ActiveRun {
  readonly spec: ScenarioMigration;
  readonly phase: string;
  readonly cow: number;
  readonly written: number;
}

/** The daemon's last decision as a trace line: bin, overlay and inputs are what that γ was computed from. */
export function traceLine(
  t: number,
  policy: SimPolicy,
  bufferSize: number,
  decision: Decision,
  linkRate: number,
  active: readonly ActiveRun[],
  applied: (id: string) => number,
): TraceLine {
  const views = new Map(viewMigrations(decision.partition).map((view) => [view.id, view]));
  const migrations = active.map((run): TraceMigration => {
    const view = views.get(run.spec.id);
    const own = view?.holdings[0];
    const demand = decision.demands.get(run.spec.id);
    const inEffect = applied(run.spec.id);
    return {
      id: run.spec.id,
      phase: run.phase as Phase,
      bin: own?.binSize ?? run.spec.sizeState ?? 0,
      cow: view?.cowBytes ?? run.cow,
      shards: (view?.holdings.slice(1) ?? []).map((h) => ({ bin: h.bin, bytes: h.bytes, priority: h.priority })),
      frozen: own?.frozen ?? false,
      meanPriority: view?.meanPriority ?? 1,
      throttle: policy.throttle ? (decision.throttles.get(run.spec.id) ?? null) : null,
      applied: Number.isFinite(inEffect) ? inEffect : null,
      linkShare: demand?.linkShare ?? 0,
      remainingBytes: demand?.remainingBytes ?? 0,
      uniqueFraction: demand?.uniqueFraction ?? run.spec.uniqueFraction,
      written: Math.round(run.written),
    };
  });
  const capacity = policy.buffer === 'shared' ? bufferSize : active.reduce((sum, run) => sum + (run.spec.sizeState ?? 0), 0);
  return { t, capacity, linkRate, migrations };
}
