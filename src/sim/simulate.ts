/**
 * The deterministic discrete-time simulator behind `cowbuf sim` for one host and one link (the
 * tick's steps 2–4 are src/sim/host.ts, which the cluster simulator drives too). Each tick it:
 *  1. admits the migrations whose start has come (the daemon's Π re-cuts the bins);
 *  2. puts into effect the γ the daemon decided at its last control tick (src/sim/daemon-view.ts);
 *  3. advances every migration by its link share (src/sim/run.ts), and holds the overlays to
 *     the buffer: what the disk cannot hold fails the migration whose write did not fit;
 *  4. records a sample, and on control ticks lets the daemon decide from samples as old and as
 *     smoothed as it would see them (the trace line of the tick shows that decision); finished
 *     migrations give their bin back.
 * No clock, no randomness, no I/O: same scenario and policy, same result, byte for byte.
 */
import { ValidationError } from '../errors.js';
import { HostSim } from './host.js';
import { floorSeconds, linkClock } from './link.js';
import type { SimPolicy } from './policies.js';
import { end, isOpen, newRun, type Run } from './run.js';
import type { Scenario } from './scenario.js';
import { statusCounts, traceLine, type MigrationStatus, type SimMigrationResult, type SimResult, type TraceLine } from './report.js';

export interface SimOptions {
  /** Called once per tick, at its end, with the daemon's last γ and its inputs. */
  readonly onTick?: (line: TraceLine) => void;
}

/** @throws ValidationError when the policy needs a field the scenario lacks (sizeState) */
export function simulate(scenario: Scenario, policy: SimPolicy, options: SimOptions = {}): SimResult {
  if (policy.buffer === 'size-state') {
    scenario.migrations.forEach((migration, index) => {
      if (migration.sizeState === undefined) {
        throw new ValidationError(`migrations[${index}].sizeState`, undefined, 'present (the size-state policy needs it)');
      }
    });
  }
  const runs = scenario.migrations.map(newRun);
  const link = linkClock(scenario.link);
  const dt = scenario.tickSeconds;
  const host = new HostSim(scenario.bufferSize, policy, scenario.control);
  let tick = 0;
  let t = 0;

  for (; t < scenario.maxSeconds && runs.some((run) => run.phase === 'waiting' || isOpen(run)); tick += 1, t = tick * dt) {
    for (const run of runs) {
      if (run.phase === 'waiting' && run.spec.start <= t) {
        run.phase = 'base';
        host.admit(run, runs.filter(isOpen));
      }
    }
    const active = runs.filter(isOpen);
    host.beginTick(active);
    // U at mid-tick: the average rate over the tick, not its (ramp-starved) first instant.
    const linkRate = link.rateAt(t + dt / 2);
    const share = active.length > 0 ? linkRate / active.length : 0;
    host.advanceAll(t, dt, active, () => share, linkRate);
    const { daemon } = host;
    options.onTick?.(traceLine(t, policy, scenario.bufferSize, daemon.decision, linkRate, runs.filter(isOpen), (id) => daemon.throttleOf(id)));
    host.releaseEnded(active);
  }
  for (const run of runs) if (run.phase === 'waiting' || isOpen(run)) end(run, 'unfinished', t);
  const { daemon } = host;
  return summarize(scenario, policy, runs, { overflowEvents: host.overflowEvents, peakBuffer: host.peakBuffer, freezeEvents: daemon.freezeEvents, shardEvents: daemon.shardEvents, recutEvents: daemon.recutEvents });
}

interface Counters {
  readonly overflowEvents: number;
  readonly peakBuffer: number;
  readonly freezeEvents: number;
  readonly shardEvents: number;
  readonly recutEvents: number;
}

function summarize(scenario: Scenario, policy: SimPolicy, runs: readonly Run[], counters: Counters): SimResult {
  const migrations = runs.map(
    (run): SimMigrationResult => ({
      id: run.spec.id,
      status: run.phase as MigrationStatus,
      ...(run.reason !== undefined && run.phase === 'failed' ? { reason: run.reason } : {}),
      seconds: run.endedAt - run.spec.start,
      wantedWriteBytes: Math.round(run.wanted),
      writtenBytes: Math.round(run.written),
      peakCowBytes: run.cow,
      floorSeconds: run.floor,
      starvedSeconds: run.starved,
    }),
  );
  const wanted = migrations.reduce((sum, m) => sum + m.wantedWriteBytes, 0);
  const written = migrations.reduce((sum, m) => sum + m.writtenBytes, 0);
  return {
    scenario: scenario.name,
    policy: policy.name,
    ...statusCounts(migrations),
    overflowEvents: counters.overflowEvents,
    freezeEvents: counters.freezeEvents,
    shardEvents: counters.shardEvents,
    recutEvents: counters.recutEvents,
    peakBufferBytes: counters.peakBuffer,
    makespanSeconds: Math.max(...runs.map((run) => run.endedAt)),
    lowerBoundSeconds: lowerBound(scenario, runs.filter((run) => run.phase === 'completed')),
    retainedWriteFraction: wanted > 0 ? written / wanted : 1,
    floorSeconds: migrations.reduce((sum, m) => sum + m.floorSeconds, 0),
    starvedSeconds: migrations.reduce((sum, m) => sum + m.starvedSeconds, 0),
    migrations,
  };
}

/**
 * The earliest the completed migrations could all have ended: from each start time on, the
 * link at U∞ (no ramp) must carry every byte (disk, RAM once, overlay) of the migrations that
 * started then or later. The largest of these is a floor no schedule can beat.
 */
function lowerBound(scenario: Scenario, completed: readonly Run[]): number {
  let bound = 0;
  for (const from of new Set(completed.map((run) => run.spec.start))) {
    const bytes = completed.reduce((sum, run) => (run.spec.start >= from ? sum + run.spec.disk + run.spec.ram + run.cow : sum), 0);
    bound = Math.max(bound, floorSeconds(scenario.link, bytes, from));
  }
  return bound;
}
