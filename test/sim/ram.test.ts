import { describe, expect, it } from 'vitest';
import { simPolicy } from '../../src/sim/policies.js';
import { parseScenario } from '../../src/sim/scenario.js';
import { simulate } from '../../src/sim/simulate.js';

/** One guest with a small disk and no disk writes: its time is base shipping plus the RAM phase. */
function busyRam(ramDirtyRate: string, autoConverge = true) {
  return parseScenario({
    name: 'busy-ram',
    maxSeconds: 2000,
    buffer: { size: '4GiB' },
    link: { bandwidth: '1Gbit' },
    control: { convergence: { autoConverge } },
    migrations: [{ id: 'vm', start: 0, disk: '1GiB', ram: '4GiB', writeRate: '0MB', uniqueFraction: 1, ramDirtyRate }],
  });
}

describe('RAM pre-copy re-dirties from its first page on', () => {
  const policy = simPolicy('deadline');
  const idle = simulate(busyRam('0MB'), policy).migrations[0];
  const busy = simulate(busyRam('200MB'), policy).migrations[0];
  const stuck = simulate(busyRam('200MB', false), policy).migrations[0];

  it('a guest that dirties nothing needs one pass: disk + RAM at the link rate', () => {
    expect(idle?.status).toBe('completed');
    expect(idle?.seconds).toBeCloseTo((5 * 1024 ** 3) / 125e6, -1);
  });

  it('dirtying faster than the link share lengthens the RAM phase, and auto-converge ends it', () => {
    expect(busy?.status).toBe('completed');
    const ramPhase = (busy?.seconds ?? 0) - 1024 ** 3 / 125e6;
    const onePass = (4 * 1024 ** 3) / 125e6;
    expect(ramPhase).toBeGreaterThan(1.3 * onePass);
  });

  it('without auto-converge the same guest never converges and the engine aborts at its completion timeout', () => {
    expect(stuck?.status).toBe('failed');
    expect(stuck?.reason).toMatch(/RAM migration did not converge: not complete after 600 s/);
  });
});

describe('what the calibration against the test bed added to the model', () => {
  const policy = simPolicy('deadline');
  const guest = (extra: Record<string, unknown>, control: Record<string, unknown> = {}) =>
    simulate(
      parseScenario({
        name: 'calibration-model',
        maxSeconds: 2000,
        buffer: { size: '4GiB' },
        link: { bandwidth: '1Gbit' },
        control,
        migrations: [{ id: 'vm', start: 0, disk: '1GiB', ram: '4GiB', writeRate: '0MB', uniqueFraction: 1, ramDirtyRate: '0MB', ...extra }],
      }),
      policy,
    );
  const plain = guest({});

  it('zero pages cost the first pass nothing: a guest holding 1 GiB of its 4 GiB sends about 1 GiB', () => {
    expect(guest({ ramResident: '1GiB' }).makespanSeconds).toBeCloseTo((2 * 1024 ** 3) / 125e6, -1);
  });

  it('a small RAM working set bounds what is re-dirtied: the RAM phase ends much sooner than with the same rate over all of RAM', () => {
    const everywhere = guest({ ramDirtyRate: '100MB' }).makespanSeconds;
    const small = guest({ ramDirtyRate: '100MB', ramWorkingSet: '16MiB' }).makespanSeconds;
    expect(small).toBeLessThan(plain.makespanSeconds + 2);
    expect(everywhere).toBeGreaterThan(plain.makespanSeconds + 10);
  });

  it('sequential writes over a working set keep every write new until the set is covered', () => {
    const writes = { writeRate: '10MB', workingSet: '2GiB' };
    const random = guest({ ...writes }).migrations[0]?.peakCowBytes ?? 0;
    const sequential = guest({ ...writes, writePattern: 'sequential' }).migrations[0]?.peakCowBytes ?? 0;
    expect(sequential).toBeGreaterThan(random);
    expect(() => guest({ writePattern: 'zigzag' })).toThrow(/writePattern/);
  });

  it("the target's start holds the mirror back by targetStartSeconds", () => {
    expect(guest({}, { targetStartSeconds: 5 }).makespanSeconds).toBeCloseTo(plain.makespanSeconds + 5, 0);
  });
});
