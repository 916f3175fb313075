import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { maxMinRates, type Flow } from '../../src/evacuation/shares.js';

const capacities = (entries: Record<string, number>) => new Map(Object.entries(entries));
const flow = (uses: string[], cap = Infinity): Flow => ({ uses, cap });

describe('max-min shares', () => {
  it.each([
    ['one link shared equally', { up: 90 }, [flow(['up']), flow(['up']), flow(['up'])], [30, 30, 30]],
    ['what a capped flow leaves goes to the others', { up: 90 }, [flow(['up'], 10), flow(['up']), flow(['up'])], [10, 40, 40]],
    ['a slow target link bounds its flow, the rest of the uplink goes to the other', { up: 100, a: 20, b: 500 }, [flow(['up', 'a']), flow(['up', 'b'])], [20, 80]],
    ['two flows into one target split it', { up: 100, a: 30 }, [flow(['up', 'a']), flow(['up', 'a']), flow(['up'])], [15, 15, 70]],
    ['a zero cap gets nothing', { up: 100 }, [flow(['up'], 0), flow(['up'])], [0, 100]],
    ['no capacity known: unbounded', {}, [flow(['x'])], [Infinity]],
  ])('%s', (_, caps, flows, expected) => {
    const rates = maxMinRates(capacities(caps), flows);
    rates.forEach((rate, index) => expect(rate).toBeCloseTo(expected[index] as number, 9));
  });

  it('fills every capacity a flow could still use, never beyond it (property)', () => {
    const arb = fc.record({
      caps: fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 5 }),
      flows: fc.array(fc.record({ uses: fc.uniqueArray(fc.nat(4), { minLength: 1, maxLength: 3 }), cap: fc.option(fc.integer({ min: 1, max: 5000 }), { nil: undefined }) }), { minLength: 1, maxLength: 12 }),
    });
    fc.assert(
      fc.property(arb, ({ caps, flows }) => {
        const names = caps.map((_, index) => `c${index}`);
        const given = flows.map((f) => flow(f.uses.map((use) => names[use % names.length] as string), f.cap ?? 2 * Math.max(...caps)));
        const unique = given.map((f) => ({ ...f, uses: [...new Set(f.uses)] }));
        const rates = maxMinRates(new Map(names.map((name, index) => [name, caps[index] as number])), unique);
        const load = (name: string) => unique.reduce((sum, f, index) => (f.uses.includes(name) ? sum + (rates[index] as number) : sum), 0);
        names.forEach((name, index) => expect(load(name)).toBeLessThanOrEqual((caps[index] as number) * (1 + 1e-9)));
        unique.forEach((f, index) => {
          const rate = rates[index] as number;
          expect(rate).toBeLessThanOrEqual(f.cap * (1 + 1e-9));
          // Max-min: a flow below its cap crosses a full capacity on which no flow gets more.
          if (rate < f.cap * (1 - 1e-6)) {
            const bottleneck = f.uses.some((name) => {
              const full = load(name) >= (caps[names.indexOf(name)] as number) * (1 - 1e-6);
              return full && unique.every((other, j) => !other.uses.includes(name) || (rates[j] as number) <= rate * (1 + 1e-6));
            });
            expect(bottleneck).toBe(true);
          }
        });
      }),
    );
  });
});
