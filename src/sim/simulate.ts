/**
 * The deterministic discrete-time simulator behind `cowbuf sim`. Each tick it:
 *  1. admits the migrations whose start has come (Π re-cuts the bins);
 *  2. asks the policy for γ from the current partition and link share (the trace records
 *     exactly these inputs);
 *  3. lets every guest write min(wanted, γ), growing its overlay by the unique fraction, and
 *     observes the overlays (what no bin can hold fails its migration);
 *  4. spends each migration's link share on its current phase: base shipping → overlay mirror
 *     (write-blocking: guest writes cross the link too) → RAM pre-copy with auto-converge →
 *     switchover; finished migrations give their bin back.
 * No clock, no randomness, no I/O: same scenario and policy, same result, byte for byte.
 */
import { admit, emptyPartition, observe, release, type Partition } from '../buffer/partition.js';
import { computeThrottles, EPSILON, type ThrottleDemand } from '../buffer/throttle/policy.js';
import { ValidationError } from '../errors.js';
import { floorSeconds, linkClock } from './link.js';
import type { SimPolicy } from './policies.js';
import type { Scenario, ScenarioMigration } from './scenario.js';
import { traceLine, type MigrationStatus, type Phase, type SimMigrationResult, type SimResult, type TraceLine } from './report.js';

/** Switchover happens once the RAM left fits in this much downtime at the link share. */
const DOWNTIME_SECONDS = 0.3;
/** QEMU auto-converge defaults: throttle 20 %, +10 % per step, at most 99 %. */
const CPU_THROTTLE_INITIAL = 0.2;
const CPU_THROTTLE_INCREMENT = 0.1;
const CPU_THROTTLE_MAX = 0.99;
const CPU_THROTTLE_STEP_SECONDS = 2;

interface Run {
  readonly spec: ScenarioMigration;
  phase: Phase | 'waiting' | MigrationStatus;
  baseLeft: number;
  backlog: number;
  cow: number;
  ramLeft: number;
  ramSent: number;
  cpuThrottle: number;
  nextCpuStep: number;
  wanted: number;
  written: number;
  floor: number;
  endedAt: number;
}

export interface SimOptions {
  /** Called once per tick with the inputs of that tick's γ. */
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
  const runs = scenario.migrations.map(
    (spec): Run => ({ spec, phase: 'waiting', baseLeft: spec.disk, backlog: 0, cow: 0, ramLeft: spec.ram, ramSent: 0, cpuThrottle: 0, nextCpuStep: 0, wanted: 0, written: 0, floor: 0, endedAt: 0 }),
  );
  const link = linkClock(scenario.link);
  const dt = scenario.tickSeconds;
  let partition = emptyPartition(scenario.bufferSize);
  let overflowEvents = 0;
  let peakBuffer = 0;
  let tick = 0;
  let t = 0;
  const open = (run: Run) => run.phase === 'base' || run.phase === 'mirror' || run.phase === 'ram';

  for (; t < scenario.maxSeconds && runs.some((run) => run.phase === 'waiting' || open(run)); tick += 1, t = tick * dt) {
    for (const run of runs) {
      if (run.phase === 'waiting' && run.spec.start <= t) {
        run.phase = 'base';
        if (policy.buffer === 'shared') partition = admit(partition, run.spec.id);
      }
    }
    const active = runs.filter(open);
    // U at mid-tick: the average rate over the tick, not its (ramp-starved) first instant.
    const linkRate = link.rateAt(t + dt / 2);
    const share = active.length > 0 ? linkRate / active.length : 0;
    const demands = new Map(active.map((run) => [run.spec.id, demandOf(run, share, dt)] as const));
    const throttles = throttleRates(policy, partition, demands);
    options.onTick?.(traceLine(t, policy, scenario.bufferSize, partition, linkRate, active, demands, throttles));

    // Writes: the overlay grows, then the partition (or the per-VM cap) must hold it.
    for (const run of active) {
      const gamma = throttles.get(run.spec.id) ?? Infinity;
      const wantedBytes = run.spec.writeRate * dt;
      const budget = share * dt;
      const linkBound = run.phase === 'base' ? Infinity : run.backlog > 0 || run.ramLeft > 0 ? budget / 2 : budget;
      const writtenBytes = Math.min(wantedBytes, gamma * dt, linkBound);
      run.wanted += wantedBytes;
      run.written += writtenBytes;
      if (run.spec.writeRate > gamma && gamma <= 2 * EPSILON) run.floor += dt;
      run.cow += Math.round(writtenBytes * run.spec.uniqueFraction);
      spendLink(run, budget - (run.phase === 'base' ? 0 : writtenBytes), dt);
    }
    peakBuffer = Math.max(peakBuffer, active.reduce((sum, run) => sum + run.cow, 0));
    let overflowed = false;
    if (policy.buffer === 'shared') {
      partition = observe(partition, active.map((run) => [run.spec.id, run.cow] as const));
      for (const entry of partition.unplaced) {
        const run = runs.find((candidate) => candidate.spec.id === entry.migration);
        if (run) end(run, 'failed', t + dt);
        overflowed = true;
      }
    } else {
      for (const run of active) {
        if (run.cow > (run.spec.sizeState ?? Infinity)) {
          run.cow = run.spec.sizeState ?? run.cow;
          end(run, 'failed', t + dt);
          overflowed = true;
        }
      }
    }
    if (overflowed) overflowEvents += 1;
    for (const run of active) if (run.phase === 'ram' && run.ramLeft <= share * DOWNTIME_SECONDS) end(run, 'completed', t + dt);
    if (policy.buffer === 'shared') {
      for (const run of active) if (!open(run) && partition.bins.some((bin) => bin.owner === run.spec.id)) partition = release(partition, run.spec.id);
    }
  }
  for (const run of runs) if (run.phase === 'waiting' || open(run)) end(run, 'unfinished', t);
  return summarize(scenario, policy, runs, overflowEvents, peakBuffer);
}

function demandOf(run: Run, share: number, periodSeconds: number): ThrottleDemand {
  const overlayLeft = run.phase === 'base' ? run.cow : run.backlog;
  return { linkShare: share, remainingBytes: run.baseLeft + overlayLeft + run.ramLeft, uniqueFraction: run.spec.uniqueFraction, periodSeconds };
}

function throttleRates(policy: SimPolicy, partition: Partition, demands: ReadonlyMap<string, ThrottleDemand>): Map<string, number> {
  if (!policy.throttle || demands.size === 0) return new Map();
  return new Map(computeThrottles(policy.throttle, partition, demands).map((throttle) => [throttle.id, throttle.rate]));
}

/** Spends this tick's link bytes on the migration's phase and moves it on when a phase is done. */
function spendLink(run: Run, bytes: number, dt: number): void {
  let left = Math.max(0, bytes);
  if (run.phase === 'base') {
    const sent = Math.min(left, run.baseLeft);
    run.baseLeft -= sent;
    left -= sent;
    if (run.baseLeft > 0) return;
    run.phase = 'mirror';
    run.backlog = run.cow;
  }
  if (run.phase === 'mirror') {
    const sent = Math.min(left, run.backlog);
    run.backlog -= sent;
    left -= sent;
    if (run.backlog > 0) return;
    run.phase = 'ram';
  }
  const dirty = run.ramSent >= run.spec.ram ? run.spec.ramDirtyRate * (1 - run.cpuThrottle) * dt : 0;
  run.ramLeft = Math.min(run.spec.ram, run.ramLeft + dirty);
  const sent = Math.min(left, run.ramLeft);
  run.ramLeft -= sent;
  run.ramSent += sent;
  if (run.ramSent >= run.spec.ram) {
    run.nextCpuStep -= dt;
    if (run.nextCpuStep <= 0) {
      run.cpuThrottle = run.cpuThrottle === 0 ? CPU_THROTTLE_INITIAL : Math.min(CPU_THROTTLE_MAX, run.cpuThrottle + CPU_THROTTLE_INCREMENT);
      run.nextCpuStep = CPU_THROTTLE_STEP_SECONDS;
    }
  }
}

function end(run: Run, status: MigrationStatus, at: number): void {
  run.phase = status;
  run.endedAt = at;
}

function summarize(scenario: Scenario, policy: SimPolicy, runs: readonly Run[], overflowEvents: number, peakBuffer: number): SimResult {
  const migrations = runs.map(
    (run): SimMigrationResult => ({
      id: run.spec.id,
      status: run.phase as MigrationStatus,
      seconds: run.endedAt - run.spec.start,
      wantedWriteBytes: Math.round(run.wanted),
      writtenBytes: Math.round(run.written),
      peakCowBytes: run.cow,
      floorSeconds: run.floor,
    }),
  );
  const wanted = migrations.reduce((sum, m) => sum + m.wantedWriteBytes, 0);
  const written = migrations.reduce((sum, m) => sum + m.writtenBytes, 0);
  const mustCross = runs.reduce((sum, run) => sum + run.spec.disk + run.spec.ram + run.cow, 0);
  return {
    scenario: scenario.name,
    policy: policy.name,
    completed: migrations.filter((m) => m.status === 'completed').length,
    failed: migrations.filter((m) => m.status === 'failed').length,
    unfinished: migrations.filter((m) => m.status === 'unfinished').length,
    overflowEvents,
    peakBufferBytes: peakBuffer,
    makespanSeconds: Math.max(...runs.map((run) => run.endedAt)),
    lowerBoundSeconds: floorSeconds(scenario.link, mustCross),
    retainedWriteFraction: wanted > 0 ? written / wanted : 1,
    floorSeconds: migrations.reduce((sum, m) => sum + m.floorSeconds, 0),
    migrations,
  };
}
