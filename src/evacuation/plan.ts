/**
 * The evacuation planner: which peer each of this host's VMs goes to, in which order, and how
 * many move at once, from this host's headroom (buffer, links) and each target's. Pure: the
 * daemon gathers the inputs, starts what `nextStarts` returns and calls it again whenever one of
 * the batch's migrations ends. The plan is plain data, so it can be journaled with the batch.
 *
 * Placement (`planEvacuation`): longest first (disk + memory bytes), each VM onto one of the
 * targets with its memory (plus QEMU's margin) and disk still free after what was placed there
 * before: one with a free incoming slot first; then one whose link carries what it was given,
 * this VM included, within the batch's own floor (all bytes over the uplink, or over all the
 * targets' links if slower), so no target becomes the batch's tail; among those the one with
 * the most memory left, which spreads the load and favours hosts just emptied; failing that,
 * the one done soonest. A VM no target can take is reported with why; the others still go.
 *
 * Concurrency (`nextStarts`): a VM starts beside the running ones only if, with it,
 * - an outgoing slot is free (the host's limit, less migrations outside the batch);
 * - its target has an incoming slot (its limit, less what it reported in use, less ours there);
 * - the link: it adds at least `minShare` to the batch's aggregate rate (max-min shares of the
 *   uplink and of each target's link), so it uses spare link instead of splitting a full one;
 *   and every migration keeps a share above its guest's write rate (or its mirror could never
 *   catch up without the throttle cutting the guest). A migration whose link has stalled moves
 *   no bytes, so it takes no share while it is (it still holds its slots): a start onto another
 *   target need not wait until the link watch ends it;
 * - the buffer: one more bin floor is free, and after the re-cut to Ω/N each bin still holds
 *   its overlay plus what its guest writes, unthrottled, in the time it needs at its share.
 * A VM that may not start now is passed over for the next one, and keeps its place in the
 * order for the next call. When nothing runs, the next VM starts whatever buffer and link say,
 * so every placed VM moves in the end.
 */
import { ValidationError } from '../errors.js';
import { MEMORY_MARGIN } from '../migration/preflight.js';
import { formatBytes } from '../units.js';
import { number } from '../validate.js';
import type { Headroom } from './headroom.js';
import { maxMinRates } from './shares.js';

export interface EvacuationVm {
  readonly name: string;
  readonly memoryBytes: number;
  readonly diskBytes: number;
  /** Bytes/s its overlay is expected to grow while it migrates (guest writes to new clusters). */
  readonly writeRate: number;
}

export interface PlanOptions {
  /** What this host can send at in all, bytes/s (batch.ts says where it comes from). */
  readonly uplink: number;
  /** EngineConfig.minBinBytes: the least room a migration is admitted with. */
  readonly minBinBytes: number;
  /** EngineConfig.assumedLinkRate: the rate of a peer never measured. */
  readonly assumedLinkRate: number;
  /** Least a migration must add to the batch's aggregate rate to start beside others; default assumedLinkRate. */
  readonly minShare?: number;
}

export interface PlannedTarget {
  readonly name: string;
  /** Rate measured from this host to it (assumed when never measured), bytes/s. */
  readonly rate: number;
  /** Incoming slots it reported in use (not ours: none was ours when planned) and its limit. */
  readonly incomingUsed: number;
  readonly incomingLimit: number;
}

export interface Placement {
  readonly vm: EvacuationVm;
  readonly target: string;
}

export type UnplacedReason = 'no-targets' | 'no-slots' | 'memory' | 'disk';

export interface Unplaced {
  readonly vm: EvacuationVm;
  readonly reason: UnplacedReason;
  readonly message: string;
}

/** What held the batch at the concurrency it got. */
export type Bound = 'vms' | 'outgoing' | 'target-slots' | 'link' | 'buffer';

export interface EvacuationPlan {
  readonly source: string;
  readonly uplink: number;
  readonly minBinBytes: number;
  readonly minShare: number;
  readonly outgoingLimit: number;
  readonly targets: readonly PlannedTarget[];
  /** In start order. */
  readonly placements: readonly Placement[];
  readonly unplaced: readonly Unplaced[];
  /** How many `nextStarts` starts at once on this host as it is now, and what held it there. */
  readonly concurrency: { readonly initial: number; readonly boundBy: Bound };
}

/** One of the batch's running migrations, as the engine last measured it. */
export interface InFlight {
  readonly vm: string;
  readonly cowBytes: number;
  /** Bytes it still has to send (base or overlay left, plus RAM). */
  readonly remainingBytes: number;
  /** Its link has bytes waiting and none acknowledged (the link tracker's stall). */
  readonly stalled?: boolean;
}

export interface EvacuationState {
  readonly running: readonly InFlight[];
  /** VMs of the batch that ended (moved, failed, cancelled): never started again. */
  readonly ended: readonly string[];
  /** This host's buffer now: its headroom's size and free bytes. */
  readonly buffer: { readonly size: number; readonly free: number };
  /** Outgoing migrations this host runs outside the batch. */
  readonly otherOutgoing?: number;
}

export interface Starts {
  /** Start these now, in this order. */
  readonly start: readonly Placement[];
  /** Why no more start now; undefined when none is left waiting. */
  readonly boundBy: Bound | undefined;
}

/**
 * @param source this host's headroom (its links give the rate to each target)
 * @param targets the candidates' headrooms; this host's own is ignored if among them
 * @throws ValidationError for an option that is not a positive number
 */
export function planEvacuation(source: Headroom, vms: readonly EvacuationVm[], targets: readonly Headroom[], options: PlanOptions): EvacuationPlan {
  for (const key of ['uplink', 'minBinBytes', 'assumedLinkRate', 'minShare'] as const) {
    if (options[key] !== undefined) number(key, options[key], { min: 0, positive: true });
  }
  const candidates = targets.filter((target) => target.host !== source.host);
  const measured = new Map(source.links.map((link) => [link.peer, link.rate]));
  const planned = candidates.map((target): PlannedTarget => ({
    name: target.host,
    rate: measured.get(target.host) || options.assumedLinkRate,
    incomingUsed: target.incoming.used,
    incomingLimit: target.incoming.limit,
  }));
  const placed = place(vms, candidates, planned, options.uplink);
  const plan: EvacuationPlan = {
    source: source.host,
    uplink: options.uplink,
    minBinBytes: options.minBinBytes,
    minShare: options.minShare ?? options.assumedLinkRate,
    outgoingLimit: source.outgoing.limit,
    targets: planned,
    ...placed,
    concurrency: { initial: 0, boundBy: 'vms' },
  };
  const first = nextStarts(plan, { running: [], ended: [], buffer: source.buffer, otherOutgoing: source.outgoing.used });
  return { ...plan, concurrency: { initial: first.start.length, boundBy: first.boundBy ?? 'vms' } };
}

/** The batch's next migrations to start, given what runs and what ended. @throws ValidationError for a running VM not in the plan */
export function nextStarts(plan: EvacuationPlan, state: EvacuationState): Starts {
  const byName = new Map(plan.placements.map((placement) => [placement.vm.name, placement]));
  const flights: Flight[] = state.running.map((running, index) => {
    const placement = byName.get(running.vm);
    if (!placement) throw new ValidationError(`running[${index}].vm`, running.vm, `a VM of the plan (${plan.placements.map((p) => p.vm.name).join(', ')})`);
    return { placement, cowBytes: running.cowBytes, remainingBytes: running.remainingBytes, stalled: running.stalled ?? false };
  });
  const busy = new Set([...state.ended, ...state.running.map((running) => running.vm)]);
  const targets = new Map(plan.targets.map((target) => [target.name, target]));
  const others = state.otherOutgoing ?? 0;
  const start: Placement[] = [];
  let boundBy: Bound | undefined;
  for (const placement of plan.placements) {
    if (busy.has(placement.vm.name)) continue;
    if (flights.length + others >= plan.outgoingLimit) return { start, boundBy: 'outgoing' };
    const target = targets.get(placement.target) as PlannedTarget;
    const there = flights.filter((flight) => flight.placement.target === target.name).length;
    const candidate: Flight = { placement, cowBytes: 0, remainingBytes: bytesOf(placement.vm), stalled: false };
    // A link that stalled carries nothing for a newcomer either, whatever slots its target has.
    const stalledThere = flights.some((flight) => flight.stalled && flight.placement.target === target.name);
    const refusal =
      target.incomingUsed + there >= target.incomingLimit
        ? 'target-slots'
        : stalledThere
          ? 'link'
          : flights.length === 0
            ? undefined
            : refuse(plan, targets, flights, candidate, state.buffer, others, start.length);
    if (refusal) {
      boundBy ??= refusal;
      continue;
    }
    flights.push(candidate);
    start.push(placement);
  }
  return { start, boundBy };
}

interface Flight {
  readonly placement: Placement;
  readonly cowBytes: number;
  readonly remainingBytes: number;
  readonly stalled: boolean;
}

/** Why `candidate` may not join `flights` now, if it may not. */
function refuse(
  plan: EvacuationPlan,
  targets: ReadonlyMap<string, PlannedTarget>,
  flights: readonly Flight[],
  candidate: Flight,
  buffer: EvacuationState['buffer'],
  others: number,
  startedNow: number,
): Bound | undefined {
  const before = shares(plan, targets, flights);
  const batch = [...flights, candidate];
  const after = shares(plan, targets, batch);
  // A share at or below the guest's write rate means a mirror that cannot catch up: the
  // newcomer must not start so, nor push a running migration there.
  const outrun = (flight: Flight, share: number | undefined) => (share ?? Infinity) <= flight.placement.vm.writeRate;
  const squeezed = batch.some((flight, index) => outrun(flight, after[index]) && !outrun(flight, before[index]));
  if (sum(after) - sum(before) < plan.minShare || squeezed) return 'link';
  if (buffer.free - startedNow * plan.minBinBytes < plan.minBinBytes) return 'buffer';
  const bin = buffer.size / (batch.length + others);
  // How long a stalled migration still runs is unknown (its link may come back, or the link watch
  // ends it), so no growth can be planned for it: the plan counts only the overlay it holds, and
  // leaves what its guest writes meanwhile to the throttle, which sees the re-cut bin.
  const needs = (flight: Flight, share: number) => flight.cowBytes + (flight.stalled ? 0 : (flight.placement.vm.writeRate * flight.remainingBytes) / share);
  return batch.some((flight, index) => needs(flight, after[index] as number) > bin) ? 'buffer' : undefined;
}

/** Max-min shares of the batch over this host's uplink and each target's link, in batch order; 0 for a stalled flight. */
function shares(plan: EvacuationPlan, targets: ReadonlyMap<string, PlannedTarget>, batch: readonly Flight[]): number[] {
  const moving = batch.filter((flight) => !flight.stalled);
  const capacities = new Map<string, number>([['uplink', plan.uplink]]);
  for (const flight of moving) capacities.set(flight.placement.target, (targets.get(flight.placement.target) as PlannedTarget).rate);
  const rates = maxMinRates(capacities, moving.map((flight) => ({ uses: ['uplink', flight.placement.target], cap: Infinity })));
  return batch.map((flight) => (flight.stalled ? 0 : (rates[moving.indexOf(flight)] as number)));
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

interface Room {
  readonly target: PlannedTarget;
  memory: number;
  disk: number;
  /** Bytes placed there so far. */
  bytes: number;
}

function place(vms: readonly EvacuationVm[], candidates: readonly Headroom[], planned: readonly PlannedTarget[], uplink: number): Pick<EvacuationPlan, 'placements' | 'unplaced'> {
  const rooms = planned
    .filter((target) => target.incomingLimit > 0)
    .map((target): Room => {
      const headroom = candidates.find((candidate) => candidate.host === target.name) as Headroom;
      return { target, memory: headroom.memoryFree, disk: headroom.diskFree, bytes: 0 };
    });
  const placements: Placement[] = [];
  const unplaced: Unplaced[] = [];
  const batchSeconds = sum(vms.map(bytesOf)) / Math.min(uplink, sum(rooms.map((room) => room.target.rate)));
  const longestFirst = [...vms].sort((a, b) => bytesOf(b) - bytesOf(a) || a.name.localeCompare(b.name));
  for (const vm of longestFirst) {
    const memory = vm.memoryBytes + MEMORY_MARGIN;
    const fitting = rooms.filter((room) => room.memory >= memory && room.disk >= vm.diskBytes);
    const best = fitting.sort(byPreference(vm, batchSeconds))[0];
    if (!best) {
      unplaced.push(whyNot(vm, memory, planned.length, rooms));
      continue;
    }
    best.memory -= memory;
    best.disk -= vm.diskBytes;
    best.bytes += bytesOf(vm);
    placements.push({ vm, target: best.target.name });
  }
  return { placements, unplaced };
}

/** Orders the targets for `vm` as the module comment says. */
function byPreference(vm: EvacuationVm, batchSeconds: number): (a: Room, b: Room) => number {
  const busy = (room: Room) => (room.target.incomingUsed < room.target.incomingLimit ? 0 : 1);
  const seconds = (room: Room) => (room.bytes + bytesOf(vm)) / room.target.rate;
  const late = (room: Room) => (seconds(room) <= batchSeconds ? 0 : 1);
  return (a, b) =>
    busy(a) - busy(b) ||
    late(a) - late(b) ||
    (late(a) === 0 ? b.memory - a.memory : seconds(a) - seconds(b)) ||
    a.target.name.localeCompare(b.target.name);
}

function bytesOf(vm: EvacuationVm): number {
  return vm.diskBytes + vm.memoryBytes;
}

function whyNot(vm: EvacuationVm, memory: number, candidates: number, rooms: readonly Room[]): Unplaced {
  if (candidates === 0) return { vm, reason: 'no-targets', message: `${vm.name}: no target to move to` };
  if (rooms.length === 0) return { vm, reason: 'no-slots', message: `${vm.name}: no target takes incoming migrations (every incoming limit is 0)` };
  const withMemory = rooms.filter((room) => room.memory >= memory);
  if (withMemory.length === 0) {
    const most = mostOf(rooms, (room) => room.memory);
    return { vm, reason: 'memory', message: `${vm.name}: needs ${formatBytes(memory)} of memory (its ${formatBytes(vm.memoryBytes)} and QEMU's ${formatBytes(MEMORY_MARGIN)}); the most a target has left is ${formatBytes(most.memory)} (${most.target.name})` };
  }
  const most = mostOf(withMemory, (room) => room.disk);
  return { vm, reason: 'disk', message: `${vm.name}: needs ${formatBytes(vm.diskBytes)} of disk; the most a target with its memory has left is ${formatBytes(most.disk)} (${most.target.name})` };
}

function mostOf(rooms: readonly Room[], of: (room: Room) => number): Room {
  return rooms.reduce((best, room) => (of(room) > of(best) ? room : best));
}
