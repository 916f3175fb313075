import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PeerError } from '../../src/errors.js';
import { ExtentDecoder, ExtentEncoder, extentHeader, MAX_EXTENT } from '../../src/peer/extents.js';
import type { Extent } from '../../src/storage/shipping.js';

/** Extents in order with gaps (holes) between them, from (gap, bytes) pairs. */
const extents = fc.array(fc.tuple(fc.nat({ max: 5000 }), fc.uint8Array({ minLength: 1, maxLength: 300 })), { maxLength: 8 }).map((pairs) => {
  let offset = 0;
  return pairs.map(([gap, bytes]): Extent => {
    offset += gap;
    const extent = { offset, data: Buffer.from(bytes) };
    offset += bytes.length;
    return extent;
  });
});

describe('extent framing', () => {
  it('gives back the extents, the size, the digest and what follows the end, however the wire splits it', () => {
    fc.assert(
      fc.property(extents, fc.nat({ max: 100 }), fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 }), (sent, tail, cuts) => {
        const encoder = new ExtentEncoder();
        const last = sent.at(-1);
        const size = (last ? last.offset + last.data.length : 0) + tail;
        const records = sent.flatMap((extent) => encoder.encode(extent));
        const finished = encoder.finish(size);
        const wire = Buffer.concat([...records, finished.end, Buffer.from('{"sha256":"x"}\n')]);
        const decoder = new ExtentDecoder(size);
        const got: Extent[] = [];
        let end: { size: number; sha256: string } | undefined;
        let rest = Buffer.alloc(0);
        for (let offset = 0, i = 0; offset < wire.length; i += 1) {
          const step = cuts[i % cuts.length] as number;
          const decoded = decoder.push(wire.subarray(offset, offset + step));
          offset += step;
          got.push(...decoded.extents);
          end ??= decoded.end;
          if (decoded.rest) rest = Buffer.concat([rest, decoded.rest]);
        }
        expect(got).toEqual(sent);
        expect(end).toEqual({ size, sha256: finished.sha256 });
        expect(rest.toString()).toBe('{"sha256":"x"}\n');
      }),
    );
  });

  it('agrees on the digest at both ends, and a flipped data byte changes it', () => {
    const encoder = new ExtentEncoder();
    const wire = [...encoder.encode({ offset: 10, data: Buffer.from('hello') }), ...encoder.encode({ offset: 100, data: Buffer.from('world') })];
    const { end, sha256 } = encoder.finish(200);
    expect(new ExtentDecoder(200).push(Buffer.concat([...wire, end])).end?.sha256).toBe(sha256);
    const flipped = Buffer.concat([...wire, end]);
    flipped[12] = (flipped[12] ?? 0) ^ 1;
    expect(new ExtentDecoder(200).push(flipped).end?.sha256).not.toBe(sha256);
  });

  it('splits an extent longer than a record, and refuses what a peer must not send', () => {
    const encoder = new ExtentEncoder();
    const parts = encoder.encode({ offset: 0, data: Buffer.alloc(MAX_EXTENT + 5) });
    expect(parts.map((part) => part.length)).toEqual([12, MAX_EXTENT, 12, 5]);
    expect(() => encoder.encode({ offset: 3, data: Buffer.alloc(1) })).toThrow(new PeerError(`extent at 3 overlaps the one ending at ${MAX_EXTENT + 5}`));
    expect(() => new ExtentDecoder().push(extentHeader(0, MAX_EXTENT + 1))).toThrow(new PeerError(`bad extent stream: a record of ${MAX_EXTENT + 1} bytes is longer than ${MAX_EXTENT}`));
    const overlapping = Buffer.concat([extentHeader(10, 4), Buffer.alloc(4), extentHeader(12, 1)]);
    expect(() => new ExtentDecoder().push(overlapping)).toThrow(new PeerError("bad extent stream: a record at 12 lies before the previous record's end at 14"));
    expect(() => new ExtentDecoder(100).push(extentHeader(99, 0))).toThrow(new PeerError('bad extent stream: the stream ends at 99, not at its size 100'));
  });
});
