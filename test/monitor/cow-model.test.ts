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

  it('starts a new baseline when a counter goes backwards, and keeps the last estimates', () => {
    const grown = feed(Array.from({ length: 20 }, (_, i) => ({ t: i, allocated: i * 1e6, written: i * 2e6 })));
    const reset = updateCow(grown, { t: 20, allocated: 0, written: 1000 });
    expect(reset).toMatchObject({ growthRate: grown.growthRate, writeRate: grown.writeRate, uniqueFraction: grown.uniqueFraction, steps: [{ t: 20 }] });
    expect(updateCow(reset, { t: 20, allocated: 5, written: 5 })).toBe(reset);
    expect(updateCow(grown, { t: 20, allocated: 20e6, written: 0 }).steps).toEqual([{ t: 20, allocated: 20e6, written: 0 }]);
  });

  it('lets u exceed 1: 4 KiB writes each allocating a fresh 64 KiB cluster grow the overlay 16×', () => {
    const writes = 256; // per second, of 4 KiB each
    const estimate = feed(Array.from({ length: 40 }, (_, i) => ({ t: i * 0.5, allocated: i * 0.5 * writes * 65536, written: i * 0.5 * writes * 4096 })));
    expect(estimate.uniqueFraction).toBeCloseTo(16, 6);
  });

  it('does not oscillate with a periodic sync of the measured size (ZFS txg-like steps)', () => {
    // The guest writes 2 MiB/s, half of it to new clusters; st_blocks only moves at each sync,
    // every 5.3 s, by what the last transaction group held. Samples every 0.5 s.
    const rate = 2 * 1024 ** 2;
    const sync = 5.3;
    const samples = Array.from({ length: 240 }, (_, i) => {
      const t = i * 0.5;
      return { t, allocated: Math.floor(t / sync) * sync * rate * 0.5, written: t * rate };
    });
    let estimate = UNKNOWN_COW;
    const after: number[] = [];
    for (const sample of samples) {
      estimate = updateCow(estimate, sample);
      if (sample.t >= 30) after.push(estimate.uniqueFraction);
    }
    expect(Math.min(...after)).toBeGreaterThan(0.45);
    expect(Math.max(...after)).toBeLessThan(0.55);
  });

  it('reads a size that stopped moving for longer than any sync as rewrites: u falls to 0', () => {
    const growing = Array.from({ length: 40 }, (_, i) => ({ t: i * 0.5, allocated: i * 0.5 * 1e6, written: i * 0.5 * 2e6 }));
    const rewriting = Array.from({ length: 100 }, (_, i) => ({ t: 20 + i * 0.5, allocated: 20e6, written: (20 + i * 0.5) * 2e6 }));
    const estimate = feed([...growing, ...rewriting]);
    expect(feed(growing).uniqueFraction).toBeCloseTo(0.5, 6);
    expect(estimate.uniqueFraction).toBe(0);
    expect(estimate.growthRate).toBe(0);
  });
});
