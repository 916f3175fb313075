/**
 * What one migration looks like in a partition: the bins that hold its overlay, at which
 * priority, and its mean priority Σα (DESIGN §3.4). Throttle policies, the simulator trace and
 * the API all read partitions through this view, so the stacking rules live in one place.
 */
import type { MigrationId, Partition } from './partition.js';

export interface Holding {
  /** Owner of the bin that holds these bytes. */
  readonly bin: MigrationId;
  readonly binSize: number;
  /** Every byte in that bin: the owner's and all shards it hosts. */
  readonly binUsed: number;
  readonly frozen: boolean;
  /** How many migrations have bytes (or own the bin) there. */
  readonly holders: number;
  /** This migration's bytes in that bin. */
  readonly bytes: number;
  /** α: 1 for the owner at the bottom of the stack, 2 for the next shard, ... */
  readonly priority: number;
}

export interface MigrationView {
  readonly id: MigrationId;
  /** Its own bin first, then the bins hosting its shards in bin order. */
  readonly holdings: readonly Holding[];
  /** Overlay bytes known to the partition, placed or not. */
  readonly cowBytes: number;
  /** Bytes no bin could hold (> 0 means the migration must fail). */
  readonly unplacedBytes: number;
  /** Σα: mean priority over the bins holding it; 1 when not sharded. */
  readonly meanPriority: number;
}

/** One view per running migration, in admission order. Linear in bins + layers. */
export function viewMigrations(partition: Partition): readonly MigrationView[] {
  const holdings = new Map<MigrationId, Holding[]>();
  for (const bin of partition.bins) holdings.set(bin.owner, []);
  for (const bin of partition.bins) {
    let binUsed = 0;
    for (const layer of bin.stack) binUsed += layer.bytes;
    bin.stack.forEach((layer, index) => {
      holdings.get(layer.migration)?.push({
        bin: bin.owner,
        binSize: bin.size,
        binUsed,
        frozen: bin.frozen,
        holders: bin.stack.length,
        bytes: layer.bytes,
        priority: index + 1,
      });
    });
  }
  const unplaced = new Map(partition.unplaced.map((entry) => [entry.migration, entry.bytes]));
  return partition.bins.map((bin) => {
    const own = holdings.get(bin.owner) ?? [];
    // Bins are visited in order, so the own holding is not necessarily first: put it first.
    const ordered = [...own.filter((h) => h.bin === bin.owner), ...own.filter((h) => h.bin !== bin.owner)];
    const unplacedBytes = unplaced.get(bin.owner) ?? 0;
    let cowBytes = unplacedBytes;
    let prioritySum = 0;
    for (const holding of ordered) {
      cowBytes += holding.bytes;
      prioritySum += holding.priority;
    }
    return {
      id: bin.owner,
      holdings: ordered,
      cowBytes,
      unplacedBytes,
      meanPriority: prioritySum / ordered.length,
    };
  });
}
