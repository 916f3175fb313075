/**
 * The many-host simulator: a cluster scenario played under one evacuation rule. Each draining
 * host runs its outgoing migrations through its own buffer and daemon (src/sim/host.ts, the
 * single-host model: base, mirror, RAM convergence, γ from lagged samples), so a migration lasts
 * what the single-host model says at the share of the links it gets. Links, per host: an uplink
 * and a downlink at the interface rate, and a ceiling on any one migration's streams; the
 * migrations in flight share them max-min fairly (src/evacuation/shares.ts). A target takes a
 * guest only if it has its memory (with QEMU's margin) and disk when the migration starts, as
 * cowbuf's preflight checks; otherwise that migration fails at once, whatever the rule decided.
 * A failed migration is not retried. A maintained host comes back empty at once (the next drain
 * of a rolling maintenance may use it). Deterministic: same scenario, rule and policy, same result.
 */
import { ValidationError } from '../errors.js';
import { maxMinRates } from '../evacuation/shares.js';
import { MEMORY_MARGIN } from '../migration/preflight.js';
import type { ClusterHost, ClusterScenario, ClusterVm } from './cluster-scenario.js';
import type { ClusterMigration, ClusterResult, ClusterSample, LeftBehind } from './cluster-report.js';
import { HostSim } from './host.js';
import type { SimPolicy } from './policies.js';
import { statusCounts } from './report.js';
import { end, isOpen, newRun, reportedRemaining, type Run } from './run.js';
import { fits, memoryFree, type ClusterView, type Decision, type Drainer, type HostView, type Strategy } from './strategies.js';

/** Seconds between two samples of the cluster for the plot. */
const SAMPLE_SECONDS = 5;

interface HostState {
  readonly spec: ClusterHost;
  status: 'up' | 'draining' | 'maintenance';
  readonly guests: Set<ClusterVm>;
  readonly incoming: Set<ClusterVm>;
  outgoing: number;
}

interface Flight {
  readonly run: Run;
  readonly vm: ClusterVm;
  readonly source: HostState;
  readonly target: HostState;
  readonly cold: boolean;
  share: number;
}

interface Drain {
  readonly source: HostState;
  readonly sim: HostSim;
  readonly drainer: Drainer;
  readonly pending: ClusterVm[];
  flights: Flight[];
  readonly ended: string[];
  readonly failed: string[];
  /** When its last migration ended or its last refusal came. */
  lastEvent: number;
  /** Something ended since the rule was last asked. */
  dirty: boolean;
}

export interface ClusterSimOptions {
  /** Called every few simulated seconds with the cluster's state (for plots and traces). */
  readonly onSample?: (sample: ClusterSample) => void;
}

/** @throws ValidationError when the policy needs a field the scenario lacks (sizeState) */
export function simulateCluster(scenario: ClusterScenario, strategy: Strategy, policy: SimPolicy, options: ClusterSimOptions = {}): ClusterResult {
  if (policy.buffer === 'size-state') {
    const missing = scenario.vms.find((vm) => vm.workload.sizeState === undefined);
    if (missing) throw new ValidationError(`profiles.${missing.profile}.sizeState`, undefined, 'present (the size-state policy needs it)');
  }
  const hosts = new Map(scenario.hosts.map((spec) => [spec.name, { spec, status: 'up', guests: new Set<ClusterVm>(), incoming: new Set<ClusterVm>(), outgoing: 0 } as HostState]));
  for (const vm of scenario.vms) (hosts.get(vm.host) as HostState).guests.add(vm);
  const queue = scenario.maintenance.kind === 'drain' ? [scenario.maintenance.hosts] : scenario.hosts.map((host) => [host.name]);
  const floorSeconds = floor(hosts, queue);
  const migrations: ClusterMigration[] = [];
  const leftBehind: LeftBehind[] = [];
  const sims: HostSim[] = [];
  let drains: Drain[] = [];
  let sharesStale = true;
  let peakOutgoing = 0;
  let peakIncoming = 0;
  let makespan = 0;
  const dt = scenario.tickSeconds;
  let tick = 0;
  let t = 0;

  const cluster = (): ClusterView => ({
    hosts: [...hosts.values()].map(view),
    running: drains.reduce((sum, drain) => sum + drain.flights.length, 0),
    migrationRate: scenario.migrationRate,
    assumedLinkRate: scenario.control.assumedLinkRate,
  });

  const record = (flight: Flight) => {
    const { run } = flight;
    migrations.push({
      vm: flight.vm.id,
      from: flight.source.spec.name,
      to: flight.target.spec.name,
      cold: flight.cold,
      status: run.phase as ClusterMigration['status'],
      ...(run.reason === undefined ? {} : { reason: run.reason }),
      startedAt: run.spec.start,
      seconds: run.endedAt - run.spec.start,
      starvedSeconds: run.starved,
      wantedWriteBytes: Math.round(run.wanted),
      writtenBytes: Math.round(run.written),
    });
  };

  const settle = (drain: Drain, flight: Flight) => {
    drain.lastEvent = Math.max(drain.lastEvent, flight.run.endedAt);
    flight.target.incoming.delete(flight.vm);
    flight.source.outgoing -= 1;
    if (flight.run.phase === 'completed') {
      flight.source.guests.delete(flight.vm);
      flight.target.guests.add(flight.vm);
    }
    record(flight);
    sharesStale = true;
    for (const drain of drains) drain.dirty = true;
  };

  const start = (drain: Drain, decision: Extract<Decision, { kind: 'start' }>) => {
    const { vm } = decision;
    drain.pending.splice(drain.pending.indexOf(vm), 1);
    const target = hosts.get(decision.target);
    if (target?.status !== 'up') throw new ValidationError('decision.target', decision.target, `a host that is up (rule ${strategy.name})`);
    // A stopped guest writes nothing and sends no RAM: only its disks cross.
    const workload = decision.cold ? { ...vm.workload, ram: 0, writeRate: 0, ramDirtyRate: 0 } : vm.workload;
    const run = newRun({ id: vm.id, start: t, ...workload });
    run.phase = 'base';
    const flight: Flight = { run, vm, source: drain.source, target, cold: decision.cold, share: 0 };
    const short = shortOf(vm, view(target));
    target.incoming.add(vm);
    drain.source.outgoing += 1;
    if (short) {
      end(run, 'failed', t, short);
      drain.ended.push(vm.id);
      drain.failed.push(vm.id);
      settle(drain, flight);
      return;
    }
    drain.flights.push(flight);
    // A cold migration has no overlay: it takes no bin.
    if (!decision.cold) drain.sim.admit(run, drain.flights.filter((f) => !f.cold).map((f) => f.run));
    peakOutgoing = Math.max(peakOutgoing, drain.flights.length);
    peakIncoming = Math.max(peakIncoming, target.incoming.size);
    sharesStale = true;
  };

  const decide = (drain: Drain) => {
    drain.dirty = false;
    for (;;) {
      const decision = drain.drainer.next({
        source: view(drain.source),
        cluster: cluster(),
        partition: drain.sim.daemon.partition,
        pending: drain.pending,
        running: drain.flights.map((f) => ({ vm: f.vm, target: f.target.spec.name, cowBytes: f.run.cow, remainingBytes: reportedRemaining(f.run) })),
        ended: drain.ended,
        failed: drain.failed,
      });
      if (!decision) return;
      if (decision.kind === 'start') {
        start(drain, decision);
      } else {
        drain.pending.splice(drain.pending.indexOf(decision.vm), 1);
        drain.lastEvent = Math.max(drain.lastEvent, t);
        leftBehind.push({ vm: decision.vm.id, host: drain.source.spec.name, why: 'refused', reason: decision.reason, ...(decision.detail === undefined ? {} : { detail: decision.detail }) });
      }
    }
  };

  for (; t < scenario.maxSeconds && (drains.length > 0 || queue.length > 0); tick += 1, t = tick * dt) {
    if (drains.length === 0) {
      drains = (queue.shift() as readonly string[]).map((name) => {
        const source = hosts.get(name) as HostState;
        source.status = 'draining';
        const sim = new HostSim(source.spec.buffer, policy, scenario.control);
        sims.push(sim);
        return { source, sim, drainer: strategy.drain(), pending: [...source.guests], flights: [], ended: [], failed: [], lastEvent: t, dirty: true };
      });
    }
    for (const drain of drains) if (drain.dirty) decide(drain);
    if (sharesStale) share(drains.flatMap((drain) => drain.flights), scenario.migrationRate);
    sharesStale = false;
    let sent = 0;
    for (const drain of drains) {
      const active = drain.flights.map((f) => f.run);
      drain.sim.beginTick(active);
      const shares = new Map(drain.flights.map((f) => [f.run, f.share]));
      sent += drain.sim.advanceAll(t, dt, active, (run) => shares.get(run) ?? 0, drain.flights.reduce((sum, f) => sum + f.share, 0));
      drain.sim.releaseEnded(active);
      const [open, closed] = partition(drain.flights, (f) => isOpen(f.run));
      drain.flights = open;
      for (const flight of closed) {
        drain.ended.push(flight.vm.id);
        if (flight.run.phase === 'failed') drain.failed.push(flight.vm.id);
        settle(drain, flight);
      }
    }
    if (options.onSample && tick % Math.max(1, Math.round(SAMPLE_SECONDS / dt)) === 0) options.onSample(sample(t, dt, drains, sent));
    for (const drain of drains.filter((d) => d.pending.length === 0 && d.flights.length === 0)) {
      makespan = Math.max(makespan, drain.lastEvent);
      finish(drain, leftBehind, scenario.maintenance.kind === 'rolling' ? 'up' : 'maintenance');
    }
    drains = drains.filter((d) => d.source.status === 'draining');
  }
  for (const drain of drains) {
    for (const flight of drain.flights) {
      end(flight.run, 'unfinished', t);
      record(flight);
    }
    finish(drain, leftBehind, 'maintenance');
  }
  return summarize(scenario, strategy, policy, { migrations, leftBehind, sims, floorSeconds, makespan: drains.length > 0 ? t : makespan, peakOutgoing, peakIncoming });
}

function view(host: HostState): HostView {
  let memory = host.spec.memory - host.spec.reservedMemory;
  let disk = host.spec.disk;
  for (const guest of host.guests) {
    memory -= guest.workload.ram;
    disk -= guest.workload.disk;
  }
  return {
    spec: host.spec,
    up: host.status === 'up',
    availableMemory: memory,
    availableDisk: disk,
    incoming: [...host.incoming].map((vm) => ({ memoryBytes: vm.workload.ram + MEMORY_MARGIN, diskBytes: vm.workload.disk })),
    outgoing: host.outgoing,
    instances: host.guests.size + host.incoming.size,
  };
}

/** Why `target` cannot take `vm` now, as its preflight would refuse it; undefined when it can. */
function shortOf(vm: ClusterVm, target: HostView): string | undefined {
  if (fits(vm, target)) return undefined;
  return memoryFree(target) < vm.workload.ram + MEMORY_MARGIN ? 'the target is out of memory' : 'the target is out of disk';
}

/** Every flight's share: its source's uplink, its target's downlink and the per-migration ceiling, max-min fair. */
function share(flights: readonly Flight[], migrationRate: number): void {
  const capacities = new Map<string, number>();
  for (const flight of flights) {
    capacities.set(`up:${flight.source.spec.name}`, flight.source.spec.nic);
    capacities.set(`down:${flight.target.spec.name}`, flight.target.spec.nic);
  }
  const rates = maxMinRates(capacities, flights.map((flight) => ({ uses: [`up:${flight.source.spec.name}`, `down:${flight.target.spec.name}`], cap: migrationRate })));
  flights.forEach((flight, index) => (flight.share = rates[index] as number));
}

function partition<T>(items: readonly T[], keep: (item: T) => boolean): [T[], T[]] {
  return [items.filter(keep), items.filter((item) => !keep(item))];
}

function sample(t: number, dt: number, drains: readonly Drain[], sent: number): ClusterSample {
  let buffer = 0;
  let capacity = 0;
  let running = 0;
  for (const drain of drains) {
    capacity += drain.source.spec.buffer;
    running += drain.flights.length;
    for (const flight of drain.flights) buffer += flight.run.cow;
  }
  return { t: t + dt, running, rate: sent / dt, buffer, capacity };
}

/** The drain is over: what is still on the host stays behind, and the host goes to `status`. */
function finish(drain: Drain, leftBehind: LeftBehind[], status: HostState['status']): void {
  const host = drain.source.spec.name;
  const told = new Set(leftBehind.filter((left) => left.host === host).map((left) => left.vm));
  for (const vm of drain.source.guests) {
    if (told.has(vm.id)) continue;
    if (drain.failed.includes(vm.id)) leftBehind.push({ vm: vm.id, host, why: 'failed', reason: 'its migration failed' });
    else leftBehind.push({ vm: vm.id, host, why: 'unfinished', reason: drain.flights.some((flight) => flight.vm === vm) ? 'still moving at maxSeconds' : 'not started by maxSeconds' });
  }
  drain.source.status = status;
}

/**
 * The floor no rule beats: the disk and RAM bytes on each host to be drained must leave it over
 * its uplink. Hosts drained together overlap (the slowest bounds); drains one after another add up.
 */
function floor(hosts: ReadonlyMap<string, HostState>, queue: readonly (readonly string[])[]): number {
  const seconds = (name: string) => {
    const host = hosts.get(name) as HostState;
    let bytes = 0;
    for (const vm of host.guests) bytes += vm.workload.disk + vm.workload.ram;
    return bytes / host.spec.nic;
  };
  return queue.reduce((sum, batch) => sum + Math.max(...batch.map(seconds)), 0);
}

interface Outcome {
  readonly migrations: readonly ClusterMigration[];
  readonly leftBehind: readonly LeftBehind[];
  readonly sims: readonly HostSim[];
  readonly floorSeconds: number;
  readonly makespan: number;
  readonly peakOutgoing: number;
  readonly peakIncoming: number;
}

function summarize(scenario: ClusterScenario, strategy: Strategy, policy: SimPolicy, outcome: Outcome): ClusterResult {
  const { migrations } = outcome;
  const live = migrations.filter((m) => !m.cold);
  const wanted = live.reduce((sum, m) => sum + m.wantedWriteBytes, 0);
  const cold = migrations.filter((m) => m.cold);
  return {
    scenario: scenario.name,
    strategy: strategy.name,
    rule: strategy.rule,
    policy: policy.name,
    ...statusCounts(migrations),
    cold: cold.length,
    coldDowntimeSeconds: cold.reduce((sum, m) => sum + m.seconds, 0),
    leftBehind: outcome.leftBehind,
    makespanSeconds: outcome.makespan,
    floorSeconds: outcome.floorSeconds,
    starvedSeconds: migrations.reduce((sum, m) => sum + m.starvedSeconds, 0),
    retainedWriteFraction: wanted > 0 ? live.reduce((sum, m) => sum + m.writtenBytes, 0) / wanted : 1,
    overflowEvents: outcome.sims.reduce((sum, sim) => sum + sim.overflowEvents, 0),
    peakBufferBytes: Math.max(0, ...outcome.sims.map((sim) => sim.peakBuffer)),
    peakOutgoing: outcome.peakOutgoing,
    peakIncoming: outcome.peakIncoming,
    migrations,
  };
}
