import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PeerError } from '../../src/errors.js';
import { ChunkDecoder, chunkHeader, END_OF_CHUNKS, MAX_CHUNK } from '../../src/peer/chunks.js';

function encode(chunks: readonly Uint8Array[], trailer: Buffer): Buffer {
  return Buffer.concat([...chunks.flatMap((chunk) => [chunkHeader(chunk.length), Buffer.from(chunk)]), END_OF_CHUNKS, trailer]);
}

describe('chunk framing', () => {
  it('gives back the payload and what follows the end, however the wire splits it', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 }), (chunks, cuts) => {
        const wire = encode(chunks, Buffer.from('{"sha256":"x"}\n'));
        const decoder = new ChunkDecoder();
        const payload: Buffer[] = [];
        let rest: Buffer | undefined;
        for (let offset = 0, i = 0; offset < wire.length; i += 1) {
          const size = cuts[i % cuts.length] as number;
          const decoded = decoder.push(wire.subarray(offset, offset + size));
          offset += size;
          payload.push(...decoded.payload);
          if (decoded.rest) rest = Buffer.concat([rest ?? Buffer.alloc(0), decoded.rest]);
        }
        expect(Buffer.concat(payload)).toEqual(Buffer.concat(chunks.map((chunk) => Buffer.from(chunk))));
        expect(rest?.toString()).toBe('{"sha256":"x"}\n');
      }),
    );
  });

  it('refuses a chunk longer than it will buffer', () => {
    expect(() => new ChunkDecoder().push(chunkHeader(MAX_CHUNK + 1))).toThrow(new PeerError(`chunk of ${MAX_CHUNK + 1} bytes is larger than ${MAX_CHUNK}`));
  });
});
