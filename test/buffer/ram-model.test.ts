import { describe, expect, it } from 'vitest';
import { UNKNOWN_RAM, ramSecondsLeft, updateRam, type RamEstimate, type RamSample } from '../../src/buffer/ram-model.js';

const MB = 1e6;

function fold(samples: readonly RamSample[], tauSeconds = 30): RamEstimate {
  return samples.reduce((estimate, sample) => updateRam(estimate, sample, { tauSeconds }), UNKNOWN_RAM);
}

describe('the RAM model: how long pre-copy still needs', () => {
  it('knows nothing from one sample', () => {
    expect(ramSecondsLeft(UNKNOWN_RAM)).toBeUndefined();
    expect(ramSecondsLeft(fold([{ t: 0, remaining: 1000 * MB }]))).toBeUndefined();
  });

  it('is remaining ÷ the pace it falls at', () => {
    const samples = Array.from({ length: 21 }, (_, i) => ({ t: i, remaining: 1000 * MB - 20 * MB * i }));
    expect(ramSecondsLeft(fold(samples))).toBeCloseTo(600 / 20, 9);
  });

  it('follows a pace that slows (re-dirtying) with its time constant, not at once', () => {
    const fast = Array.from({ length: 11 }, (_, i) => ({ t: i, remaining: 1000 * MB - 50 * MB * i }));
    const slow = Array.from({ length: 10 }, (_, i) => ({ t: 11 + i, remaining: 500 * MB - 10 * MB * (i + 1) }));
    const estimate = fold([...fast, ...slow], 10);
    expect(estimate.drainRate).toBeGreaterThan(10 * MB);
    expect(estimate.drainRate).toBeLessThan(50 * MB);
    expect(fold([...fast, ...slow], 1).drainRate).toBeCloseTo(10 * MB, -3);
  });

  it('says nothing while remaining does not fall (the engine\'s stall detector handles a stall)', () => {
    const rising = [0, 1, 2, 3].map((t) => ({ t, remaining: 500 * MB + 10 * MB * t }));
    expect(ramSecondsLeft(fold(rising))).toBeUndefined();
  });

  it('starts a new baseline on a clock that goes back, keeping its pace', () => {
    const before = fold([{ t: 10, remaining: 1000 * MB }, { t: 11, remaining: 990 * MB }]);
    const after = updateRam(before, { t: 0, remaining: 500 * MB });
    expect(after.drainRate).toBe(before.drainRate);
    expect(ramSecondsLeft(after)).toBeCloseTo(50, 9);
  });
});
