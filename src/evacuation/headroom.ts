/**
 * Headroom: what a host can still take on, as plain data for whoever places migrations (the
 * evacuation planner here, an embedding cluster manager with its own store): its buffer, its
 * migration slots both ways, the memory and disk it can give incoming guests, and the link rate
 * it has measured to each peer. `computeHeadroom` derives it purely from what the engine holds;
 * `parseHeadroom` checks every field of one a peer sent, since peers' messages are input.
 */
import type { LinkEstimate, LinkPhase } from '../buffer/link-model.js';
import { usedBytes, type Partition } from '../buffer/partition.js';
import { viewMigrations } from '../buffer/view.js';
import { ValidationError } from '../errors.js';
import { array, join, number, object, string } from '../validate.js';

export interface Slots {
  readonly used: number;
  readonly limit: number;
}

export interface BufferHeadroom {
  /** Ω_S, bytes. */
  readonly size: number;
  /** Bytes the overlays occupy now. */
  readonly used: number;
  /**
   * Bytes spoken for: each running migration counts at least the bin floor the engine admits
   * with (its overlay only grows until it ends), plus bytes no bin could hold.
   */
  readonly committed: number;
  /** size − committed (never below 0): what a new outgoing migration can count on. */
  readonly free: number;
}

export interface LinkHeadroom {
  readonly peer: string;
  /** Measured rate to that peer, bytes/s; 0 while unknown. */
  readonly rate: number;
  readonly phase: LinkPhase;
}

export interface Headroom {
  readonly host: string;
  readonly buffer: BufferHeadroom;
  readonly outgoing: Slots;
  readonly incoming: Slots;
  /** Bytes of memory incoming guests can still have, after the ones already on their way. */
  readonly memoryFree: number;
  /** Bytes free for incoming guests' disks, after the ones already on their way. */
  readonly diskFree: number;
  readonly links: readonly LinkHeadroom[];
}

/** An incoming migration in flight: what it will still take here once it has arrived. */
export interface IncomingGuest {
  /** Its memory plus QEMU's own (preflight's margin): the kernel does not count it yet. */
  readonly memoryBytes: number;
  /** Its bases not yet written here (their whole size if unknown: only more conservative). */
  readonly diskBytes: number;
}

export interface HeadroomInputs {
  readonly host: string;
  /** The control loop's Π. */
  readonly partition: Partition;
  /** EngineConfig.minBinBytes. */
  readonly minBinBytes: number;
  /** Running outgoing migrations and EngineConfig.maxOutgoing. */
  readonly outgoing: Slots;
  /** EngineConfig.maxIncoming. */
  readonly maxIncoming: number;
  readonly incoming: readonly IncomingGuest[];
  /** HostInventory.availableMemory(). */
  readonly availableMemory: number;
  /** HostInventory.availableDisk() where incoming disks are written. */
  readonly availableDisk: number;
  /** Each trusted peer with LinkTracker.estimate(peer), undefined if never measured. */
  readonly links: Iterable<readonly [string, LinkEstimate | undefined]>;
}

export function computeHeadroom(inputs: HeadroomInputs): Headroom {
  const incomingMemory = inputs.incoming.reduce((sum, guest) => sum + guest.memoryBytes, 0);
  const incomingDisk = inputs.incoming.reduce((sum, guest) => sum + guest.diskBytes, 0);
  return {
    host: inputs.host,
    buffer: bufferHeadroom(inputs.partition, inputs.minBinBytes),
    outgoing: inputs.outgoing,
    incoming: { used: inputs.incoming.length, limit: inputs.maxIncoming },
    memoryFree: Math.max(0, inputs.availableMemory - incomingMemory),
    diskFree: Math.max(0, inputs.availableDisk - incomingDisk),
    links: [...inputs.links].map(([peer, estimate]) => ({ peer, rate: estimate?.rate ?? 0, phase: estimate?.phase ?? 'unknown' })),
  };
}

/** The buffer part alone: what the evacuation planner re-reads as migrations come and go. */
export function bufferHeadroom(partition: Partition, minBinBytes: number): BufferHeadroom {
  const size = partition.capacity;
  // Unplaced bytes are part of their migration's cowBytes: counted once.
  const committed = viewMigrations(partition).reduce((sum, view) => sum + Math.max(view.cowBytes, minBinBytes), 0);
  return { size, used: usedBytes(partition), committed, free: Math.max(0, size - committed) };
}

const LINK_PHASES: readonly LinkPhase[] = ['unknown', 'transient', 'steady'];

/**
 * A headroom message from a peer (JSON already parsed): every byte count a non-negative integer,
 * the buffer's used and free bytes within its size, link peers unique.
 * @throws ValidationError naming the first bad field, e.g. `headroom.buffer.free`
 */
export function parseHeadroom(input: unknown, field = 'headroom'): Headroom {
  const root = object(field, input, ['host', 'buffer', 'outgoing', 'incoming', 'memoryFree', 'diskFree', 'links']);
  const host = string(join(field, 'host'), root.host);
  const bufferField = join(field, 'buffer');
  const raw = object(bufferField, root.buffer, ['size', 'used', 'committed', 'free']);
  const size = bytes(join(bufferField, 'size'), raw.size);
  const within = (key: 'used' | 'free') => number(join(bufferField, key), raw[key], { min: 0, max: size, integer: true });
  // Committed may exceed the size: many migrations each counted at the bin floor.
  const buffer = { size, used: within('used'), committed: bytes(join(bufferField, 'committed'), raw.committed), free: within('free') };
  const outgoing = slots(join(field, 'outgoing'), root.outgoing);
  const incoming = slots(join(field, 'incoming'), root.incoming);
  const memoryFree = bytes(join(field, 'memoryFree'), root.memoryFree);
  const diskFree = bytes(join(field, 'diskFree'), root.diskFree);
  const linksField = join(field, 'links');
  const seen = new Set<string>();
  const links = array(linksField, root.links).map((entry, index): LinkHeadroom => {
    const at = join(linksField, index);
    const link = object(at, entry, ['peer', 'rate', 'phase']);
    const peer = string(join(at, 'peer'), link.peer);
    if (seen.has(peer)) throw new ValidationError(join(at, 'peer'), peer, 'unique among links');
    seen.add(peer);
    const phase = link.phase;
    if (!LINK_PHASES.includes(phase as LinkPhase)) throw new ValidationError(join(at, 'phase'), phase, `one of ${LINK_PHASES.join(', ')}`);
    return { peer, rate: number(join(at, 'rate'), link.rate, { min: 0 }), phase: phase as LinkPhase };
  });
  return { host, buffer, outgoing, incoming, memoryFree, diskFree, links };
}

function bytes(field: string, value: unknown): number {
  return number(field, value, { min: 0, integer: true });
}

function slots(field: string, value: unknown): Slots {
  const raw = object(field, value, ['used', 'limit']);
  return { used: number(join(field, 'used'), raw.used, { min: 0, integer: true }), limit: number(join(field, 'limit'), raw.limit, { min: 0, integer: true }) };
}
