/**
 * The mutable working copy a partition transition edits before handing back plain readonly
 * data. Kept private to `src/buffer`: callers only ever see `Partition` values.
 *
 * Placement follows DESIGN §3.3: a piece of overlay that has no room in its own bin goes, whole,
 * to the least-used bin that can take it; if none can, it is halved and each half placed the
 * same way. Pieces at or below `MIN_SHARD_BYTES` are no longer halved but poured into the bins
 * with the most room, which is what halving converges to, without a cascade of tiny shards.
 */
import type { Bin, Layer, MigrationId, Partition } from './partition.js';

/** Below this a piece of overlay is not worth halving again (one qcow2 L2 table's reach). */
export const MIN_SHARD_BYTES = 1024 * 1024;

export interface DraftLayer {
  migration: MigrationId;
  bytes: number;
}

export interface DraftBin {
  owner: MigrationId;
  size: number;
  frozen: boolean;
  /** Bottom first; `stack[0]` is always the owner's own layer (priority 1). */
  stack: DraftLayer[];
  used: number;
}

export class Draft {
  readonly bins: DraftBin[];
  readonly byOwner = new Map<MigrationId, DraftBin>();
  readonly unplaced = new Map<MigrationId, number>();
  /** Bins that hold (or held) a shard of each migration; built on first use, a superset. */
  private guests: Map<MigrationId, Set<DraftBin>> | undefined;

  constructor(
    public capacity: number,
    bins: readonly Bin[],
    unplaced: Partition['unplaced'],
  ) {
    this.bins = bins.map((bin) => {
      const stack = bin.stack.map((layer) => ({ migration: layer.migration, bytes: layer.bytes }));
      const draft: DraftBin = { owner: bin.owner, size: bin.size, frozen: bin.frozen, stack, used: sumBytes(stack) };
      this.byOwner.set(bin.owner, draft);
      return draft;
    });
    for (const entry of unplaced) this.unplaced.set(entry.migration, entry.bytes);
  }

  /** Back to readonly plain data, bins in admission order. */
  seal(): Partition {
    const bins = this.bins.map(
      (bin): Bin => ({
        owner: bin.owner,
        size: bin.size,
        frozen: bin.frozen,
        stack: bin.stack.map((layer): Layer => ({ migration: layer.migration, bytes: layer.bytes })),
      }),
    );
    const unplaced = [...this.unplaced].map(([migration, bytes]) => ({ migration, bytes }));
    return { capacity: this.capacity, bins, unplaced };
  }

  addUnplaced(migration: MigrationId, bytes: number): void {
    if (bytes > 0) this.unplaced.set(migration, (this.unplaced.get(migration) ?? 0) + bytes);
  }

  /** Gives every bin its equal share of the capacity; the first `capacity mod N` get one byte more. */
  recut(): void {
    const n = this.bins.length;
    if (n === 0) return;
    const share = Math.floor(this.capacity / n);
    const extra = this.capacity - share * n;
    this.bins.forEach((bin, index) => {
      bin.size = share + (index < extra ? 1 : 0);
    });
  }

  /**
   * Moves the excess of an over-full bin elsewhere, lowest priority first (top of the stack
   * down to the owner), and freezes it. Bytes that fit nowhere are recorded as unplaced.
   */
  evictExcess(bin: DraftBin): void {
    let excess = bin.used - bin.size;
    if (excess <= 0) return;
    bin.frozen = true;
    for (let index = bin.stack.length - 1; index >= 0 && excess > 0; index -= 1) {
      const layer = bin.stack[index] as DraftLayer;
      const take = Math.min(layer.bytes, excess);
      layer.bytes -= take;
      bin.used -= take;
      excess -= take;
      if (layer.bytes === 0 && index > 0) bin.stack.splice(index, 1);
      this.addUnplaced(layer.migration, this.place(layer.migration, take, bin));
    }
  }

  /**
   * Accounts `bytes` of `migration`'s overlay to bins other than `exclude`. Returns 0 when all
   * of it was placed. When the eligible bins together lack the room, the migration must fail
   * (DESIGN §3.3), yet its bytes are on disk until it is released: they fill the room there is,
   * so no other bin looks freer than the buffer is, and only what exceeds every bin is returned.
   */
  place(migration: MigrationId, bytes: number, exclude: DraftBin | undefined): number {
    if (bytes <= 0) return 0;
    // The steady state of a sharded migration: its growth fits a bin it already holds. Same
    // choice as chooseBin would make, without scanning every bin.
    const quick = this.quickTarget(migration, bytes, exclude);
    if (quick) {
      this.addGuest(quick, migration, bytes);
      return 0;
    }
    const eligible = this.bins.filter((bin) => bin !== exclude && !bin.frozen && free(bin) > 0);
    const room = eligible.reduce((sum, bin) => sum + free(bin), 0);
    if (room < bytes) {
      this.pour(migration, room, eligible);
      return bytes - room;
    }
    const pieces = [bytes];
    while (pieces.length > 0) {
      const piece = pieces.pop() as number;
      const target = this.chooseBin(migration, piece, eligible);
      if (target) {
        this.addGuest(target, migration, piece);
      } else if (piece > MIN_SHARD_BYTES) {
        const half = Math.ceil(piece / 2);
        pieces.push(piece - half, half);
      } else {
        this.pour(migration, piece, eligible);
      }
    }
    return 0;
  }

  private addGuest(bin: DraftBin, migration: MigrationId, bytes: number): void {
    addToBin(bin, migration, bytes);
    if (bin.owner !== migration) this.guestBins(migration).add(bin);
  }

  private guestBins(migration: MigrationId): Set<DraftBin> {
    if (!this.guests) {
      this.guests = new Map();
      for (const bin of this.bins) {
        for (const layer of bin.stack.slice(1)) {
          const set = this.guests.get(layer.migration) ?? new Set();
          set.add(bin);
          this.guests.set(layer.migration, set);
        }
      }
    }
    let set = this.guests.get(migration);
    if (!set) {
      set = new Set();
      this.guests.set(migration, set);
    }
    return set;
  }

  /** Home if it can take `bytes`, else the least-used bin already holding a shard that can. */
  private quickTarget(migration: MigrationId, bytes: number, exclude: DraftBin | undefined): DraftBin | undefined {
    const home = this.byOwner.get(migration);
    if (home && home !== exclude && !home.frozen && free(home) >= bytes) return home;
    let best: DraftBin | undefined;
    for (const bin of this.guestBins(migration)) {
      if (bin === exclude || bin.frozen || free(bin) < bytes || this.byOwner.get(bin.owner) !== bin) continue;
      if (!bin.stack.some((layer) => layer.migration === migration)) continue;
      if (!best || lessUsed(bin, best)) best = bin;
    }
    return best;
  }

  /** Home first (un-sharding), then a bin already holding a shard, then the least-used. */
  private chooseBin(migration: MigrationId, piece: number, eligible: readonly DraftBin[]): DraftBin | undefined {
    const home = this.byOwner.get(migration);
    if (home && eligible.includes(home) && free(home) >= piece) return home;
    let best: DraftBin | undefined;
    let bestHolds = false;
    for (const bin of eligible) {
      if (free(bin) < piece) continue;
      const holds = bin.stack.some((layer) => layer.migration === migration);
      if (!best || (holds && !bestHolds) || (holds === bestHolds && lessUsed(bin, best))) {
        best = bin;
        bestHolds = holds;
      }
    }
    return best;
  }

  private pour(migration: MigrationId, piece: number, eligible: readonly DraftBin[]): void {
    let left = piece;
    const byRoom = [...eligible].sort((a, b) => free(b) - free(a));
    for (const bin of byRoom) {
      if (left === 0) break;
      const take = Math.min(left, Math.max(0, free(bin)));
      if (take > 0) this.addGuest(bin, migration, take);
      left -= take;
    }
  }

  /** Lifts every freeze: called once space has been reclaimed. */
  thaw(): void {
    for (const bin of this.bins) bin.frozen = false;
  }

  /**
   * DESIGN §3.5: a migration whose overlay is spread over k bins tries to bring its k−1
   * smallest shards home, then its k−2 smallest, and so on, moving whole shards only.
   */
  unshard(): void {
    const hosts = new Map<MigrationId, DraftBin[]>();
    for (const bin of this.bins) {
      for (let index = 1; index < bin.stack.length; index += 1) {
        const guest = (bin.stack[index] as DraftLayer).migration;
        const list = hosts.get(guest);
        if (list) list.push(bin);
        else hosts.set(guest, [bin]);
      }
    }
    for (const home of this.bins) {
      const away = hosts.get(home.owner);
      if (!away || home.frozen) continue;
      const shards = away
        .map((bin) => ({ bin, bytes: layerBytes(bin, home.owner) }))
        .sort((a, b) => a.bytes - b.bytes);
      let total = shards.reduce((sum, shard) => sum + shard.bytes, 0);
      for (let count = shards.length; count > 0; count -= 1) {
        if (total <= free(home)) {
          for (const shard of shards.slice(0, count)) {
            removeLayer(shard.bin, home.owner);
            addToBin(home, home.owner, shard.bytes);
          }
          break;
        }
        total -= (shards[count - 1] as { bytes: number }).bytes;
      }
    }
  }
}

export function free(bin: DraftBin): number {
  return bin.size - bin.used;
}

function lessUsed(a: DraftBin, b: DraftBin): boolean {
  // Only bins with free room are compared, so both sizes are positive.
  const left = a.used / a.size;
  const right = b.used / b.size;
  return left !== right ? left < right : free(a) > free(b);
}

export function addToBin(bin: DraftBin, migration: MigrationId, bytes: number): void {
  const layer = bin.stack.find((candidate) => candidate.migration === migration);
  if (layer) layer.bytes += bytes;
  else bin.stack.push({ migration, bytes });
  bin.used += bytes;
}

/** Removes a guest's layer; the layers above it move down one priority. Returns its bytes. */
export function removeLayer(bin: DraftBin, migration: MigrationId): number {
  const index = bin.stack.findIndex((layer, at) => at > 0 && layer.migration === migration);
  if (index < 0) return 0;
  const [layer] = bin.stack.splice(index, 1);
  const bytes = layer?.bytes ?? 0;
  bin.used -= bytes;
  return bytes;
}

function layerBytes(bin: DraftBin, migration: MigrationId): number {
  return bin.stack.find((layer) => layer.migration === migration)?.bytes ?? 0;
}

function sumBytes(stack: readonly DraftLayer[]): number {
  return stack.reduce((sum, layer) => sum + layer.bytes, 0);
}
