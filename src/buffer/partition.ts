/**
 * Π, the partitioning of the one `migration-cow-buffer` among running migrations (DESIGN §3),
 * as pure transitions on plain readonly data: admit, observe, release, resize. No I/O.
 *
 * Invariants every transition keeps (tested as properties):
 * - Σ bin sizes ≤ capacity (= capacity while a migration runs);
 * - non-reduction: for every migration, bytes in its bins and shards + its unplaced bytes =
 *   the largest overlay size ever observed for it. Bytes move between bins, never vanish;
 * - a bin's bytes fit in it, except a frozen bin, which never takes new bytes;
 * - the owner's own data is at the bottom of its bin's stack (priority α = 1).
 *
 * Bytes no bin can hold are *unplaced*: the migration owning them must fail (and be released),
 * which is how "Δ cannot be placed" is reported instead of being dropped. Until that release
 * they are still on disk, so they count as bytes in use (the resize floor) and whatever room
 * the bins had is filled with them first.
 */
import { DuplicateMigrationError, ShrinkBelowUsedError, UnknownMigrationError, ValidationError } from '../errors.js';
import { Draft, addToBin, free, removeLayer } from './draft.js';

export type MigrationId = string;

export interface Layer {
  readonly migration: MigrationId;
  readonly bytes: number;
}

export interface Bin {
  /** The migration this bin was cut for. */
  readonly owner: MigrationId;
  /** Π(ω), bytes. */
  readonly size: number;
  /** Overflowed: takes no new bytes until space is reclaimed. */
  readonly frozen: boolean;
  /** Bottom first: the owner's layer, then shards in the order they were pushed (α = index + 1). */
  readonly stack: readonly Layer[];
}

export interface Partition {
  /** Ω_S, bytes. */
  readonly capacity: number;
  /** One bin per running migration, in admission order. */
  readonly bins: readonly Bin[];
  /** Overlay bytes of migrations that no bin could hold: these migrations must fail. */
  readonly unplaced: readonly Layer[];
}

/** An empty buffer of `capacity` bytes. */
export function emptyPartition(capacity: number): Partition {
  checkCapacity(capacity);
  return { capacity, bins: [], unplaced: [] };
}

/**
 * DESIGN §3.1: the newcomer gets Ω/(N+1) and every bin is re-cut to the same share; a bin left
 * smaller than its data sheds the excess as shards (§3.3) and is frozen.
 * @throws DuplicateMigrationError, ValidationError (empty id)
 */
export function admit(partition: Partition, migration: MigrationId): Partition {
  if (typeof migration !== 'string' || migration === '') {
    throw new ValidationError('migration', migration, 'a non-empty migration id');
  }
  if (partition.bins.some((bin) => bin.owner === migration)) throw new DuplicateMigrationError(migration);
  const draft = new Draft(partition.capacity, partition.bins, partition.unplaced);
  const bin = { owner: migration, size: 0, frozen: false, stack: [{ migration, bytes: 0 }], used: 0 };
  draft.bins.push(bin);
  draft.byOwner.set(migration, bin);
  draft.recut();
  for (const existing of draft.bins) draft.evictExcess(existing);
  return draft.seal();
}

/**
 * Records each migration's overlay size (allocated bytes). Growth fills the migration's own bin;
 * what overflows freezes that bin and is placed as shards. A smaller reading than already
 * accounted changes nothing: an overlay never shrinks while its migration runs.
 * @throws UnknownMigrationError, ValidationError (size not a non-negative integer)
 */
export function observe(partition: Partition, overlays: Iterable<readonly [MigrationId, number]>): Partition {
  const draft = new Draft(partition.capacity, partition.bins, partition.unplaced);
  const known = knownBytes(draft);
  for (const [migration, cowBytes] of overlays) {
    if (!Number.isSafeInteger(cowBytes) || cowBytes < 0) {
      throw new ValidationError(`overlay[${migration}]`, cowBytes, 'a non-negative integer number of bytes');
    }
    const home = draft.byOwner.get(migration);
    if (!home) throw new UnknownMigrationError(migration);
    const growth = cowBytes - (known.get(migration) ?? 0);
    if (growth <= 0) continue;
    known.set(migration, cowBytes);
    if (draft.unplaced.has(migration)) {
      draft.addUnplaced(migration, growth);
      continue;
    }
    const intoHome = home.frozen ? 0 : Math.min(growth, Math.max(0, free(home)));
    if (intoHome > 0) addToBin(home, migration, intoHome);
    const overflow = growth - intoHome;
    if (overflow > 0) {
      home.frozen = true;
      draft.addUnplaced(migration, draft.place(migration, overflow, home));
    }
  }
  return draft.seal();
}

/**
 * DESIGN §3.2 and §3.5: a migration ended (completed or failed). Its bytes leave the buffer, its
 * bin is shared equally among the others, shards it hosted find a new home, freezes lift and
 * sharded migrations bring shards home.
 * @throws UnknownMigrationError
 */
export function release(partition: Partition, migration: MigrationId): Partition {
  const draft = new Draft(partition.capacity, partition.bins, partition.unplaced);
  const gone = draft.byOwner.get(migration);
  if (!gone) throw new UnknownMigrationError(migration);
  for (const bin of draft.bins) if (bin !== gone) removeLayer(bin, migration);
  draft.bins.splice(draft.bins.indexOf(gone), 1);
  draft.byOwner.delete(migration);
  draft.unplaced.delete(migration);
  draft.recut();
  draft.thaw();
  for (const orphan of gone.stack.slice(1)) {
    draft.addUnplaced(orphan.migration, draft.place(orphan.migration, orphan.bytes, undefined));
  }
  draft.unshard();
  return draft.seal();
}

/**
 * Changes Ω_S. Growing shares the new room equally and lets shards come home; shrinking re-cuts
 * and shards what no longer fits, but never below the bytes in use.
 * @throws ShrinkBelowUsedError (names the request and the floor), ValidationError
 */
export function resize(partition: Partition, capacity: number): Partition {
  checkCapacity(capacity);
  const floor = usedBytes(partition);
  if (capacity < floor) throw new ShrinkBelowUsedError(capacity, floor);
  const draft = new Draft(capacity, partition.bins, partition.unplaced);
  draft.recut();
  // Only real growth reclaims space: a resize to the same size must not lift the freezes.
  if (capacity > partition.capacity) {
    draft.thaw();
    draft.unshard();
  } else {
    for (const bin of draft.bins) draft.evictExcess(bin);
  }
  return draft.seal();
}

/** Bytes in use: held in bins, plus the unplaced bytes still on disk until their migration is released. */
export function usedBytes(partition: Partition): number {
  let used = partition.unplaced.reduce((sum, entry) => sum + entry.bytes, 0);
  for (const bin of partition.bins) for (const layer of bin.stack) used += layer.bytes;
  return used;
}

/** Migrations that hold unplaced bytes and so must fail. */
export function mustFail(partition: Partition): readonly MigrationId[] {
  return partition.unplaced.map((entry) => entry.migration);
}

/** Per migration, bytes in bins plus unplaced bytes: the overlay size the partition knows of. */
function knownBytes(draft: Draft): Map<MigrationId, number> {
  const totals = new Map<MigrationId, number>(draft.unplaced);
  for (const bin of draft.bins) {
    for (const layer of bin.stack) totals.set(layer.migration, (totals.get(layer.migration) ?? 0) + layer.bytes);
  }
  return totals;
}

function checkCapacity(capacity: number): void {
  if (!Number.isSafeInteger(capacity) || capacity <= 0) {
    throw new ValidationError('capacity', capacity, 'a positive integer number of bytes');
  }
}
