import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { writeThresholds } from '../../src/buffer/write-threshold.js';
import type { Holding, MigrationView } from '../../src/buffer/view.js';

const MiB = 1024 ** 2;
const holding = (over: Partial<Holding>): Holding => ({ bin: 'a', binSize: 100 * MiB, binUsed: 0, frozen: false, holders: 1, bytes: 0, priority: 1, ...over });
const view = (...holdings: Holding[]): MigrationView => ({ id: 'a', holdings, cowBytes: holdings.reduce((s, h) => s + h.bytes, 0), unplacedBytes: 0, meanPriority: 1 });

describe('writeThresholds', () => {
  it.each([
    ['one overlay: its end plus the room left less the lead', view(holding({ binUsed: 30 * MiB, bytes: 30 * MiB })), [30 * MiB], 10 * MiB, [90 * MiB]],
    ['two overlays share the room evenly', view(holding({ binUsed: 40 * MiB, bytes: 40 * MiB })), [10 * MiB, 30 * MiB], 0, [40 * MiB, 60 * MiB]],
    ['shards hosted in its bin take room too', view(holding({ binUsed: 70 * MiB, bytes: 20 * MiB })), [20 * MiB], 0, [50 * MiB]],
    ['a frozen own bin gives none; a host bin gives its free space', view(holding({ binUsed: 100 * MiB, bytes: 100 * MiB, frozen: true }), holding({ bin: 'b', binSize: 50 * MiB, binUsed: 30 * MiB, bytes: 5 * MiB, priority: 2 })), [105 * MiB], 0, [125 * MiB]],
    ['within a lead of the edge: fire on the next write', view(holding({ binUsed: 95 * MiB, bytes: 95 * MiB })), [95 * MiB], 10 * MiB, [95 * MiB]],
    ['an empty overlay is armed at 1, never at 0 (0 disarms)', view(holding({ binUsed: 100 * MiB })), [0], 0, [1]],
  ])('%s', (_, v, extents, lead, expected) => {
    expect(writeThresholds(v, extents, lead)).toEqual(expected);
  });

  it('fires before the bin is full: if every overlay stays below its threshold, the bin keeps at least the lead', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(50 * MiB), { minLength: 1, maxLength: 4 }), fc.nat(100 * MiB), fc.nat(20 * MiB), (extents, binSize, lead) => {
        const used = extents.reduce((a, b) => a + b, 0);
        const v = view(holding({ binSize: Math.max(binSize, used), binUsed: used, bytes: used }));
        const thresholds = writeThresholds(v, extents, lead);
        // The largest total reachable with no overlay past its threshold.
        const reachable = thresholds.reduce((a, b) => a + b, 0);
        expect(reachable).toBeLessThanOrEqual(Math.max(used + extents.length, Math.max(binSize, used) - lead + extents.length));
      }),
    );
  });
});
