/**
 * `deadline` against the engine's phases: the mirror's window (before the mirror is ready, and
 * for an overlay the window can no longer hold) and the time RAM pre-copy still needs.
 */
import { describe, expect, it } from 'vitest';
import { admit, emptyPartition, observe } from '../../../src/buffer/partition.js';
import { BASE_OVERRUN, MIRROR_MARGIN, RESERVE_FRACTION, WRITE_SHARE, deadline } from '../../../src/buffer/throttle/deadline.js';
import { EPSILON, computeThrottles, type ThrottleDemand } from '../../../src/buffer/throttle/policy.js';

const MB = 1e6;
const BIN = 100 * MB;
/** A slow share: the mirror's window (1.5 × 60 s at 90 %) carries 40.5 MB, less than the bin. */
const SLOW = 0.5 * MB;
const MIRROR_SECONDS = 60;
const WINDOW = SLOW * MIRROR_SECONDS * 1.5 * MIRROR_MARGIN;

/** γ of a single migration whose overlay is `cow` bytes in a bin of BIN. */
function rate(cow: number, demand: Partial<ThrottleDemand>): number {
  const partition = observe(admit(emptyPartition(BIN), 'a'), [['a', cow]]);
  const full: ThrottleDemand = { linkShare: SLOW, remainingBytes: 10 * MB, uniqueFraction: 1, periodSeconds: 0.5, ...demand };
  return computeThrottles(deadline, partition, new Map([['a', full]]))[0]?.rate ?? 0;
}

/** The bound γ = S·F / (u·(B + F)), with B at least `S × horizon` (10 s here). */
function bound(share: number, room: number, toShip: number): number {
  return (share * room) / (Math.max(toShip, share * 10) + room);
}

describe('deadline: the mirror window', () => {
  it('caps the room by what the share carries in the window, less the overlay, while the mirror is not ready', () => {
    const cow = 10 * MB;
    expect(rate(cow, { phase: 'base', mirrorSeconds: MIRROR_SECONDS })).toBeCloseTo(bound(SLOW, WINDOW - cow, 10 * MB), 6);
  });

  it('still holds an overlay beyond the window in RAM pre-copy, where its writes would take the link its RAM needs', () => {
    expect(rate(50 * MB, { phase: 'ram', mirrorSeconds: MIRROR_SECONDS })).toBe(EPSILON);
    expect(rate(50 * MB, { phase: 'ram' })).toBeCloseTo(SLOW * WRITE_SHARE.ram, 6);
  });

  it('lets an overlay beyond all the window carries (the share fell under it) grow by a tenth of what still crosses in the base phase, not at ε', () => {
    const cow = 50 * MB;
    expect(cow).toBeGreaterThan(WINDOW / MIRROR_MARGIN);
    const remainingBytes = 20 * MB;
    const beyond = rate(cow, { phase: 'base', mirrorSeconds: MIRROR_SECONDS, remainingBytes });
    expect(beyond).toBeCloseTo(bound(SLOW, BASE_OVERRUN * remainingBytes, remainingBytes), 6);
    expect(beyond).toBeGreaterThan(3 * EPSILON);
    expect(beyond).toBeLessThan(rate(cow, { phase: 'base', remainingBytes }));
  });

  it('holds an overlay beyond the planned window that the window can still carry, in the base phase too', () => {
    const cow = 42 * MB;
    expect(cow).toBeGreaterThan(WINDOW);
    expect(cow).toBeLessThan(WINDOW / MIRROR_MARGIN);
    expect(rate(cow, { phase: 'base', mirrorSeconds: MIRROR_SECONDS })).toBe(EPSILON);
  });

  it('plans no window on a link not yet measured: the assumed rate says nothing of what the mirror will get', () => {
    const cow = 42 * MB;
    expect(rate(cow, { phase: 'base', mirrorSeconds: MIRROR_SECONDS })).toBe(EPSILON);
    const assumed = rate(cow, { phase: 'base', mirrorSeconds: MIRROR_SECONDS, linkAssumed: true });
    expect(assumed).toBe(rate(cow, { phase: 'base' }));
    expect(assumed).toBeGreaterThan(3 * EPSILON);
  });

  it('holds an overlay at the window\'s edge while the mirror copies it: every write there slows the copy', () => {
    expect(rate(WINDOW, { phase: 'mirror', mirrorSeconds: MIRROR_SECONDS })).toBe(EPSILON);
    expect(rate(WINDOW, { mirrorSeconds: MIRROR_SECONDS })).toBe(EPSILON);
  });
});

describe('deadline: the time RAM pre-copy still needs', () => {
  const SHARE = 10 * MB;

  it('plans the room over the RAM model\'s time left when re-dirtying makes it longer than RAM ÷ share', () => {
    const cow = 20 * MB;
    const room = (1 - RESERVE_FRACTION) * BIN - cow;
    // 100 MB of RAM left at 10 MB/s, but draining at a quarter of that: 40 s, not 10 s.
    const slow = rate(cow, { phase: 'ram', linkShare: SHARE, remainingBytes: 100 * MB, ramSeconds: 40 });
    expect(slow).toBeCloseTo(bound(SHARE, room, SHARE * 40), 6);
    expect(slow).toBeLessThan(rate(cow, { phase: 'ram', linkShare: SHARE, remainingBytes: 100 * MB }));
    // The overlay just fills the room by the end of those 40 s.
    expect((slow * 40 * SHARE) / (SHARE - slow) / room).toBeCloseTo(1, 6);
  });

  it('never plans on less than RAM ÷ share: a fast pace changes nothing', () => {
    const cow = 20 * MB;
    const demand = { phase: 'ram', linkShare: SHARE, remainingBytes: 100 * MB, uniqueFraction: 2 } as const;
    expect(rate(cow, { ...demand, ramSeconds: 1 })).toBe(rate(cow, demand));
  });
});
