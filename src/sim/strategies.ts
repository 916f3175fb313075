/**
 * The evacuation rules the cluster simulator compares: where each VM of a draining host goes and
 * how many move at once. cowbuf's is the evacuation planner itself (src/evacuation/plan.ts) fed
 * with headroom computed by src/evacuation/headroom.ts; the others are the anchors' rules as
 * their code and documentation state them (docs/evacuation.md says what is modeled and what not).
 * A rule decides one move at a time against the cluster as it is then, until it has nothing to
 * start; the simulator asks again whenever a migration ends.
 */
import { UNKNOWN_LINK, type LinkEstimate } from '../buffer/link-model.js';
import { emptyPartition, type Partition } from '../buffer/partition.js';
import { bufferHeadroom, computeHeadroom, type Headroom, type IncomingGuest } from '../evacuation/headroom.js';
import { nextStarts, planEvacuation, type EvacuationPlan } from '../evacuation/plan.js';
import { ValidationError } from '../errors.js';
import { MEMORY_MARGIN } from '../migration/preflight.js';
import type { ClusterHost, ClusterVm } from './cluster-scenario.js';

/** A host as the rules see it now. */
export interface HostView {
  readonly spec: ClusterHost;
  /** May receive guests (not draining, not in maintenance). */
  readonly up: boolean;
  /** Memory its kernel could give a new process: all but the reserve and its guests'. */
  readonly availableMemory: number;
  /** Disk not taken by its guests' disks. */
  readonly availableDisk: number;
  /** Guests on their way in, each as it will weigh here. */
  readonly incoming: readonly IncomingGuest[];
  readonly outgoing: number;
  /** Guests it runs, plus the ones on their way in. */
  readonly instances: number;
}

export interface ClusterView {
  /** In scenario order. */
  readonly hosts: readonly HostView[];
  /** Migrations in flight anywhere in the cluster. */
  readonly running: number;
  /** What one migration's streams carry at most, bytes/s. */
  readonly migrationRate: number;
  /** Rate assumed for a link never measured (the daemon's assumedLinkRate). */
  readonly assumedLinkRate: number;
}

/** One of the drain's migrations in flight. */
export interface DrainFlight {
  readonly vm: ClusterVm;
  readonly target: string;
  readonly cowBytes: number;
  readonly remainingBytes: number;
}

export interface DrainNow {
  readonly source: HostView;
  readonly cluster: ClusterView;
  /** The source's buffer as its daemon partitions it. */
  readonly partition: Partition;
  /** Not started, not refused, in the order the host lists them. */
  readonly pending: readonly ClusterVm[];
  readonly running: readonly DrainFlight[];
  /** Started and ended, moved or failed. */
  readonly ended: readonly string[];
  /** Of those, the ones whose migration failed. */
  readonly failed: readonly string[];
}

export type Decision =
  | { readonly kind: 'start'; readonly vm: ClusterVm; readonly target: string; readonly cold: boolean }
  /** `reason` short and alike for alike VMs; `detail` the rule's own words. */
  | { readonly kind: 'refuse'; readonly vm: ClusterVm; readonly reason: string; readonly detail?: string };

/** One drain under one rule; `next` is undefined when nothing more may start now. */
export interface Drainer {
  next(now: DrainNow): Decision | undefined;
}

export interface Strategy {
  readonly name: string;
  /** The rule in one line, for the comparison table. */
  readonly rule: string;
  drain(): Drainer;
}

/** The daemon's default minBin (config/cowbuf.example.yaml). */
const MIN_BIN_BYTES = 64 * 1024 ** 2;

/** Memory free for one more incoming guest: what the kernel has, less the guests on their way. */
export function memoryFree(host: HostView): number {
  return host.availableMemory - host.incoming.reduce((sum, guest) => sum + guest.memoryBytes, 0);
}

export function diskFree(host: HostView): number {
  return host.availableDisk - host.incoming.reduce((sum, guest) => sum + guest.diskBytes, 0);
}

/** Whether `host` has the memory (with QEMU's margin) and disk for `vm` now. */
export function fits(vm: ClusterVm, host: HostView): boolean {
  return memoryFree(host) >= vm.workload.ram + MEMORY_MARGIN && diskFree(host) >= vm.workload.disk;
}

/** What a lone migration from `from` to `to` gets: what the link tracker would have measured. */
function loneRate(cluster: ClusterView, from: ClusterHost, to: ClusterHost): number {
  return Math.min(from.nic, to.nic, cluster.migrationRate);
}

function headroomOf(host: HostView, partition: Partition, links: Iterable<readonly [string, LinkEstimate]>): Headroom {
  return computeHeadroom({
    host: host.spec.name,
    partition,
    minBinBytes: MIN_BIN_BYTES,
    outgoing: { used: host.outgoing, limit: host.spec.maxOutgoing },
    maxIncoming: host.spec.maxIncoming,
    incoming: host.incoming,
    availableMemory: host.availableMemory,
    availableDisk: host.availableDisk,
    links,
  });
}

/** cowbuf: plans once from every host's headroom, then starts what `nextStarts` says. */
const cowbuf: Strategy = {
  name: 'cowbuf',
  rule: "planner: placement by targets' headroom, concurrency from buffer, link shares and incoming slots",
  drain() {
    let plan: EvacuationPlan | undefined;
    let refused = 0;
    return {
      next(now) {
        plan ??= planFor(now);
        const unplaced = plan.unplaced[refused];
        if (unplaced) {
          refused += 1;
          return { kind: 'refuse', vm: vmNamed(now.pending, unplaced.vm.name), reason: `no target (${unplaced.reason})`, detail: unplaced.message };
        }
        const starts = nextStarts(plan, {
          running: now.running.map((flight) => ({ vm: flight.vm.id, cowBytes: flight.cowBytes, remainingBytes: flight.remainingBytes })),
          ended: now.ended,
          buffer: bufferHeadroom(now.partition, MIN_BIN_BYTES),
          otherOutgoing: now.source.outgoing - now.running.length,
        });
        const first = starts.start[0];
        return first && { kind: 'start', vm: vmNamed(now.pending, first.vm.name), target: first.target, cold: false };
      },
    };
  },
};

function planFor(now: DrainNow): EvacuationPlan {
  const { source, cluster } = now;
  const targets = cluster.hosts.filter((host) => host.up && host !== source);
  const links = targets.map((host) => [host.spec.name, { ...UNKNOWN_LINK, rate: loneRate(cluster, source.spec, host.spec), phase: 'steady' }] as const);
  const vms = now.pending.map((vm) => ({ name: vm.id, memoryBytes: vm.workload.ram, diskBytes: vm.workload.disk, writeRate: vm.workload.writeRate * vm.workload.uniqueFraction }));
  const targetHeadrooms = targets.map((host) => headroomOf(host, emptyPartition(host.spec.buffer), []));
  return planEvacuation(headroomOf(source, now.partition, links), vms, targetHeadrooms, { uplink: source.spec.nic, minBinBytes: MIN_BIN_BYTES, assumedLinkRate: cluster.assumedLinkRate });
}

function vmNamed(vms: readonly ClusterVm[], id: string): ClusterVm {
  const vm = vms.find((candidate) => candidate.id === id);
  if (!vm) throw new ValidationError('plan', id, 'a VM still pending on the drained host');
  return vm;
}

interface AnchorRule {
  /** Whether the rule lets the source start one more now. */
  readonly mayStart: (now: DrainNow) => boolean;
  /** The rule's own check that `host` can take `vm` at all. */
  readonly fit: (vm: ClusterVm, host: HostView) => boolean;
  /** Whether `host` may take one more migration now. */
  readonly open: (host: HostView) => boolean;
  /** Among the hosts left, the lowest key wins; ties go to the earlier host in scenario order. */
  readonly prefer: (host: HostView) => number;
  /** Whether `vm` moves stopped (a cold migration) rather than live. */
  readonly cold: (vm: ClusterVm) => boolean;
  /** The first failed migration ends the evacuation: nothing more starts. */
  readonly stopsAtFailure: boolean;
}

/**
 * The anchors' common shape: the first pending VM (in the host's order) the rule can place now
 * starts. A VM that fits no host is refused once nothing of the drain runs (nothing it holds
 * will free up); until then it waits, as an unschedulable pod does.
 */
function anchor(name: string, rule: string, how: AnchorRule): Strategy {
  return {
    name,
    rule,
    drain: () => ({
      next(now) {
        const [first] = now.pending;
        if (first && how.stopsAtFailure && now.failed.length > 0) return { kind: 'refuse', vm: first, reason: 'the evacuation stopped at its first failure' };
        if (!first || !how.mayStart(now)) return undefined;
        const targets = now.cluster.hosts.filter((host) => host.up && host !== now.source);
        for (const vm of now.pending) {
          const fitting = targets.filter((host) => how.fit(vm, host));
          if (fitting.length === 0 && now.running.length === 0) return { kind: 'refuse', vm, reason: 'no host fits its memory and disk' };
          const target = fitting.filter(how.open).reduce<HostView | undefined>((chosen, host) => (chosen === undefined || how.prefer(host) < how.prefer(chosen) ? host : chosen), undefined);
          if (target) return { kind: 'start', vm, target: target.spec.name, cold: how.cold(vm) };
        }
        return undefined;
      },
    }),
  };
}

const incus = anchor('incus', 'max(NumCPU/16, 1) at once; the member with the fewest instances (no resource check); VMs with extra local disks move cold; the first failure stops the evacuation', {
  mayStart: (now) => now.running.length < Math.max(Math.floor(now.source.spec.cpus / 16), 1),
  fit: () => true,
  open: () => true,
  prefer: (host) => host.instances,
  cold: (vm) => vm.extraDisks > 0,
  // evacuateInstances runs them in one errgroup: its first error cancels the group's context.
  stopsAtFailure: true,
});

const KUBEVIRT_PER_NODE = 2;
const KUBEVIRT_PER_CLUSTER = 5;

const kubevirt = anchor('kubevirt', `${KUBEVIRT_PER_NODE} outbound per node, ${KUBEVIRT_PER_CLUSTER} per cluster, no inbound limit; the scheduler's fit, most memory free`, {
  mayStart: (now) => now.running.length < KUBEVIRT_PER_NODE && now.cluster.running < KUBEVIRT_PER_CLUSTER,
  fit: fits,
  open: () => true,
  prefer: (host) => -memoryFree(host),
  cold: () => false,
  stopsAtFailure: false,
});

/** vMotion's cost model: a host's budget, and what a migration without shared storage costs each end. */
const VMWARE_HOST_BUDGET = 8;
const VMWARE_COST = 4;
const vmwareOpen = (host: HostView) => (host.outgoing + host.incoming.length + 1) * VMWARE_COST <= VMWARE_HOST_BUDGET;

const vmware = anchor('vmware', `cost budget ${VMWARE_HOST_BUDGET} per host, ${VMWARE_COST} per migration without shared storage at each end; DRS-like fit, most memory free`, {
  mayStart: (now) => vmwareOpen(now.source),
  fit: fits,
  open: vmwareOpen,
  prefer: (host) => -memoryFree(host),
  cold: () => false,
  stopsAtFailure: false,
});

export const STRATEGIES: readonly Strategy[] = [cowbuf, incus, kubevirt, vmware];

/** @throws ValidationError naming the unknown rule and the known ones */
export function strategyNamed(name: string): Strategy {
  const strategy = STRATEGIES.find((candidate) => candidate.name === name);
  if (!strategy) throw new ValidationError('--strategy', name, `one of ${STRATEGIES.map((s) => s.name).join(', ')}`);
  return strategy;
}
