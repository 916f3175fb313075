import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UNKNOWN_LINK, updateLink, type LinkEstimate, type LinkSample } from '../../src/buffer/link-model.js';

const MBps = 1e6;

/** Cumulative bytes of a link whose rate follows `rateAt`, sampled every `dt` seconds. */
function samples(rateAt: (t: number) => number, seconds: number, dt = 0.5): LinkSample[] {
  const out: LinkSample[] = [{ t: 0, bytes: 0 }];
  let bytes = 0;
  for (let t = dt; t <= seconds + 1e-9; t += dt) {
    bytes += rateAt(t) * dt;
    out.push({ t, bytes: Math.round(bytes) });
  }
  return out;
}

function fold(list: readonly LinkSample[], start: LinkEstimate = UNKNOWN_LINK): LinkEstimate[] {
  const trail: LinkEstimate[] = [];
  let estimate = start;
  for (const sample of list) {
    estimate = updateLink(estimate, sample);
    trail.push(estimate);
  }
  return trail;
}

function at(trail: readonly LinkEstimate[], t: number): LinkEstimate {
  const found = trail.find((estimate) => estimate.last && Math.abs(estimate.last.t - t) < 1e-6);
  if (!found) throw new Error(`no estimate at ${t}`);
  return found;
}

describe('link model U(t)', () => {
  it('is unknown until it has two samples', () => {
    expect(updateLink(UNKNOWN_LINK, { t: 0, bytes: 0 }).phase).toBe('unknown');
  });

  it('follows a transient ramp, then settles into a steady state within 2 % of U∞', () => {
    const steady = 12.5 * MBps;
    const trail = fold(samples((t) => steady * (1 - Math.exp(-t / 2)), 30));
    expect(at(trail, 2).rate).toBeLessThan(0.9 * steady);
    expect(at(trail, 2).phase).toBe('transient');
    const late = at(trail, 30);
    expect(late.phase).toBe('steady');
    expect(Math.abs(late.rate - steady) / steady).toBeLessThan(0.02);
  });

  it('steps down to U/2 within a few seconds when a second stream joins (the stair of U/N)', () => {
    const trail = fold(samples((t) => (t <= 20 ? 25 * MBps : 12.5 * MBps), 40));
    expect(at(trail, 20).rate).toBeCloseTo(25 * MBps, -4);
    const after = trail.filter((estimate) => (estimate.last?.t ?? 0) >= 23);
    for (const estimate of after) expect(Math.abs(estimate.rate - 12.5 * MBps) / (12.5 * MBps)).toBeLessThan(0.1);
  });

  it('steps back up as quickly', () => {
    const trail = fold(samples((t) => (t <= 20 ? 6 * MBps : 24 * MBps), 40));
    expect(Math.abs(at(trail, 24).rate - 24 * MBps) / (24 * MBps)).toBeLessThan(0.1);
  });

  it('keeps its estimate across a counter reset and a gap in the samples', () => {
    const before = fold(samples(() => 10 * MBps, 20));
    const last = before.at(-1) as LinkEstimate;
    const reset = updateLink(last, { t: 20.5, bytes: 1000 });
    expect(reset.rate).toBe(last.rate);
    const gap = updateLink(reset, { t: 60, bytes: 1000 + 40 * 10 * MBps });
    expect(gap.rate).toBe(last.rate);
    const resumed = updateLink(gap, { t: 60.5, bytes: 1000 + 40.5 * 10 * MBps });
    expect(Math.abs(resumed.rate - 10 * MBps) / (10 * MBps)).toBeLessThan(0.02);
  });

  it('never lowers its estimate on app-limited samples (an idle link says nothing of its capacity)', () => {
    const busy = fold(samples(() => 10 * MBps, 20)).at(-1) as LinkEstimate;
    const last = busy.last as LinkSample;
    let estimate = busy;
    for (let i = 1; i <= 20; i += 1) {
      estimate = updateLink(estimate, { t: last.t + i * 0.5, bytes: last.bytes + i * 1000, appLimited: true });
    }
    expect(estimate.rate).toBeGreaterThanOrEqual(0.98 * busy.rate);
  });

  it('says since when bytes waited to go and none was acknowledged: a cut link, not an idle one', () => {
    const cut = fold([
      { t: 0, bytes: 0 },
      { t: 1, bytes: 10 * MBps },
      { t: 2, bytes: 20 * MBps },
      { t: 3, bytes: 20 * MBps },
      { t: 4, bytes: 20 * MBps },
      { t: 5, bytes: 20 * MBps, appLimited: true },
      { t: 6, bytes: 20 * MBps },
      { t: 7, bytes: 21 * MBps },
    ]);
    expect(cut.map((estimate) => estimate.stalledSince)).toEqual([undefined, undefined, undefined, 2, 2, undefined, 5, undefined]);
    // Nothing ever acknowledged with bytes waiting is a link that never worked.
    expect(fold([{ t: 0, bytes: 0 }, { t: 1, bytes: 0 }, { t: 2, bytes: 0 }]).at(-1)?.stalledSince).toBe(0);
    // A gap or a counter reset starts over.
    expect(fold([{ t: 0, bytes: 5 }, { t: 1, bytes: 5 }, { t: 2, bytes: 1 }]).at(-1)?.stalledSince).toBeUndefined();
  });

  it('ignores duplicate and out-of-order timestamps', () => {
    const estimate = fold(samples(() => MBps, 5)).at(-1) as LinkEstimate;
    expect(updateLink(estimate, { t: 1, bytes: 0 })).toBe(estimate);
    expect(updateLink(estimate, estimate.last as LinkSample)).toBe(estimate);
  });

  it('stays within the range of the observed rates, whatever the samples', () => {
    const arbitrarySamples = fc.array(
      fc.record({ dt: fc.integer({ min: 1, max: 3000 }), rate: fc.integer({ min: 0, max: 1e9 }), reset: fc.boolean() }),
      { minLength: 2, maxLength: 80 },
    );
    fc.assert(
      fc.property(arbitrarySamples, (steps) => {
        let estimate = UNKNOWN_LINK;
        let t = 0;
        let bytes = 0;
        let low = Infinity;
        let high = 0;
        estimate = updateLink(estimate, { t, bytes });
        for (const step of steps) {
          const previous = bytes;
          t += step.dt / 1000;
          bytes = step.reset ? 0 : bytes + step.rate * (step.dt / 1000);
          if (bytes >= previous && step.dt <= 5000) {
            const rate = (bytes - previous) / (step.dt / 1000);
            low = Math.min(low, rate);
            high = Math.max(high, rate);
          }
          estimate = updateLink(estimate, { t, bytes });
          expect(Number.isFinite(estimate.rate)).toBe(true);
          if (estimate.phase !== 'unknown') {
            expect(estimate.rate).toBeGreaterThanOrEqual(low * (1 - 1e-9) - 1e-6);
            expect(estimate.rate).toBeLessThanOrEqual(high * (1 + 1e-9) + 1e-6);
          }
        }
      }),
    );
  });
});
