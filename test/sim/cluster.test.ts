import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseClusterScenario, type ClusterScenario } from '../../src/sim/cluster-scenario.js';
import { simulateCluster } from '../../src/sim/cluster.js';
import type { ClusterResult } from '../../src/sim/cluster-report.js';
import { simPolicy } from '../../src/sim/policies.js';
import { fits, STRATEGIES, strategyNamed, type Decision, type DrainNow, type Strategy } from '../../src/sim/strategies.js';
import { rawCluster } from '../support/scenarios.js';

const DEADLINE = simPolicy('deadline');

const PROFILES = {
  db: { ram: '32GiB', disk: '200GiB', extraDisks: 1, writeRate: '30MB', uniqueFraction: 0.5, ramDirtyRate: '200MB', workingSet: '40GiB' },
  app: { ram: '8GiB', disk: '40GiB', writeRate: '5MB', uniqueFraction: 0.5, ramDirtyRate: '50MB' },
  ci: { ram: '4GiB', disk: '30GiB', writeRate: '60MB', uniqueFraction: 0.9, ramDirtyRate: '100MB' },
};

interface Shape {
  readonly source: Record<string, number>;
  readonly targets: readonly { memoryGiB: number; maxIncoming: number; nicGbit: number; vms: Record<string, number> }[];
  readonly bufferGiB?: number;
  readonly nicGbit?: number;
  readonly cpus?: number;
  readonly rolling?: boolean;
}

function small(shape: Shape): ClusterScenario {
  return parseClusterScenario({
    name: 'small',
    maxSeconds: 40_000,
    migrationRate: '5Gbit',
    profiles: PROFILES,
    hosts: [
      { name: 'src', cpus: shape.cpus ?? 64, memory: '512GiB', disk: '8TB', nic: `${shape.nicGbit ?? 25}Gbit`, buffer: `${shape.bufferGiB ?? 32}GiB`, maxOutgoing: 8, maxIncoming: 4, vms: shape.source },
      ...shape.targets.map((t, index) => ({ name: `t${index}`, cpus: 32, memory: `${t.memoryGiB}GiB`, disk: '8TB', nic: `${t.nicGbit}Gbit`, buffer: '10GiB', maxIncoming: t.maxIncoming, vms: t.vms })),
    ],
    maintenance: shape.rolling ? { kind: 'rolling' } : { kind: 'drain', hosts: ['src-01'] },
  });
}

/** `strategy`, with `check` run on every start it decides, against the cluster it decided on. */
function watched(strategy: Strategy, check: (decision: Extract<Decision, { kind: 'start' }>, now: DrainNow) => void): Strategy {
  return {
    ...strategy,
    drain() {
      const inner = strategy.drain();
      return {
        next(now) {
          const decision = inner.next(now);
          if (decision?.kind === 'start') check(decision, now);
          return decision;
        },
      };
    },
  };
}

/** Every VM of the drained host is moved once or left behind with a reason, never both. */
function accounted(scenario: ClusterScenario, result: ClusterResult): void {
  for (const vm of scenario.vms.filter((v) => v.host === 'src-01')) {
    const moved = result.migrations.filter((m) => m.vm === vm.id && m.status === 'completed').length;
    const left = result.leftBehind.filter((l) => l.vm === vm.id);
    expect(moved + left.length).toBe(1);
    for (const l of left) expect(l.reason).not.toBe('');
  }
}

const shapeArb = fc.record({
  source: fc.record({ db: fc.integer({ min: 0, max: 3 }), app: fc.integer({ min: 0, max: 6 }), ci: fc.integer({ min: 0, max: 3 }) }),
  targets: fc.array(
    fc.record({
      memoryGiB: fc.integer({ min: 24, max: 256 }),
      maxIncoming: fc.integer({ min: 1, max: 3 }),
      nicGbit: fc.constantFrom(1, 10, 25),
      vms: fc.record({ app: fc.integer({ min: 0, max: 2 }) }),
    }),
    { minLength: 1, maxLength: 4 },
  ),
  bufferGiB: fc.integer({ min: 2, max: 64 }),
}).filter((shape) => shape.targets.every((t) => t.memoryGiB >= t.vms.app * 8));

describe('cluster evacuation', () => {
  it("cowbuf never starts a migration a target has no slot or no room for, and accounts for every VM (property)", () => {
    fc.assert(
      fc.property(shapeArb, (shape) => {
        const scenario = small(shape);
        const cowbuf = watched(strategyNamed('cowbuf'), (decision, now) => {
          const target = now.cluster.hosts.find((host) => host.spec.name === decision.target);
          expect(target && target.incoming.length < target.spec.maxIncoming && fits(decision.vm, target)).toBe(true);
        });
        const result = simulateCluster(scenario, cowbuf, DEADLINE);
        accounted(scenario, result);
        expect(result.migrations.filter((m) => m.status === 'failed' && /^the target is out/.test(m.reason ?? ''))).toEqual([]);
        if (result.leftBehind.length === 0) expect(result.makespanSeconds).toBeGreaterThanOrEqual(result.floorSeconds);
      }),
      { numRuns: 20 },
    );
  });

  it("keeps the anchors' own limits: KubeVirt 2 out per node, VMware 2 per host at either end, Incus NumCPU/16", () => {
    const scenario = small({ source: { app: 8 }, targets: [0, 1, 2].map(() => ({ memoryGiB: 256, maxIncoming: 4, nicGbit: 25, vms: {} })), cpus: 48 });
    const limits: Record<string, (decision: Extract<Decision, { kind: 'start' }>, now: DrainNow) => boolean> = {
      kubevirt: (_, now) => now.running.length < 2,
      vmware: (d, now) => now.source.outgoing < 2 && (now.cluster.hosts.find((h) => h.spec.name === d.target)?.incoming.length ?? 9) < 2,
      incus: (_, now) => now.running.length < 3,
    };
    for (const [name, ok] of Object.entries(limits)) {
      const result = simulateCluster(scenario, watched(strategyNamed(name), (d, now) => expect(ok(d, now)).toBe(true)), DEADLINE);
      expect(result.completed).toBe(8);
    }
  });

  it('Incus places on the member with the fewest instances without checking its memory, and stops at the first failure', () => {
    // t0 is empty but has room for two of the apps only; t1 runs two guests and has room for all.
    const scenario = small({ source: { app: 3, db: 1 }, targets: [{ memoryGiB: 24, maxIncoming: 4, nicGbit: 10, vms: {} }, { memoryGiB: 256, maxIncoming: 4, nicGbit: 10, vms: { app: 2 } }] });
    const result = simulateCluster(scenario, strategyNamed('incus'), DEADLINE);
    expect(result.migrations.map((m) => [m.vm, m.to, m.status, m.reason]).sort()).toEqual([
      ['src-01/app-1', 't0-01', 'completed', undefined],
      ['src-01/app-2', 't0-01', 'completed', undefined],
      ['src-01/app-3', 't0-01', 'failed', 'the target is out of memory'],
    ]);
    expect(result.leftBehind).toEqual([
      { vm: 'src-01/db-1', host: 'src-01', why: 'refused', reason: 'the evacuation stopped at its first failure' },
      { vm: 'src-01/app-3', host: 'src-01', why: 'failed', reason: 'its migration failed' },
    ]);
    const cowbuf = simulateCluster(scenario, strategyNamed('cowbuf'), DEADLINE);
    expect(cowbuf.completed).toBe(4);
    expect(cowbuf.migrations.find((m) => m.vm === 'src-01/db-1')?.to).toBe('t1-01');
  });

  it('Incus moves a VM with extra local disks cold: its whole migration is downtime', () => {
    const scenario = small({ source: { db: 1 }, targets: [{ memoryGiB: 256, maxIncoming: 4, nicGbit: 25, vms: {} }] });
    const result = simulateCluster(scenario, strategyNamed('incus'), DEADLINE);
    expect(result.cold).toBe(1);
    expect(result.coldDowntimeSeconds).toBe(result.migrations[0]?.seconds);
    // 200 GiB at one migration's 5 Gbit, and nothing else: no RAM, no overlay.
    expect(result.coldDowntimeSeconds).toBeCloseTo((200 * 1024 ** 3) / 625e6, -1);
    expect(simulateCluster(scenario, strategyNamed('cowbuf'), DEADLINE).cold).toBe(0);
  });

  it('runs fewer migrations at once from a smaller buffer or a slower uplink', () => {
    const peak = (bufferGiB: number, nicGbit: number) =>
      simulateCluster(small({ source: { ci: 8 }, targets: [0, 1, 2, 3, 4, 5, 6, 7].map(() => ({ memoryGiB: 256, maxIncoming: 4, nicGbit: 25, vms: {} })), bufferGiB, nicGbit }), strategyNamed('cowbuf'), DEADLINE).peakOutgoing;
    // Five fill 25 Gbit at 5 Gbit each; each guest writes ~3 GB of overlay in its 60 s at that share.
    expect(peak(64, 25)).toBe(5);
    expect(peak(8, 25)).toBe(2);
    expect(peak(64, 10)).toBe(2);
  });

  it('visits every host of a rolling maintenance in turn', () => {
    const scenario = small({ source: { app: 2 }, targets: [0, 1].map(() => ({ memoryGiB: 128, maxIncoming: 2, nicGbit: 10, vms: { app: 2 } })), rolling: true });
    for (const strategy of STRATEGIES) {
      const result = simulateCluster(scenario, strategy, DEADLINE);
      const froms = [...new Set(result.migrations.map((m) => m.from))];
      expect(froms).toEqual(['src-01', 't0-01', 't1-01']);
      expect(result.leftBehind).toEqual([]);
    }
  });

  it('is deterministic', () => {
    const scenario = small({ source: { db: 1, app: 4, ci: 2 }, targets: [0, 1, 2].map(() => ({ memoryGiB: 128, maxIncoming: 2, nicGbit: 10, vms: {} })) });
    for (const strategy of STRATEGIES) {
      expect(JSON.stringify(simulateCluster(scenario, strategy, DEADLINE))).toBe(JSON.stringify(simulateCluster(scenario, strategy, DEADLINE)));
    }
  });

  it('drains one host of the 100-host cluster under every rule in under a minute', () => {
    const scenario = parseClusterScenario(rawCluster('drain-one-of-100'));
    const began = performance.now();
    const results = STRATEGIES.map((strategy) => simulateCluster(scenario, strategy, DEADLINE));
    expect(performance.now() - began).toBeLessThan(60_000);
    expect(results.find((r) => r.strategy === 'cowbuf')).toMatchObject({ completed: 36, failed: 0, leftBehind: [] });
  });
});
