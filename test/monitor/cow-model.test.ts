import { describe, expect, it } from 'vitest';
import { UNKNOWN_COW, updateCow, type CowEstimate } from '../../src/monitor/cow-model.js';

function feed(samples: ReadonlyArray<{ t: number; allocated: number; written?: number }>): CowEstimate {
  return samples.reduce<CowEstimate>((estimate, sample) => updateCow(estimate, sample), UNKNOWN_COW);
}

describe('overlay growth model', () => {
  it('learns growth rate, write rate and the unique fraction', () => {
    const samples = Array.from({ length: 60 }, (_, i) => ({ t: i * 0.5, allocated: i * 0.5 * 3e6, written: i * 0.5 * 10e6 }));
    const estimate = feed(samples);
    expect(estimate.growthRate).toBeCloseTo(3e6, -3);
    expect(estimate.writeRate).toBeCloseTo(10e6, -3);
    expect(estimate.uniqueFraction).toBeCloseTo(0.3, 3);
  });

  it('assumes every write is unique until the guest has written enough to tell', () => {
    const estimate = feed([
      { t: 0, allocated: 0, written: 0 },
      { t: 1, allocated: 0, written: 1000 },
    ]);
    expect(estimate.uniqueFraction).toBe(1);
  });

  it('never reads a shrinking file as negative growth, and restarts on a write counter reset', () => {
    const grown = feed(Array.from({ length: 20 }, (_, i) => ({ t: i, allocated: i * 1e6, written: i * 2e6 })));
    const shrunk = updateCow(grown, { t: 20, allocated: 0, written: 1000 });
    expect(shrunk.growthRate).toBeLessThan(grown.growthRate);
    expect(shrunk.growthRate).toBeGreaterThanOrEqual(0);
    expect(shrunk.writeRate).toBe(grown.writeRate);
    expect(updateCow(shrunk, { t: 20, allocated: 5, written: 5 })).toBe(shrunk);
  });
});
