import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  admit,
  emptyPartition,
  mustFail,
  observe,
  release,
  resize,
  usedBytes,
  type Partition,
} from '../../src/buffer/partition.js';
import { viewMigrations } from '../../src/buffer/view.js';
import { DuplicateMigrationError, ShrinkBelowUsedError, UnknownMigrationError, ValidationError } from '../../src/errors.js';
import { capacityArb, commandsArb, run } from '../support/partition-commands.js';

const GiB = 1024 ** 3;

function admitAll(capacity: number, ids: readonly string[]): Partition {
  return ids.reduce(admit, emptyPartition(capacity));
}

function sizes(partition: Partition): number[] {
  return partition.bins.map((bin) => bin.size);
}

function placedBytes(partition: Partition): number {
  return partition.bins.reduce((sum, bin) => sum + bin.stack.reduce((inBin, layer) => inBin + layer.bytes, 0), 0);
}

function view(partition: Partition, id: string) {
  const found = viewMigrations(partition).find((candidate) => candidate.id === id);
  if (!found) throw new Error(`no view for ${id}`);
  return found;
}

describe('admission (DESIGN §3.1)', () => {
  it('gives the newcomer Ω/(N+1) and re-cuts every bin to the same share', () => {
    expect(sizes(admitAll(12 * GiB, ['a']))).toEqual([12 * GiB]);
    expect(sizes(admitAll(12 * GiB, ['a', 'b']))).toEqual([6 * GiB, 6 * GiB]);
    expect(sizes(admitAll(12 * GiB, ['a', 'b', 'c']))).toEqual([4 * GiB, 4 * GiB, 4 * GiB]);
  });

  it('spreads the remainder byte by byte so Σ bins = Ω exactly', () => {
    expect(sizes(admitAll(10, ['a', 'b', 'c']))).toEqual([4, 3, 3]);
  });

  it('rejects a duplicate or empty id', () => {
    const partition = admitAll(GiB, ['a']);
    expect(() => admit(partition, 'a')).toThrow(DuplicateMigrationError);
    expect(() => admit(partition, '')).toThrow(ValidationError);
  });
});

describe("the paper's overflow walk-through (10 GiB, N = 2 → 3, Δ = 0.67 GiB)", () => {
  const capacity = 10 * GiB;
  const four = 4 * GiB;
  const before = observe(admitAll(capacity, ['m0', 'm1']), [
    ['m0', four],
    ['m1', GiB],
  ]);
  const after = admit(before, 'm2');
  const third = Math.floor(capacity / 3);

  it('re-cuts to Ω/3 and moves Δ = s − Π as one shard onto the least-used bin', () => {
    const [b0, b1, b2] = after.bins;
    expect(b0?.size).toBe(third + 1);
    const delta = four - (third + 1);
    expect(delta / GiB).toBeCloseTo(0.67, 2);
    expect(b0?.stack).toEqual([{ migration: 'm0', bytes: third + 1 }]);
    // m2's empty bin is the least used (0 %) ahead of m1's (30 %).
    expect(b2?.stack).toEqual([
      { migration: 'm2', bytes: 0 },
      { migration: 'm0', bytes: delta },
    ]);
    expect(b1?.stack).toEqual([{ migration: 'm1', bytes: GiB }]);
  });

  it('freezes the overflowed bin and penalises the sharded migration: Σα = (1 + 2) / 2', () => {
    expect(after.bins.map((bin) => bin.frozen)).toEqual([true, false, false]);
    expect(view(after, 'm0').meanPriority).toBe(1.5);
    expect(view(after, 'm1').meanPriority).toBe(1);
    expect(view(after, 'm0').cowBytes).toBe(four);
  });

  it('puts the shard home when m1 completes, and lifts the freeze', () => {
    const reclaimed = release(after, 'm1');
    expect(sizes(reclaimed)).toEqual([5 * GiB, 5 * GiB]);
    expect(reclaimed.bins[0]?.stack).toEqual([{ migration: 'm0', bytes: four }]);
    expect(reclaimed.bins[1]?.stack).toEqual([{ migration: 'm2', bytes: 0 }]);
    expect(reclaimed.bins.every((bin) => !bin.frozen)).toBe(true);
  });
});

describe('growth and overlap (DESIGN §3.3)', () => {
  it('halves a Δ that no bin can take whole and places the halves on two bins', () => {
    // Three 3 GiB bins; b and c are each 2 GiB full, so neither can take a 2 GiB Δ whole.
    let partition = admitAll(9 * GiB, ['a', 'b', 'c']);
    partition = observe(partition, [
      ['b', 2 * GiB],
      ['c', 2 * GiB],
      ['a', 5 * GiB],
    ]);
    expect(partition.bins[0]?.frozen).toBe(true);
    expect(partition.bins[1]?.stack).toEqual([
      { migration: 'b', bytes: 2 * GiB },
      { migration: 'a', bytes: GiB },
    ]);
    expect(partition.bins[2]?.stack).toEqual([
      { migration: 'c', bytes: 2 * GiB },
      { migration: 'a', bytes: GiB },
    ]);
    expect(view(partition, 'a').meanPriority).toBe((1 + 2 + 2) / 3);
  });

  it('reports the migration that must fail, with its bytes, when Δ fits nowhere', () => {
    let partition = admitAll(2 * GiB, ['a', 'b']);
    partition = observe(partition, [['b', GiB]]);
    partition = observe(partition, [['a', GiB + 1]]);
    expect(mustFail(partition)).toEqual(['a']);
    expect(partition.unplaced).toEqual([{ migration: 'a', bytes: 1 }]);
    expect(view(partition, 'a').cowBytes).toBe(GiB + 1);
    const after = release(partition, 'a');
    expect(mustFail(after)).toEqual([]);
    expect(sizes(after)).toEqual([2 * GiB]);
  });

  it('fills the room there is with bytes that fit nowhere, and counts the rest as in use until release', () => {
    let partition = admitAll(2 * GiB, ['a', 'b']);
    partition = observe(partition, [['b', GiB / 4]]);
    partition = observe(partition, [['a', 2.5 * GiB]]);
    expect(mustFail(partition)).toEqual(['a']);
    // b's bin is as full as the disk is: a's bytes sit in it, b must not plan with that room.
    expect(partition.bins[1]?.stack).toEqual([
      { migration: 'b', bytes: GiB / 4 },
      { migration: 'a', bytes: 0.75 * GiB },
    ]);
    expect(partition.unplaced).toEqual([{ migration: 'a', bytes: 0.75 * GiB }]);
    expect(view(partition, 'a').cowBytes).toBe(2.5 * GiB);
    expect(usedBytes(partition)).toBe(2.75 * GiB);
    expect(() => resize(partition, 2.5 * GiB)).toThrow(ShrinkBelowUsedError);
    const after = release(partition, 'a');
    expect(usedBytes(after)).toBe(GiB / 4);
    expect(after.bins[0]?.stack).toEqual([{ migration: 'b', bytes: GiB / 4 }]);
  });

  it('ignores a reading smaller than what is accounted: an overlay never shrinks', () => {
    const grown = observe(admitAll(GiB, ['a']), [['a', 1000]]);
    expect(observe(grown, [['a', 10]])).toEqual(grown);
  });

  it('rejects unknown ids and sizes that are not byte counts', () => {
    const partition = admitAll(GiB, ['a']);
    expect(() => observe(partition, [['zz', 1]])).toThrow(UnknownMigrationError);
    expect(() => observe(partition, [['a', -1]])).toThrow(/overlay\[a\].*got `-1`/);
    expect(() => observe(partition, [['a', 1.5]])).toThrow(ValidationError);
    expect(() => release(partition, 'zz')).toThrow(UnknownMigrationError);
  });
});

describe('resize', () => {
  it('refuses to shrink below the bytes in use, naming both numbers, and changes nothing', () => {
    const partition = observe(admitAll(4 * GiB, ['a', 'b']), [
      ['a', GiB],
      ['b', 512],
    ]);
    const attempt = () => resize(partition, GiB);
    expect(attempt).toThrow(ShrinkBelowUsedError);
    expect(attempt).toThrow(`cannot shrink the buffer to ${GiB} bytes: ${GiB + 512} bytes are in use`);
  });

  it('shrinks by re-cutting and sharding what no longer fits', () => {
    const partition = observe(admitAll(4 * GiB, ['a', 'b']), [['a', 1.5 * GiB]]);
    const smaller = resize(partition, 2 * GiB);
    expect(sizes(smaller)).toEqual([GiB, GiB]);
    expect(smaller.bins[0]?.frozen).toBe(true);
    expect(view(smaller, 'a').cowBytes).toBe(1.5 * GiB);
    expect(smaller.bins[1]?.stack[1]).toEqual({ migration: 'a', bytes: 0.5 * GiB });
  });

  it('keeps every freeze on a resize to the same size: no space was reclaimed', () => {
    const partition = resize(observe(admitAll(4 * GiB, ['a', 'b']), [['a', 1.5 * GiB]]), 2 * GiB);
    expect(partition.bins[0]?.frozen).toBe(true);
    expect(resize(partition, 2 * GiB)).toEqual(partition);
  });

  it('grows, thaws and brings shards home', () => {
    const partition = resize(observe(admitAll(4 * GiB, ['a', 'b']), [['a', 1.5 * GiB]]), 2 * GiB);
    const grown = resize(partition, 4 * GiB);
    expect(grown.bins[0]?.stack).toEqual([{ migration: 'a', bytes: 1.5 * GiB }]);
    expect(grown.bins.every((bin) => !bin.frozen)).toBe(true);
  });

  it('rejects a capacity that is not a positive byte count', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => emptyPartition(bad)).toThrow(ValidationError);
  });
});

describe('invariants over any sequence of admit / observe / release / resize', () => {
  const sequences = fc.tuple(capacityArb, commandsArb);

  it('Σ bins ≤ Ω (= Ω while anything runs), and every bin holds no more than its size', () => {
    fc.assert(
      fc.property(sequences, ([capacity, commands]) => {
        for (const { after } of run(capacity, commands)) {
          const total = sizes(after).reduce((a, b) => a + b, 0);
          if (after.bins.length > 0) expect(total).toBe(after.capacity);
          for (const bin of after.bins) {
            expect(bin.stack.reduce((sum, layer) => sum + layer.bytes, 0)).toBeLessThanOrEqual(bin.size);
          }
        }
      }),
    );
  });

  it('non-reduction: placed + unplaced bytes of each migration = what was observed', () => {
    fc.assert(
      fc.property(sequences, ([capacity, commands]) => {
        for (const { after, observed } of run(capacity, commands)) {
          for (const migration of viewMigrations(after)) {
            expect(migration.cowBytes).toBe(observed.get(migration.id));
          }
          expect(placedBytes(after)).toBeLessThanOrEqual(after.capacity);
        }
      }),
    );
  });

  it("a migration's data lies only in its own bin and its shards, owner at the bottom", () => {
    fc.assert(
      fc.property(sequences, ([capacity, commands]) => {
        for (const { after } of run(capacity, commands)) {
          for (const bin of after.bins) {
            expect(bin.stack[0]?.migration).toBe(bin.owner);
            const guests = bin.stack.slice(1).map((layer) => layer.migration);
            expect(new Set(guests).size).toBe(guests.length);
            expect(guests).not.toContain(bin.owner);
          }
        }
      }),
    );
  });

  it('reclaim splits the released bin equally among the others', () => {
    fc.assert(
      fc.property(sequences, ([capacity, commands]) => {
        for (const { before, after, released } of run(capacity, commands)) {
          if (!released || after.bins.length === 0) continue;
          const gone = before.bins.find((bin) => bin.owner === released)?.size ?? 0;
          const share = gone / after.bins.length;
          for (const bin of after.bins) {
            const was = before.bins.find((candidate) => candidate.owner === bin.owner)?.size ?? 0;
            expect(Math.abs(bin.size - was - share)).toBeLessThanOrEqual(1);
          }
        }
      }),
    );
  });

  it('Σα = 1 for every non-sharded migration, and ≥ 1 for all', () => {
    fc.assert(
      fc.property(sequences, ([capacity, commands]) => {
        for (const { after } of run(capacity, commands)) {
          for (const migration of viewMigrations(after)) {
            if (migration.holdings.length === 1) expect(migration.meanPriority).toBe(1);
            expect(migration.meanPriority).toBeGreaterThanOrEqual(1);
          }
        }
      }),
    );
  });

  it('a frozen bin has no free room, so it can never be handed new bytes', () => {
    fc.assert(
      fc.property(sequences, ([capacity, commands]) => {
        for (const { after } of run(capacity, commands)) {
          for (const bin of after.bins.filter((candidate) => candidate.frozen)) {
            expect(bin.stack.reduce((sum, layer) => sum + layer.bytes, 0)).toBe(bin.size);
          }
        }
      }),
    );
  });

  it('bytes become unplaced only once every bin is full, and stay in use until release', () => {
    fc.assert(
      fc.property(sequences, ([capacity, commands]) => {
        for (const { before, after } of run(capacity, commands)) {
          const failingBefore = new Set(before.unplaced.map((entry) => entry.migration));
          const unplaced = after.unplaced.reduce((sum, entry) => sum + entry.bytes, 0);
          expect(usedBytes(after)).toBe(placedBytes(after) + unplaced);
          if (after.unplaced.some((entry) => !failingBefore.has(entry.migration))) expect(placedBytes(after)).toBe(after.capacity);
        }
      }),
    );
  });
});
