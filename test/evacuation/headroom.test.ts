/* eslint-disable @typescript-eslint/no-explicit-any -- the edits poke into a raw message on purpose, to break it */
import { describe, expect, it } from 'vitest';
import { admit, emptyPartition, observe } from '../../src/buffer/partition.js';
import { UNKNOWN_LINK, type LinkEstimate } from '../../src/buffer/link-model.js';
import { ValidationError } from '../../src/errors.js';
import { computeHeadroom, parseHeadroom, type Headroom, type HeadroomInputs } from '../../src/evacuation/headroom.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function inputs(overrides: Partial<HeadroomInputs> = {}): HeadroomInputs {
  const partition = observe(admit(admit(emptyPartition(10 * GiB), 'a'), 'b'), [['a', 3 * GiB], ['b', 10 * MiB]]);
  const steady: LinkEstimate = { ...UNKNOWN_LINK, rate: 125e6, phase: 'steady' };
  return {
    host: 'h1',
    partition,
    minBinBytes: 64 * MiB,
    outgoing: { used: 2, limit: 4 },
    maxIncoming: 3,
    incoming: [{ memoryBytes: 2 * GiB, diskBytes: 20 * GiB }],
    availableMemory: 30 * GiB,
    availableDisk: 500 * GiB,
    links: [['h2', steady], ['h3', undefined]],
    ...overrides,
  };
}

describe('computeHeadroom', () => {
  it('counts each running migration at least at the bin floor, and what is already on its way in', () => {
    expect(computeHeadroom(inputs())).toEqual({
      host: 'h1',
      buffer: { size: 10 * GiB, used: 3 * GiB + 10 * MiB, committed: 3 * GiB + 64 * MiB, free: 7 * GiB - 64 * MiB },
      outgoing: { used: 2, limit: 4 },
      incoming: { used: 1, limit: 3 },
      memoryFree: 28 * GiB,
      diskFree: 480 * GiB,
      links: [
        { peer: 'h2', rate: 125e6, phase: 'steady' },
        { peer: 'h3', rate: 0, phase: 'unknown' },
      ],
    });
  });

  it('never reports less than nothing free', () => {
    const crowded = computeHeadroom(inputs({ partition: ['a', 'b', 'c'].reduce(admit, emptyPartition(100 * MiB)), availableMemory: GiB, availableDisk: 0 }));
    expect(crowded.buffer).toMatchObject({ committed: 192 * MiB, free: 0 });
    expect(crowded.memoryFree).toBe(0);
    expect(crowded.diskFree).toBe(0);
  });
});

describe('parseHeadroom', () => {
  const good = (): any => structuredClone(computeHeadroom(inputs())) as any;

  it('takes back what computeHeadroom gives', () => {
    const headroom: Headroom = computeHeadroom(inputs());
    expect(parseHeadroom(JSON.parse(JSON.stringify(headroom)))).toEqual(headroom);
  });

  it.each<[string, (raw: any) => void, string]>([
    ['an unknown field', (raw) => (raw.extra = 1), 'headroom.extra'],
    ['a missing field', (raw) => delete raw.diskFree, 'headroom.diskFree'],
    ['a negative byte count', (raw) => (raw.memoryFree = -1), 'headroom.memoryFree'],
    ['bytes that are not whole', (raw) => (raw.buffer.size = 1.5), 'headroom.buffer.size'],
    ['free beyond the size', (raw) => (raw.buffer.free = raw.buffer.size + 1), 'headroom.buffer.free'],
    ['a slot count as text', (raw) => (raw.incoming.limit = '4'), 'headroom.incoming.limit'],
    ['a link without a peer', (raw) => (raw.links[1].peer = ''), 'headroom.links[1].peer'],
    ['a peer twice', (raw) => (raw.links[1].peer = 'h2'), 'headroom.links[1].peer'],
    ['an unknown link phase', (raw) => (raw.links[0].phase = 'fast'), 'headroom.links[0].phase'],
    ['an infinite rate', (raw) => (raw.links[0].rate = Infinity), 'headroom.links[0].rate'],
  ])('refuses %s, naming the field', (_, edit, field) => {
    const raw = good();
    edit(raw);
    let error: unknown;
    try {
      parseHeadroom(raw);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe(field);
  });

  it('says what it expected', () => {
    const raw = good();
    raw.buffer.free = raw.buffer.size + 1;
    expect(() => parseHeadroom(raw, 'peer h2')).toThrow(`Expected \`peer h2.buffer.free\` to be an integer ≥ 0 and ≤ ${10 * GiB}, got \`${10 * GiB + 1}\``);
    expect(() => parseHeadroom([])).toThrow('Expected `headroom` to be an object, got an empty array');
  });
});
