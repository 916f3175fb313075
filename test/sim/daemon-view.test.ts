import { describe, expect, it } from 'vitest';
import { DaemonView, type Reading } from '../../src/sim/daemon-view.js';
import { simPolicy } from '../../src/sim/policies.js';
import type { TraceLine } from '../../src/sim/report.js';
import { parseScenario, type ScenarioControl } from '../../src/sim/scenario.js';
import { simulate } from '../../src/sim/simulate.js';

const MB = 1e6;

function control(overrides: Partial<ScenarioControl> = {}): ScenarioControl {
  return { ...parseScenario({ name: 'x', buffer: { size: '1GB' }, link: { bandwidth: '1Gbit' }, migrations: [{ id: 'a', start: 0, disk: '1GB', ram: '1GB', writeRate: '1MB', uniqueFraction: 1, ramDirtyRate: '0MB' }] }).control, ...overrides };
}

/** A guest writing 20 MB/s of which 40 % grows the overlay, on a link carrying 100 MB/s. */
function reading(t: number): Reading {
  return { t, linkBytes: 100 * MB * t, saturated: true, migrations: new Map([['a', { cow: Math.round(8 * MB * t), written: Math.round(20 * MB * t), remaining: 1e9, phase: 'mirror' }]]) };
}

describe('what the simulated daemon sees', () => {
  it('observes overlays as old as the sampling lag says', () => {
    const view = new DaemonView(1e9, simPolicy('deadline'), control({ samplingLagSeconds: 2 }));
    view.admit('a', 2e9, new Map());
    for (let t = 0.5; t <= 10; t += 0.5) {
      view.record(reading(t));
      view.tick(t, new Map([['a', 'base']]));
      const cow = view.partition.bins[0]?.stack[0]?.bytes ?? 0;
      expect(cow).toBe(t - 2 >= 0.5 ? Math.round(8 * MB * (t - 2)) : 0);
    }
  });

  it('learns the unique fraction and the link rate through the daemon estimators, starting from the safe guesses', () => {
    const view = new DaemonView(1e9, simPolicy('deadline'), control({ samplingLagSeconds: 0 }));
    view.admit('a', 2e9, new Map());
    view.record(reading(0.5));
    view.tick(0.5, new Map());
    expect(view.decision.demands.get('a')).toMatchObject({ uniqueFraction: 1, linkShare: 12_500_000, linkAssumed: true });
    for (let t = 1; t <= 20; t += 0.5) {
      view.record(reading(t));
      view.tick(t, new Map());
    }
    expect(view.decision.demands.get('a')?.uniqueFraction).toBeCloseTo(0.4, 2);
    expect(view.decision.demands.get('a')?.linkShare).toBeCloseTo(100 * MB, -3);
    expect(view.decision.demands.get('a')?.linkAssumed).toBeUndefined();
  });

  it('tells the policy how long RAM pre-copy still needs, from RAM-phase samples as old as the lag says', () => {
    const view = new DaemonView(1e9, simPolicy('deadline'), control({ samplingLagSeconds: 2 }));
    view.admit('a', 2e9, new Map());
    // The mirror's samples (mirror backlog + RAM) must not count as RAM falling once RAM begins.
    const sample = (t: number, remaining: number, phase: 'mirror' | 'ram'): Reading => ({ t, linkBytes: 100 * MB * t, saturated: true, migrations: new Map([['a', { cow: 0, written: 0, remaining, phase }]]) });
    const remainingAt = (t: number) => 1e9 - 10 * MB * (t - 10);
    for (let t = 0.5; t <= 10; t += 0.5) view.record(sample(t, 3e9, 'mirror'));
    for (let t = 10.5; t <= 30; t += 0.5) {
      view.record(sample(t, remainingAt(t), 'ram'));
      view.tick(t, new Map([['a', 'ram']]));
    }
    // At 30 s the loop has seen the sample of 28 s: 0.82 GB left, falling 10 MB/s.
    expect(view.decision.demands.get('a')?.ramSeconds).toBeCloseTo(remainingAt(28) / (10 * MB), 6);
    view.tick(30.5, new Map([['a', 'mirror']]));
    expect(view.decision.demands.get('a')?.ramSeconds).toBeUndefined();
  });

  it('puts γ into effect one tick later, and only when it moved beyond the hysteresis', () => {
    const view = new DaemonView(1e9, simPolicy('lx066'), control({ hysteresis: 0.05 }));
    view.admit('a', 2e9, new Map());
    expect(view.throttleOf('a')).toBe(Infinity);
    view.tick(0.5, new Map());
    const decided = view.decision.throttles.get('a') ?? 0;
    expect(view.throttleOf('a')).toBe(Infinity);
    view.applyPending(new Map());
    expect(view.throttleOf('a')).toBe(decided);
    view.tick(1, new Map());
    view.applyPending(new Map([['a', 1.04]]));
    expect(view.throttleOf('a')).toBe(decided);
    view.tick(1.5, new Map());
    view.applyPending(new Map([['a', 0.25]]));
    expect(view.throttleOf('a')).toBe(0.25 * decided);
  });

  it('in a whole run, γ in effect is always the one decided a tick before, or held by the hysteresis', () => {
    const scenario = parseScenario({
      name: 'late',
      buffer: { size: '4GiB' },
      link: { bandwidth: '1Gbit', rampSeconds: 2 },
      migrations: [{ id: 'a', start: 0, disk: '20GiB', ram: '2GiB', writeRate: '80MB', uniqueFraction: 0.6, ramDirtyRate: '20MB' }],
    });
    const lines: TraceLine[] = [];
    simulate(scenario, simPolicy('deadline'), { onTick: (line) => lines.push(line) });
    let held = 0;
    for (let i = 1; i < lines.length; i += 1) {
      const [before, now] = [lines[i - 1]?.migrations[0], lines[i]?.migrations[0]];
      if (!before || !now || before.phase === 'mirror' || now.phase === 'mirror') continue;
      if (now.applied === before.throttle) continue;
      expect(now.applied).toBe(before.applied);
      expect(Math.abs((before.throttle ?? 0) - (before.applied ?? 0))).toBeLessThanOrEqual(0.05 * (before.applied ?? 0));
      held += 1;
    }
    expect(held).toBeGreaterThan(10);
  });
});
