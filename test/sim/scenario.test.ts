/* eslint-disable @typescript-eslint/no-explicit-any -- the edits poke into raw scenario JSON on purpose, to break it */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { parseScenario } from '../../src/sim/scenario.js';
import { PUBLIC_SCENARIOS, loadScenario, rawScenario } from '../support/scenarios.js';

/** A copy of a public scenario with one edit applied to its JSON. */
function edited(edit: (raw: Record<string, any>) => void): unknown {
  const raw = structuredClone(rawScenario('slow-link-flap')) as Record<string, any>;
  edit(raw);
  return raw;
}

describe('scenario files', () => {
  it.each(PUBLIC_SCENARIOS)('parses the public scenario %s into bytes, bytes/s and seconds', (name) => {
    const scenario = loadScenario(name);
    expect(scenario.name).toBe(name);
    expect(scenario.migrations.length).toBeGreaterThan(0);
  });

  it('reads units as the format says: powers of 1000 and 1024, bits per second', () => {
    const scenario = loadScenario('slow-link-flap');
    expect(scenario.bufferSize).toBe(4 * 1024 ** 3);
    expect(scenario.link.bandwidth).toBe(25_000_000);
    expect(scenario.link.trace).toEqual([
      { at: 300, bandwidth: 6_250_000 },
      { at: 900, bandwidth: 25_000_000 },
    ]);
    expect(scenario.migrations[1]).toMatchObject({ start: 10, writeRate: 30e6, uniqueFraction: 0.5, sizeState: 2 * 1024 ** 3 });
  });

  it('defaults what the daemon does when a scenario says nothing, and reads it when it does', () => {
    expect(loadScenario('slow-link-flap').control).toMatchObject({ periodSeconds: 0.5, samplingLagSeconds: 0, hysteresis: 0.05, mirrorReadySeconds: 60 });
    expect(loadScenario('slow-link-flap').control.convergence.autoConverge).toBe(true);
    const scenario = parseScenario(
      edited((raw) => {
        raw.control = { periodSeconds: 1, samplingLagSeconds: 5, hysteresis: 0.1, assumedLinkRate: '1Gbit', mirrorReadySeconds: 30, convergence: { autoConverge: false, postcopy: true } };
        raw.migrations[0].workingSet = '2GiB';
      }),
    );
    expect(scenario.control).toMatchObject({ periodSeconds: 1, samplingLagSeconds: 5, hysteresis: 0.1, assumedLinkRate: 125e6, mirrorReadySeconds: 30 });
    expect(scenario.control.convergence).toMatchObject({ autoConverge: false, postcopy: true, cpuThrottleInitial: 20 });
    expect(scenario.migrations[0]?.workingSet).toBe(2 * 1024 ** 3);
    expect(scenario.migrations[1]?.workingSet).toBeUndefined();
  });

  const bad: ReadonlyArray<[string, (raw: Record<string, any>) => void, string]> = [
    ['a missing field', (raw) => delete raw.migrations[0].disk, 'Expected `migrations[0].disk` to be present (required field), got nothing'],
    ['an unknown unit', (raw) => (raw.buffer.size = '4XB'), 'Expected `buffer.size` to be a size such as `10GiB`'],
    ['a negative rate', (raw) => (raw.migrations[1].writeRate = '-30MB'), 'Expected `migrations[1].writeRate` to be a rate such as `80MB`'],
    ['a zero buffer', (raw) => (raw.buffer.size = '0GiB'), 'Expected `buffer.size` to be a positive size'],
    ['a fraction above 1', (raw) => (raw.migrations[0].uniqueFraction = 1.5), 'Expected `migrations[0].uniqueFraction` to be a number ≥ 0 and ≤ 1, got `1.5`'],
    ['a duplicate id', (raw) => (raw.migrations[1].id = 'a'), 'Expected `migrations[1].id` to be unique among migrations, got `a`'],
    ['a misspelt field', (raw) => (raw.migrations[0].writerate = '1MB'), 'Expected `migrations[0].writerate` to be absent (unknown field'],
    ['a bad trace step', (raw) => (raw.link.trace[0] = [300]), 'Expected `link.trace[0]` to be a pair [atSecond, bandwidth]'],
    ['no migrations', (raw) => (raw.migrations = []), 'Expected `migrations` to be an array of at least 1 item(s)'],
    ['a negative tick', (raw) => (raw.tickSeconds = -0.5), 'Expected `tickSeconds` to be a number > 0, got `-0.5`'],
    ['a negative sampling lag', (raw) => (raw.control = { samplingLagSeconds: -1 }), 'Expected `control.samplingLagSeconds` to be a number ≥ 0, got `-1`'],
    ['a convergence flag that is not a boolean', (raw) => (raw.control = { convergence: { autoConverge: 'yes' } }), 'Expected `control.convergence.autoConverge` to be `true` or `false`, got `yes`'],
    ['an unknown control field', (raw) => (raw.control = { lag: 1 }), 'Expected `control.lag` to be absent (unknown field'],
  ];

  it.each(bad)('rejects %s with one error naming the field', (_, edit, message) => {
    const input = edited(edit);
    expect(() => parseScenario(input)).toThrow(ValidationError);
    expect(() => parseScenario(input)).toThrow(message);
  });

  it('rejects a document that is not an object', () => {
    expect(() => parseScenario([])).toThrow('Expected `document` to be an object, got an empty array');
  });
});
