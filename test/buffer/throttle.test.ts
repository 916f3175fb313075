import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { admit, emptyPartition, observe, type Partition } from '../../src/buffer/partition.js';
import { HORIZON_PERIODS, MIN_HORIZON_SECONDS, RESERVE_FRACTION, deadline } from '../../src/buffer/throttle/deadline.js';
import { THROTTLE_POLICIES, throttlePolicy } from '../../src/buffer/throttle/index.js';
import { lx066, lx066Red } from '../../src/buffer/throttle/lx066.js';
import { EPSILON, computeThrottles, type ThrottleDemand } from '../../src/buffer/throttle/policy.js';
import { viewMigrations } from '../../src/buffer/view.js';
import { ValidationError } from '../../src/errors.js';
import { capacityArb, commandsArb, run } from '../support/partition-commands.js';

const MB = 1e6;
/** The paper's figure: Π = 100 MB, U/N = 10 MB/s. */
const PI = 100 * MB;
const SHARE = 10 * MB;

/** s where the red curve meets `level`, by bisection (red is decreasing). */
function crossing(meanPriority: number, level: number): number {
  let low = 0;
  let high = PI;
  for (let i = 0; i < 200; i += 1) {
    const mid = (low + high) / 2;
    if (lx066Red(PI, mid, meanPriority) > level) low = mid;
    else high = mid;
  }
  return low / PI;
}

describe('lx066: the red curve, against the paper (Π = 100 MB, U/N = 10 MB/s)', () => {
  it('starts at Π + ε and ends at ε', () => {
    expect(lx066Red(PI, 0, 1)).toBe(PI + EPSILON);
    expect(lx066Red(PI, PI, 1)).toBe(EPSILON);
    expect(lx066Red(PI, 2 * PI, 1)).toBe(EPSILON);
  });

  it('meets U/N at s/Π = ln10/(1+ln10) ≈ 0.697 (Σα = 1) and ln10/(2+ln10) ≈ 0.535 (Σα = 2)', () => {
    expect(crossing(1, SHARE)).toBeCloseTo(Math.LN10 / (1 + Math.LN10), 3);
    expect(crossing(1, SHARE)).toBeCloseTo(0.697, 3);
    expect(crossing(2, SHARE)).toBeCloseTo(Math.LN10 / (2 + Math.LN10), 3);
    expect(crossing(2, SHARE)).toBeCloseTo(0.535, 3);
  });

  it('with Σα = 2 the red term is halved at s/Π = ln2/(1+ln2) ≈ 0.409', () => {
    const s = (Math.LN2 / (1 + Math.LN2)) * PI;
    expect(Math.LN2 / (1 + Math.LN2)).toBeCloseTo(0.409, 3);
    const ratio = (lx066Red(PI, s, 2) - EPSILON) / (lx066Red(PI, s, 1) - EPSILON);
    expect(ratio).toBeCloseTo(0.5, 3);
  });

  it('is non-increasing in s and stays within [ε, Π + ε]', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 40 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 1, max: 8 }),
        (bin, a, b, alpha) => {
          const [low, high] = [Math.min(a, b), Math.max(a, b)].map((permille) => Math.floor((bin * permille) / 1e6)) as [number, number];
          const atLow = lx066Red(bin, low, alpha);
          const atHigh = lx066Red(bin, high, alpha);
          expect(atHigh).toBeLessThanOrEqual(atLow);
          expect(atHigh).toBeGreaterThanOrEqual(EPSILON);
          expect(atLow).toBeLessThanOrEqual(bin + EPSILON);
        },
      ),
    );
  });

  it('is scale-invariant in s/Π: (red − ε)/Π depends on the fill only', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 990 }), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 4 }), (permille, scale, alpha) => {
        const base = 1e9;
        const fill = permille / 1000;
        const small = (lx066Red(base, fill * base, alpha) - EPSILON) / base;
        const large = (lx066Red(base * scale, fill * base * scale, alpha) - EPSILON) / (base * scale);
        expect(large).toBeCloseTo(small, 4);
      }),
    );
  });
});

function demandsFor(partition: Partition, demand: Partial<ThrottleDemand> = {}): Map<string, ThrottleDemand> {
  return new Map(
    partition.bins.map((bin) => [bin.owner, { linkShare: SHARE, remainingBytes: 10 * PI, uniqueFraction: 1, periodSeconds: 0.5, ...demand }]),
  );
}

/**
 * The paper's four bins as it draws them: m0 and m2 overflowed their own bins b0 and b2, which
 * are frozen (full), and are each sharded across three bins, onto b1 and b3, which still have
 * room. In b1 m2's shard sits on top of m0's, in b3 m0's on top of m2's.
 */
const fourBins: Partition = {
  capacity: 4 * PI,
  bins: [
    { owner: 'm0', size: PI, frozen: true, stack: [{ migration: 'm0', bytes: PI }] },
    {
      owner: 'm1',
      size: PI,
      frozen: false,
      stack: [
        { migration: 'm1', bytes: 0.4 * PI },
        { migration: 'm0', bytes: 0.1 * PI },
        { migration: 'm2', bytes: 0.1 * PI },
      ],
    },
    { owner: 'm2', size: PI, frozen: true, stack: [{ migration: 'm2', bytes: PI }] },
    {
      owner: 'm3',
      size: PI,
      frozen: false,
      stack: [
        { migration: 'm3', bytes: 0.2 * PI },
        { migration: 'm2', bytes: 0.15 * PI },
        { migration: 'm0', bytes: 0.1 * PI },
      ],
    },
  ],
  unplaced: [],
};

describe("the paper's four-bin example", () => {
  const views = new Map(viewMigrations(fourBins).map((view) => [view.id, view]));
  const rawRate = (id: string) => {
    const view = views.get(id);
    if (!view) throw new Error(`no view for ${id}`);
    return lx066.rate(view, { linkShare: 1e12, remainingBytes: 0, uniqueFraction: 1, periodSeconds: 0.5 });
  };

  it('gives Σα_0 = (1 + 2 + 3)/3 = 2 and Σα_2 = (1 + 3 + 2)/3 = 2, and Σα = 1 to the others', () => {
    expect(views.get('m0')?.meanPriority).toBe(2);
    expect(views.get('m2')?.meanPriority).toBe(2);
    expect(views.get('m1')?.meanPriority).toBe(1);
    expect(views.get('m3')?.meanPriority).toBe(1);
  });

  it("takes a sharded migration's s and Π over the bins it shares, not its frozen own bin, and penalises by Σα", () => {
    // m0 can only grow into b1 and b3: Π = 200 MB, s = 10 + 10 MB, Σα = 2.
    expect(rawRate('m0')).toBeCloseTo(lx066Red(2 * PI, 0.2 * PI, 2), 6);
    expect(rawRate('m2')).toBeCloseTo(lx066Red(2 * PI, 0.25 * PI, 2), 6);
    expect(rawRate('m1')).toBeCloseTo(lx066Red(PI, 0.4 * PI, 1), 6);
    expect(rawRate('m3')).toBeCloseTo(lx066Red(PI, 0.2 * PI, 1), 6);
  });

  it('at 40 % of the shared bins the penalised rate is half the unpenalised one', () => {
    const s = (Math.LN2 / (1 + Math.LN2)) * 2 * PI;
    expect((lx066Red(2 * PI, s, 2) - EPSILON) / (lx066Red(2 * PI, s, 1) - EPSILON)).toBeCloseTo(0.5, 3);
  });

  it('keeps each guest at or below the owners of the bins it grows into', () => {
    const throttles = new Map(computeThrottles(lx066, fourBins, demandsFor(fourBins, { linkShare: 1e12 })).map((t) => [t.id, t.rate]));
    const owners = Math.min(rawRate('m1'), rawRate('m3'));
    expect(throttles.get('m1')).toBeCloseTo(rawRate('m1'), 6);
    expect(throttles.get('m3')).toBeCloseTo(rawRate('m3'), 6);
    expect(throttles.get('m0')).toBeCloseTo(Math.min(rawRate('m0'), owners), 6);
    expect(throttles.get('m2')).toBeCloseTo(Math.min(rawRate('m2'), owners), 6);
    // The clamp binds here: m1's fuller bin holds both guests below their own penalised rate.
    expect(throttles.get('m0')).toBeLessThan(rawRate('m0'));
  });
});

describe('computeThrottles: the rules every policy obeys', () => {
  const sequences = fc.tuple(capacityArb, commandsArb, fc.integer({ min: 0, max: 1e9 }));

  for (const policy of THROTTLE_POLICIES.values()) {
    it(`${policy.name}: ε ≤ γ ≤ max(ε, U/N), and a guest never outpaces the owner of a bin it sits in`, () => {
      fc.assert(
        fc.property(sequences, ([capacity, commands, share]) => {
          for (const { after } of run(capacity, commands)) {
            const throttles = computeThrottles(policy, after, demandsFor(after, { linkShare: share }));
            const rates = new Map(throttles.map((t) => [t.id, t.rate]));
            for (const { rate, view } of throttles) {
              expect(rate).toBeGreaterThanOrEqual(EPSILON);
              expect(rate).toBeLessThanOrEqual(Math.max(EPSILON, share));
              for (const holding of view.holdings.filter((h) => !h.frozen)) {
                expect(rate).toBeLessThanOrEqual(rates.get(holding.bin) ?? Infinity);
              }
            }
          }
        }),
      );
    });
  }

  it('lx066 equals min(red, U/N) exactly on a non-sharded migration', () => {
    const partition = observe(admit(admit(emptyPartition(2 * PI), 'a'), 'b'), [['a', 0.7 * PI]]);
    const [a, b] = computeThrottles(lx066, partition, demandsFor(partition));
    expect(a?.rate).toBe(Math.min(lx066Red(PI, 0.7 * PI, 1), SHARE));
    expect(b?.rate).toBe(SHARE);
  });

  it('ignores a frozen host when clamping: there is nothing left to compete for there', () => {
    const hostFrozen: Partition = { ...fourBins, bins: fourBins.bins.map((bin) => (bin.owner === 'm1' ? { ...bin, frozen: true } : bin)) };
    const rates = new Map(computeThrottles(lx066, hostFrozen, demandsFor(hostFrozen, { linkShare: 1e12 })).map((t) => [t.id, t.rate]));
    expect(rates.get('m1')).toBe(EPSILON);
    // m0 now grows into b3 alone: Π = 100 MB, s = 10 MB, clamped by m3 only.
    expect(rates.get('m0')).toBeCloseTo(Math.min(lx066Red(PI, 0.1 * PI, 2), rates.get('m3') ?? 0), 6);
    expect(rates.get('m0')).toBeGreaterThan(EPSILON);
  });

  it('names the unknown policy and the known ones', () => {
    expect(() => throttlePolicy('fastest')).toThrow(ValidationError);
    expect(() => throttlePolicy('fastest')).toThrow('Expected `policy` to be one of lx066, deadline, got `fastest`');
  });
});

describe('deadline: the physical bound', () => {
  it('lets the overlay just fill the planned room by the time the last byte crosses the link', () => {
    const partition = observe(admit(emptyPartition(PI), 'a'), [['a', 0.2 * PI]]);
    const remaining = 4 * PI;
    const [throttle] = computeThrottles(deadline, partition, demandsFor(partition, { remainingBytes: remaining }));
    const rate = throttle?.rate ?? 0;
    // Writes at γ grow the overlay and add to what must cross the link at U/N.
    const seconds = remaining / (SHARE - rate);
    expect((rate * seconds) / PI).toBeCloseTo(1 - RESERVE_FRACTION - 0.2, 9);
  });

  it('never plans on less than MIN_HORIZON_SECONDS, so one control period cannot overshoot', () => {
    const partition = observe(admit(emptyPartition(PI), 'a'), [['a', 0.5 * PI]]);
    const [throttle] = computeThrottles(deadline, partition, demandsFor(partition, { remainingBytes: 1 }));
    expect((throttle?.rate ?? 0) * MIN_HORIZON_SECONDS).toBeLessThanOrEqual((1 - RESERVE_FRACTION - 0.5) * PI);
  });

  it('plans on at least a few control periods when the period is long (a γ stands until the next tick)', () => {
    const partition = observe(admit(emptyPartition(PI), 'a'), [['a', 0.5 * PI]]);
    const [throttle] = computeThrottles(deadline, partition, demandsFor(partition, { remainingBytes: 1, linkShare: 0.1 * SHARE, periodSeconds: 60 }));
    const rate = throttle?.rate ?? 0;
    expect(HORIZON_PERIODS * 60).toBeGreaterThan(MIN_HORIZON_SECONDS);
    // Within one 60 s period the overlay must not outgrow the room; a 10 s horizon let it (1.09× here, up to 6×).
    expect(rate * 60).toBeLessThanOrEqual((1 - RESERVE_FRACTION - 0.5) * PI);
    expect(rate * HORIZON_PERIODS * 60).toBeLessThanOrEqual((1 - RESERVE_FRACTION - 0.5) * PI);
  });

  it('takes a unique fraction above 1 at its word: 16× growth per byte written allows 1/16 of the rate', () => {
    const partition = observe(admit(emptyPartition(PI), 'a'), [['a', 0.2 * PI]]);
    const rate = (uniqueFraction: number) => computeThrottles(deadline, partition, demandsFor(partition, { remainingBytes: 4 * PI, uniqueFraction }))[0]?.rate ?? 0;
    expect(rate(1)).toBeGreaterThan(16 * EPSILON);
    expect((16 * rate(16)) / rate(1)).toBeCloseTo(1, 9);
  });

  it('counts the shards a bin hosts as taken room, unlike lx066', () => {
    const host: Partition = {
      capacity: 2 * PI,
      bins: [
        { owner: 'a', size: PI, frozen: false, stack: [{ migration: 'a', bytes: 0 }, { migration: 'b', bytes: 0.9 * PI }] },
        { owner: 'b', size: PI, frozen: true, stack: [{ migration: 'b', bytes: PI }] },
      ],
      unplaced: [],
    };
    const demands = demandsFor(host, { remainingBytes: PI });
    const ours = computeThrottles(deadline, host, demands)[0]?.rate ?? 0;
    const paper = computeThrottles(lx066, host, demands)[0]?.rate ?? 0;
    // lx066 sees an empty bin (s = 0) and grants the whole link share.
    expect(paper).toBe(SHARE);
    expect(ours).toBeLessThan(0.1 * paper);
  });
});
