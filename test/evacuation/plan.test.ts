import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import type { Headroom } from '../../src/evacuation/headroom.js';
import { nextStarts, planEvacuation, type EvacuationPlan, type EvacuationVm, type Placement, type PlanOptions } from '../../src/evacuation/plan.js';
import { MEMORY_MARGIN } from '../../src/migration/preflight.js';

const GiB = 1024 ** 3;
const MB = 1e6;

interface HostShape {
  readonly name: string;
  readonly memory?: number;
  readonly disk?: number;
  readonly incoming?: { used: number; limit: number };
  readonly buffer?: number;
  readonly outgoingLimit?: number;
  /** Measured rate from the source to each peer. */
  readonly links?: Record<string, number>;
}

function headroom(shape: HostShape): Headroom {
  const size = shape.buffer ?? 10 * GiB;
  return {
    host: shape.name,
    buffer: { size, used: 0, committed: 0, free: size },
    outgoing: { used: 0, limit: shape.outgoingLimit ?? 8 },
    incoming: shape.incoming ?? { used: 0, limit: 4 },
    memoryFree: shape.memory ?? 256 * GiB,
    diskFree: shape.disk ?? 4000 * GiB,
    links: Object.entries(shape.links ?? {}).map(([peer, rate]) => ({ peer, rate, phase: 'steady' as const })),
  };
}

function vm(name: string, memoryGiB: number, diskGiB: number, writeMB = 1): EvacuationVm {
  return { name, memoryBytes: memoryGiB * GiB, diskBytes: diskGiB * GiB, writeRate: writeMB * MB };
}

const targets = (count: number, shape: Omit<HostShape, 'name'> = {}) => Array.from({ length: count }, (_, index) => headroom({ name: `t${index}`, ...shape }));
const rates = (count: number, rate: number) => Object.fromEntries(Array.from({ length: count }, (_, index) => [`t${index}`, rate]));
const OPTIONS: PlanOptions = { uplink: 1250 * MB, minBinBytes: 64 * 1024 ** 2, assumedLinkRate: 12.5 * MB };

/** Drives a plan as the daemon would: start what nextStarts says, end one (the `pick`-th running) at a time. */
function drive(plan: EvacuationPlan, size: number, pick: (running: number) => number, onStart: (running: readonly string[]) => void): readonly string[] {
  const running: string[] = [];
  const ended: string[] = [];
  for (;;) {
    const { start } = nextStarts(plan, { running: running.map((name) => ({ vm: name, cowBytes: 0, remainingBytes: GiB })), ended, buffer: { size, free: size - running.length * plan.minBinBytes } });
    running.push(...start.map((placement) => placement.vm.name));
    onStart(running);
    if (running.length === 0) return ended;
    ended.push(...running.splice(pick(running.length) % running.length, 1));
  }
}

describe('placement', () => {
  it('spreads the batch over the targets that would finish soonest, longest first', () => {
    const source = headroom({ name: 'src', links: { fast: 1000 * MB, slow: 100 * MB } });
    const plan = planEvacuation(source, [vm('small', 2, 10), vm('big', 16, 200), vm('mid', 8, 50)], [headroom({ name: 'fast' }), headroom({ name: 'slow' }), source], OPTIONS);
    expect(plan.placements.map((p) => `${p.vm.name}→${p.target}`)).toEqual(['big→fast', 'mid→fast', 'small→slow']);
    expect(plan.targets.map((t) => t.name)).toEqual(['fast', 'slow']);
  });

  it('gives a never-measured peer the assumed rate, and prefers a target with a free incoming slot', () => {
    const plan = planEvacuation(headroom({ name: 'src', links: { busy: 1000 * MB } }), [vm('a', 1, 10)], [headroom({ name: 'busy', incoming: { used: 2, limit: 2 } }), headroom({ name: 'idle' })], OPTIONS);
    expect(plan.targets.find((t) => t.name === 'idle')?.rate).toBe(12.5 * MB);
    expect(plan.placements[0]?.target).toBe('idle');
  });

  it.each<[string, Headroom[], string, string]>([
    ['no-targets', [], 'no-targets', 'vm: no target to move to'],
    ['no-slots', [headroom({ name: 't', incoming: { used: 0, limit: 0 } })], 'no-slots', 'vm: no target takes incoming migrations (every incoming limit is 0)'],
    ['memory', [headroom({ name: 't1', memory: 8 * GiB }), headroom({ name: 't2', memory: 12 * GiB })], 'memory', "vm: needs 16.1 GiB of memory (its 16.0 GiB and QEMU's 64.0 MiB); the most a target has left is 12.0 GiB (t2)"],
    ['disk', [headroom({ name: 't1', memory: 8 * GiB }), headroom({ name: 't2', disk: 50 * GiB })], 'disk', 'vm: needs 100.0 GiB of disk; the most a target with its memory has left is 50.0 GiB (t2)'],
  ])('reports a VM no target can take: %s', (_, candidates, reason, message) => {
    const plan = planEvacuation(headroom({ name: 'src' }), [vm('vm', 16, 100)], candidates, OPTIONS);
    expect(plan.placements).toEqual([]);
    expect(plan.unplaced).toEqual([{ vm: vm('vm', 16, 100), reason, message }]);
  });

  it('counts the room earlier placements took, and the rest still go', () => {
    const plan = planEvacuation(headroom({ name: 'src' }), [vm('a', 10, 10), vm('b', 10, 10), vm('c', 1, 1)], [headroom({ name: 't', memory: 10 * GiB + 2 * MEMORY_MARGIN + GiB })], OPTIONS);
    expect(plan.placements.map((p) => p.vm.name)).toEqual(['a', 'c']);
    expect(plan.unplaced.map((u) => [u.vm.name, u.reason])).toEqual([['b', 'memory']]);
  });
});

describe('concurrency', () => {
  it.each<[string, Partial<PlanOptions>, HostShape, Omit<HostShape, 'name'>, number, string]>([
    // Targets at 100 MB/s each: the 13th still adds 50 MB/s to a 1250 MB/s uplink, a 14th nothing.
    ['the link: as many as fill the uplink', {}, { name: 'src', links: rates(16, 100 * MB), buffer: 100 * GiB, outgoingLimit: 32 }, {}, 13, 'link'],
    ['a slower uplink: fewer', { uplink: 400 * MB }, { name: 'src', links: rates(16, 100 * MB), buffer: 100 * GiB }, {}, 4, 'link'],
    ['the outgoing limit', {}, { name: 'src', links: rates(16, 100 * MB), outgoingLimit: 3 }, {}, 3, 'outgoing'],
    ["the targets' incoming slots", {}, { name: 'src', links: rates(16, 100 * MB) }, { incoming: { used: 1, limit: 1 } }, 0, 'target-slots'],
    // Each guest writes 5 MB/s for 20 GiB ÷ 100 MB/s ≈ 215 s: 1.07 GB of overlay, 3 bins of 3.5 GiB.
    ['a small buffer', {}, { name: 'src', links: rates(16, 100 * MB), buffer: 3.5 * GiB }, {}, 3, 'buffer'],
  ])('is bound by %s', (_, options, source, shape, initial, boundBy) => {
    const vms = Array.from({ length: 16 }, (_, index) => vm(`vm${String(index).padStart(2, '0')}`, 4, 16, 5));
    const plan = planEvacuation(headroom(source), vms, targets(16, shape), { ...OPTIONS, ...options });
    expect(plan.concurrency).toEqual({ initial, boundBy });
  });

  it('lets a guest that writes faster than its share would be move alone', () => {
    // Two share the 1250 MB/s uplink at 625 MB/s each.
    const source = headroom({ name: 'src', links: rates(2, 1000 * MB), buffer: 1000 * GiB });
    const together = planEvacuation(source, [vm('busy', 4, 16, 600), vm('calm', 4, 10, 1)], targets(2), OPTIONS);
    expect(together.concurrency.initial).toBe(2);
    const alone = planEvacuation(source, [vm('busy', 4, 16, 700), vm('calm', 4, 10, 1)], targets(2), OPTIONS);
    expect(alone.concurrency).toEqual({ initial: 1, boundBy: 'link' });
  });

  it("counts a flight whose link stalled as no share of the links, but as one of its target's slots", () => {
    // The uplink carries one 100 MB/s link: a second flight adds nothing while the first moves.
    const source = headroom({ name: 'src', links: rates(2, 100 * MB) });
    const plan = planEvacuation(source, ['a', 'b', 'c'].map((name) => vm(name, 4, 16)), targets(2, { incoming: { used: 0, limit: 1 } }), { ...OPTIONS, uplink: 100 * MB });
    const [first, ...rest] = plan.placements as [Placement, ...Placement[]];
    const other = rest.find((placement) => placement.target !== first.target) as Placement;
    const state = (stalled: boolean) => ({ running: [{ vm: first.vm.name, cowBytes: 0, remainingBytes: 20 * GiB, stalled }], ended: [], buffer: { size: 10 * GiB, free: 9 * GiB } });
    expect(nextStarts(plan, state(false))).toEqual({ start: [], boundBy: 'link' });
    expect(nextStarts(plan, state(true))).toEqual({ start: [other], boundBy: 'target-slots' });
  });

  it('starts nothing more onto a target whose link stalled, however many slots it has', () => {
    const source = headroom({ name: 'src', links: rates(2, 100 * MB) });
    const plan = planEvacuation(source, ['a', 'b', 'c', 'd'].map((name) => vm(name, 4, 16)), targets(2, { incoming: { used: 0, limit: 4 } }), { ...OPTIONS, uplink: 200 * MB });
    const [first, ...rest] = plan.placements as [Placement, ...Placement[]];
    const state = { running: [{ vm: first.vm.name, cowBytes: 0, remainingBytes: 20 * GiB, stalled: true }], ended: [], buffer: { size: 10 * GiB, free: 9 * GiB } };
    const started = nextStarts(plan, state).start;
    expect(started.length).toBeGreaterThan(0);
    expect(started.filter((placement) => placement.target === first.target)).toEqual([]);
    expect(rest.some((placement) => placement.target === first.target)).toBe(true);
  });

  it('still fits the overlay a stalled flight holds into its bin after the re-cut', () => {
    const source = headroom({ name: 'src', links: rates(2, 100 * MB) });
    const plan = planEvacuation(source, [vm('a', 4, 16), vm('b', 4, 16)], targets(2), OPTIONS);
    const [first, second] = plan.placements as [Placement, Placement];
    const state = (cowBytes: number) => ({ running: [{ vm: first.vm.name, cowBytes, remainingBytes: 20 * GiB, stalled: true }], ended: [], buffer: { size: 10 * GiB, free: 10 * GiB - cowBytes } });
    expect(nextStarts(plan, state(4 * GiB)).start).toEqual([second]);
    expect(nextStarts(plan, state(6 * GiB))).toEqual({ start: [], boundBy: 'buffer' });
  });

  it('starts the rest as migrations end, each once, and none while the batch is full', () => {
    const vms = Array.from({ length: 10 }, (_, index) => vm(`vm${index}`, 4, 16, 5));
    const plan = planEvacuation(headroom({ name: 'src', links: rates(10, 100 * MB), outgoingLimit: 3 }), vms, targets(10), OPTIONS);
    const started: string[] = [];
    const ended = drive(plan, 10 * GiB, () => 0, (running) => {
      expect(running.length).toBeLessThanOrEqual(3);
      for (const name of running) if (!started.includes(name)) started.push(name);
    });
    expect([...ended].sort()).toEqual(vms.map((v) => v.name).sort());
    expect(started).toEqual(plan.placements.map((p) => p.vm.name));
  });

  it('refuses options that are not positive rates and sizes', () => {
    expect(() => planEvacuation(headroom({ name: 'src' }), [], [], { ...OPTIONS, uplink: 0 })).toThrow('Expected `uplink` to be a number > 0, got `0`');
    expect(() => planEvacuation(headroom({ name: 'src' }), [], [], { ...OPTIONS, minShare: Number.NaN })).toThrow(ValidationError);
  });

  it('refuses a running VM the plan does not know', () => {
    const plan = planEvacuation(headroom({ name: 'src' }), [vm('a', 1, 1)], targets(1), OPTIONS);
    expect(() => nextStarts(plan, { running: [{ vm: 'ghost', cowBytes: 0, remainingBytes: 0 }], ended: [], buffer: { size: GiB, free: GiB } })).toThrow(ValidationError);
  });
});

const vmArb = fc.record({ memory: fc.integer({ min: 1, max: 64 }), disk: fc.integer({ min: 1, max: 500 }), write: fc.integer({ min: 0, max: 200 }) });
const targetArb = fc.record({
  memory: fc.integer({ min: 0, max: 256 }),
  disk: fc.integer({ min: 0, max: 2000 }),
  used: fc.integer({ min: 0, max: 3 }),
  limit: fc.integer({ min: 0, max: 4 }),
  rate: fc.integer({ min: 10, max: 3000 }),
});
const batchArb = fc.record({
  vms: fc.array(vmArb, { minLength: 0, maxLength: 25 }),
  targets: fc.array(targetArb, { minLength: 0, maxLength: 8 }),
  bufferGiB: fc.integer({ min: 1, max: 100 }),
  uplinkMB: fc.integer({ min: 50, max: 5000 }),
  outgoingLimit: fc.integer({ min: 1, max: 10 }),
  pick: fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
});

type Batch = typeof batchArb extends fc.Arbitrary<infer T> ? T : never;

function planOf(batch: Batch): EvacuationPlan {
  const links = Object.fromEntries(batch.targets.map((t, index) => [`t${index}`, t.rate * MB]));
  return planEvacuation(
    headroom({ name: 'src', buffer: batch.bufferGiB * GiB, outgoingLimit: batch.outgoingLimit, links }),
    batch.vms.map((v, index) => vm(`vm${index}`, v.memory, v.disk, v.write)),
    batch.targets.map((t, index) => headroom({ name: `t${index}`, memory: t.memory * GiB, disk: t.disk * GiB, incoming: { used: t.used, limit: t.limit } })),
    { ...OPTIONS, uplink: batch.uplinkMB * MB },
  );
}

describe('plan properties', () => {
  it('places every VM once or says why not', () => {
    fc.assert(
      fc.property(batchArb, (batch) => {
        const plan = planOf(batch);
        const names = [...plan.placements.map((p) => p.vm.name), ...plan.unplaced.map((u) => u.vm.name)];
        expect(names.sort()).toEqual(batch.vms.map((_, index) => `vm${index}`).sort());
        for (const unplaced of plan.unplaced) expect(unplaced.message).toMatch(new RegExp(`^${unplaced.vm.name}: `));
      }),
    );
  });

  it("never gives a target more memory or disk than it has free, nor more migrations than its incoming slots", () => {
    fc.assert(
      fc.property(batchArb, (batch) => {
        const plan = planOf(batch);
        batch.targets.forEach((t, index) => {
          const mine = plan.placements.filter((p) => p.target === `t${index}`);
          expect(mine.reduce((sum, p) => sum + p.vm.memoryBytes + MEMORY_MARGIN, 0)).toBeLessThanOrEqual(t.memory * GiB);
          expect(mine.reduce((sum, p) => sum + p.vm.diskBytes, 0)).toBeLessThanOrEqual(t.disk * GiB);
        });
        let step = 0;
        drive(plan, batch.bufferGiB * GiB, () => batch.pick[step++ % batch.pick.length] as number, (running) => {
          expect(running.length).toBeLessThanOrEqual(batch.outgoingLimit);
          batch.targets.forEach((t, index) => {
            const there = running.filter((name) => plan.placements.find((p) => p.vm.name === name)?.target === `t${index}`).length;
            if (there > 0) expect(there + t.used).toBeLessThanOrEqual(t.limit);
          });
        });
      }),
    );
  });

  it('runs fewer at once with a smaller buffer or a slower uplink', () => {
    const uniform = fc.record({
      count: fc.integer({ min: 1, max: 30 }),
      targets: fc.integer({ min: 1, max: 40 }),
      memory: fc.integer({ min: 1, max: 32 }),
      disk: fc.integer({ min: 1, max: 300 }),
      write: fc.integer({ min: 0, max: 100 }),
      rate: fc.integer({ min: 10, max: 2000 }),
      buffers: fc.tuple(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 200 })),
      uplinks: fc.tuple(fc.integer({ min: 50, max: 10_000 }), fc.integer({ min: 50, max: 10_000 })),
    });
    fc.assert(
      fc.property(uniform, (u) => {
        const initial = (bufferGiB: number, uplinkMB: number) =>
          planEvacuation(
            headroom({ name: 'src', buffer: bufferGiB * GiB, outgoingLimit: 64, links: rates(u.targets, u.rate * MB) }),
            Array.from({ length: u.count }, (_, index) => vm(`vm${index}`, u.memory, u.disk, u.write)),
            targets(u.targets, { memory: 10_000 * GiB, disk: 100_000 * GiB, incoming: { used: 0, limit: 64 } }),
            { ...OPTIONS, uplink: uplinkMB * MB },
          ).concurrency.initial;
        const [smallBuffer, bigBuffer] = [...u.buffers].sort((a, b) => a - b) as [number, number];
        const [slow, fast] = [...u.uplinks].sort((a, b) => a - b) as [number, number];
        expect(initial(smallBuffer, fast)).toBeLessThanOrEqual(initial(bigBuffer, fast));
        expect(initial(bigBuffer, slow)).toBeLessThanOrEqual(initial(bigBuffer, fast));
      }),
    );
  });
});
