import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IDLE_SHARE, driveRates } from '../../src/buffer/throttle/drives.js';
import { EPSILON } from '../../src/buffer/throttle/policy.js';

describe("driveRates: one γ split across a VM's drives", () => {
  it('splits by write rate, with a floor of an even split for a drive that has not written', () => {
    const [busy, idle] = driveRates(10e6, 100e6, [4e6, 0]);
    expect(idle).toBe(Math.round((10e6 * IDLE_SHARE) / 2));
    expect(busy).toBe(Math.round(10e6 * (1 - IDLE_SHARE / 2)));
  });

  it('splits evenly when no drive writes', () => {
    expect(driveRates(9e6, 100e6, [0, 0, 0])).toEqual([3e6, 3e6, 3e6]);
  });

  it('keeps every rate within [ε, U/N] whatever the slow-mirror factor did to the budget', () => {
    expect(driveRates(0.25 * EPSILON, 100e6, [1e6, 1e6])).toEqual([EPSILON, EPSILON]);
    expect(driveRates(50e6, 10e6, [1e6])).toEqual([10e6]);
    // A dead link (U = 0) still never yields 0, which QEMU reads as unlimited.
    expect(driveRates(50e6, 0, [1e6])).toEqual([EPSILON]);
  });

  it('never exceeds the budget beyond the ε floors, and follows the write rates', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e9, noNaN: true }),
        fc.double({ min: 0, max: 1e9, noNaN: true }),
        fc.array(fc.double({ min: 0, max: 1e9, noNaN: true }), { minLength: 1, maxLength: 8 }),
        (budget, share, writes) => {
          const rates = driveRates(budget, share, writes);
          expect(rates).toHaveLength(writes.length);
          for (const rate of rates) {
            expect(rate).toBeGreaterThanOrEqual(EPSILON);
            expect(rate).toBeLessThanOrEqual(Math.max(EPSILON, Math.round(share)));
          }
          expect(rates.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(Math.max(budget, 0) + writes.length * (EPSILON + 1));
          for (const [i, write] of writes.entries()) {
            for (const [j, other] of writes.entries()) if (write > other) expect(rates[i]).toBeGreaterThanOrEqual(rates[j] ?? 0);
          }
        },
      ),
    );
  });
});
