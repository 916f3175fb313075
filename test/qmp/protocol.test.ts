import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { QmpProtocolError } from '../../src/qmp/errors.js';
import { FrameDecoder, encode } from '../../src/qmp/protocol.js';

const messageArb = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 });

describe('FrameDecoder', () => {
  it('decodes the same messages however the stream is cut into chunks', () => {
    fc.assert(
      fc.property(fc.array(messageArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (messages, cuts) => {
        const bytes = Buffer.from(messages.map((m) => encode(m)).join(''));
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const decoder = new FrameDecoder();
        const out: unknown[] = [];
        let start = 0;
        for (const point of [...points, bytes.length]) {
          out.push(...decoder.push(bytes.subarray(start, point)));
          start = point;
        }
        expect(out).toEqual(JSON.parse(JSON.stringify(messages)));
      }),
    );
  });

  it('keeps a multi-byte character split across two reads intact', () => {
    const bytes = Buffer.from(encode({ desc: 'naïve – ünïcode' }));
    const decoder = new FrameDecoder();
    const cut = bytes.indexOf(0xc3) + 1;
    expect([...decoder.push(bytes.subarray(0, cut)), ...decoder.push(bytes.subarray(cut))]).toEqual([{ desc: 'naïve – ünïcode' }]);
  });

  it('never crashes on garbage: every failure is a QmpProtocolError', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const decoder = new FrameDecoder(256);
        for (const chunk of chunks) {
          try {
            for (const message of decoder.push(Buffer.from(chunk))) expect(typeof message).toBe('object');
          } catch (error) {
            expect(error).toBeInstanceOf(QmpProtocolError);
          }
        }
      }),
    );
  });

  it('names what it refused', () => {
    expect(() => new FrameDecoder().push('[1,2]\n')).toThrow('not a JSON object: "[1,2]"');
    expect(() => new FrameDecoder(8).push('{"aaaaaaaaaaaa')).toThrow('line longer than 8 bytes');
  });
});
