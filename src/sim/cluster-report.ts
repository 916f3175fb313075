/**
 * What a cluster run reports (`cowbuf sim CLUSTER.json --json`), and the comparison table the
 * command prints and docs/evacuation.md quotes: one row per rule.
 */
import { formatBytes } from '../units.js';
import type { ClusterScenario } from './cluster-scenario.js';
import type { MigrationStatus } from './report.js';

export interface ClusterMigration {
  readonly vm: string;
  readonly from: string;
  readonly to: string;
  /** Moved stopped: every second of it was downtime. */
  readonly cold: boolean;
  readonly status: MigrationStatus;
  readonly reason?: string;
  readonly startedAt: number;
  readonly seconds: number;
  readonly starvedSeconds: number;
  readonly wantedWriteBytes: number;
  readonly writtenBytes: number;
}

/** A VM still on its host when that host's drain ended. */
export interface LeftBehind {
  readonly vm: string;
  readonly host: string;
  /** The rule would not move it, its migration failed (see `migrations`), or it was still moving at maxSeconds. */
  readonly why: 'refused' | 'failed' | 'unfinished';
  /** Short, alike for alike VMs, so the table can count them. */
  readonly reason: string;
  readonly detail?: string;
}

/** The cluster every few simulated seconds, for the plot and `--trace`. */
export interface ClusterSample {
  readonly t: number;
  /** Migrations in flight. */
  readonly running: number;
  /** Bytes/s the draining hosts sent during the tick. */
  readonly rate: number;
  /** Overlay bytes in the draining hosts' buffers, and their sizes together. */
  readonly buffer: number;
  readonly capacity: number;
}

export interface ClusterResult {
  readonly scenario: string;
  readonly strategy: string;
  readonly rule: string;
  readonly policy: string;
  readonly completed: number;
  readonly failed: number;
  readonly unfinished: number;
  readonly cold: number;
  readonly coldDowntimeSeconds: number;
  readonly leftBehind: readonly LeftBehind[];
  readonly makespanSeconds: number;
  /** Disk and RAM bytes that must leave each drained host, over its uplink (sequential drains add up). */
  readonly floorSeconds: number;
  readonly starvedSeconds: number;
  readonly retainedWriteFraction: number;
  readonly overflowEvents: number;
  readonly peakBufferBytes: number;
  /** Most migrations in flight at once from one host, and into one host. */
  readonly peakOutgoing: number;
  readonly peakIncoming: number;
  readonly migrations: readonly ClusterMigration[];
}

const COLUMNS = ['rule', 'moved', 'failed', 'left behind', 'cold (downtime s)', 'makespan s', '÷ floor', 'starved s', 'writes kept', 'peak out / in', 'why'];

/** The comparison as a Markdown table (readable as plain text too), one row per result. */
export function comparisonTable(results: readonly ClusterResult[]): string {
  const rows = results.map((r) => [
    r.strategy,
    String(r.completed),
    String(r.failed),
    String(r.leftBehind.length),
    `${r.cold} (${r.coldDowntimeSeconds.toFixed(0)})`,
    r.makespanSeconds.toFixed(0),
    r.floorSeconds > 0 && r.leftBehind.length === 0 ? (r.makespanSeconds / r.floorSeconds).toFixed(2) : '–',
    r.starvedSeconds.toFixed(0),
    `${(r.retainedWriteFraction * 100).toFixed(1)} %`,
    `${r.peakOutgoing} / ${r.peakIncoming}`,
    reasons(r),
  ]);
  return [COLUMNS, COLUMNS.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/** Why migrations failed and VMs stayed, counted by reason. */
function reasons(result: ClusterResult): string {
  const counts = new Map<string, number>();
  const add = (reason: string) => counts.set(reason, (counts.get(reason) ?? 0) + 1);
  for (const m of result.migrations) if (m.status === 'failed') add(`failed: ${m.reason ?? 'unknown'}`);
  for (const left of result.leftBehind) if (left.why !== 'failed') add(`${left.why}: ${left.reason}`);
  return [...counts].map(([reason, count]) => `${count}× ${reason}`).join('; ') || '–';
}

/** What `cowbuf sim CLUSTER.json` prints: the scenario in a line, the floor, the table, the rules. */
export function describeCluster(scenario: ClusterScenario, results: readonly ClusterResult[]): string {
  const drained = scenario.maintenance.kind === 'drain' ? new Set(scenario.maintenance.hosts) : undefined;
  const moving = scenario.vms.filter((vm) => !drained || drained.has(vm.host));
  const bytes = moving.reduce((sum, vm) => sum + vm.workload.disk + vm.workload.ram, 0);
  const what = drained ? `drain of ${[...drained].join(', ')}` : 'rolling maintenance of every host, one at a time';
  const first = results[0];
  return [
    `scenario ${scenario.name}: ${scenario.hosts.length} hosts, ${scenario.vms.length} VMs; ${what} (${moving.length} VMs, ${formatBytes(bytes)} of disk and RAM to start with)`,
    `throttle policy ${first?.policy ?? '–'}; floor ${first ? first.floorSeconds.toFixed(0) : '–'} s (those bytes over each drained host's uplink)`,
    '',
    comparisonTable(results),
    '',
    ...results.map((r) => `  ${r.strategy.padEnd(9)} ${r.rule}`),
    '',
  ].join('\n');
}
