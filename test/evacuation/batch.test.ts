import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { Evacuation, planBatch, resume, type BatchOptions, type EvacuationPort } from '../../src/evacuation/batch.js';
import type { Headroom } from '../../src/evacuation/headroom.js';
import type { EvacuationVm } from '../../src/evacuation/plan.js';
import { etaSeconds, holdsVm, type BatchState, type EvacuationRecord, type MigrationStatus } from '../../src/evacuation/progress.js';

const GiB = 1024 ** 3;
const MB = 1e6;
const OPTIONS: BatchOptions = { uplink: 10_000 * MB, minBinBytes: 64 * 1024 ** 2, assumedLinkRate: 12.5 * MB };

function headroom(host: string, over: Partial<Headroom> = {}): Headroom {
  return { host, buffer: { size: 10 * GiB, used: 0, committed: 0, free: 10 * GiB }, outgoing: { used: 0, limit: 2 }, incoming: { used: 0, limit: 4 }, memoryFree: 64 * GiB, diskFree: 1000 * GiB, links: [], ...over };
}

const vm = (name: string, memoryGiB = 2, diskGiB = 10): EvacuationVm => ({ name, memoryBytes: memoryGiB * GiB, diskBytes: diskGiB * GiB, writeRate: MB });
const TARGETS = ['t0', 't1', 't2'];

/** The engine as the batch sees it: migrations end when the test says so. */
class FakeEngine implements EvacuationPort {
  readonly started: string[] = [];
  readonly saved: BatchState[] = [];
  readonly records: EvacuationRecord[] = [];
  readonly logs: string[] = [];
  readonly cancelled: string[] = [];
  maxRunning = 0;
  /** What the port says this host's interfaces carry to the targets in all; undefined: unknown. */
  interfaceUplink: number | undefined;
  uplinkAsked: (readonly string[])[] = [];
  ownLinks = TARGETS.map((peer) => ({ peer, rate: 1000 * MB, phase: 'steady' as const }));
  outgoingLimit = 2;
  headroomReads = 0;
  private readonly migrations = new Map<string, { vm: string; status: MigrationStatus; end?: (status: MigrationStatus) => void }>();

  constructor(
    readonly list: readonly EvacuationVm[],
    readonly peers: Readonly<Record<string, Headroom | Error>> = Object.fromEntries(TARGETS.map((name) => [name, headroom(name)])),
    readonly refuse: readonly string[] = [],
  ) {}

  ownHeadroom(): Promise<Headroom> {
    this.headroomReads += 1;
    return Promise.resolve(headroom('src', { links: this.ownLinks, outgoing: { used: this.running().length, limit: this.outgoingLimit } }));
  }

  uplink(targets: readonly string[]): Promise<number | undefined> {
    this.uplinkAsked.push(targets);
    return Promise.resolve(this.interfaceUplink);
  }

  peerHeadroom(peer: string): Promise<Headroom> {
    const answer = this.peers[peer];
    return answer instanceof Error || !answer ? Promise.reject(answer ?? new Error('unknown')) : Promise.resolve(answer);
  }

  vms(): Promise<readonly EvacuationVm[]> {
    return Promise.resolve(this.list);
  }

  migrate(name: string): string {
    if (this.refuse.includes(name)) throw new ValidationError('vm', name, "one of this host's VMs");
    const id = `${name}-m`;
    this.started.push(name);
    this.migrations.set(id, { vm: name, status: { phase: 'base', cowBytes: 0 } });
    this.maxRunning = Math.max(this.maxRunning, this.running().length);
    return id;
  }

  /** Knows a migration an earlier run of the daemon started. */
  knows(name: string): void {
    this.migrations.set(`${name}-m`, { vm: name, status: { phase: 'mirror', cowBytes: 0 } });
  }

  running(): string[] {
    return [...this.migrations.values()].filter((m) => !['completed', 'failed', 'cancelled'].includes(m.status.phase)).map((m) => m.vm);
  }

  waitFor(id: string): Promise<MigrationStatus> {
    const migration = this.migrations.get(id);
    if (!migration) return Promise.reject(new Error(`unknown migration "${id}"`));
    return new Promise((resolve) => (migration.end = resolve));
  }

  status(id: string): MigrationStatus | undefined {
    return this.migrations.get(id)?.status;
  }

  cancel(id: string): void {
    this.cancelled.push(id);
    this.end(id.replace(/-m$/, ''), 'cancelled', 'cancelled by request');
  }

  /** Its link has bytes waiting and none acknowledged. */
  stall(name: string): void {
    const migration = this.migrations.get(`${name}-m`) as { status: MigrationStatus };
    migration.status = { ...migration.status, linkStalled: true };
  }

  end(name: string, phase = 'completed', error?: string): void {
    const migration = this.migrations.get(`${name}-m`);
    if (!migration) throw new Error(`${name} was not started`);
    migration.status = { phase, cowBytes: 0, ...(error ? { error } : {}) };
    migration.end?.(migration.status);
  }

  save(state: BatchState): Promise<void> {
    this.saved.push(state);
    return Promise.resolve();
  }

  changed(record: EvacuationRecord): void {
    this.records.push(record);
  }

  log(_level: string, message: string): void {
    this.logs.push(message);
  }

  last(): BatchState {
    return this.saved.at(-1) as BatchState;
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const outcomes = (state: BatchState) => Object.fromEntries(state.vms.map((entry) => [entry.vm, entry.outcome]));

async function begin(engine: FakeEngine, signal = new AbortController().signal, options = OPTIONS): Promise<{ batch: Evacuation; done: Promise<BatchState> }> {
  const state = await planBatch(engine, { id: 'evac-1', targets: TARGETS, options }, signal);
  const batch = new Evacuation(engine, state);
  const done = batch.run(signal);
  await settle();
  return { batch, done };
}

describe('an evacuation batch', () => {
  it("never runs more than the plan's concurrency, starts the next as one ends, and journals every change", async () => {
    const engine = new FakeEngine(['a', 'b', 'c', 'd', 'e'].map((name) => vm(name)));
    const { batch, done } = await begin(engine);
    expect(batch.state.plan.concurrency).toEqual({ initial: 2, boundBy: 'outgoing' });
    expect(engine.started).toHaveLength(2);
    for (let ended = 0; engine.running().length > 0; ended += 1) {
      const saves = engine.saved.length;
      const first = engine.running()[0] as string;
      engine.end(first);
      await settle();
      expect(outcomes(engine.last())[first]).toBe('moved');
      expect(engine.saved.length).toBeGreaterThan(saves);
      expect(engine.started).toHaveLength(Math.min(5, ended + 3));
    }
    expect(engine.maxRunning).toBe(2);
    expect((await done).status).toBe('done');
    expect(engine.records.at(-1)?.total).toMatchObject({ moved: 5, failed: 0, left: 0, bytesLeft: 0 });
    expect(engine.last().status).toBe('done');
  });

  it('reports a VM no target can take, with why, and moves the others', async () => {
    const engine = new FakeEngine([vm('huge', 512), vm('a'), vm('b')]);
    const { batch, done } = await begin(engine);
    expect(batch.state.vms.find((entry) => entry.vm === 'huge')).toMatchObject({ outcome: 'unplaced', error: expect.stringMatching(/^huge: needs 512\.1 GiB of memory/) });
    expect(engine.logs.some((line) => line.includes('huge: needs'))).toBe(true);
    engine.end('a');
    engine.end('b');
    await settle();
    expect(outcomes((await done))).toEqual({ huge: 'unplaced', a: 'moved', b: 'moved' });
    expect(batch.record().total).toMatchObject({ moved: 2, failed: 1 });
  });

  it("records a failed migration with the engine's error and a VM the engine refuses, and goes on with the rest", async () => {
    const engine = new FakeEngine(['a', 'b', 'c', 'd'].map((name) => vm(name)), undefined, ['b']);
    const { done } = await begin(engine);
    expect(outcomes(engine.last())).toMatchObject({ b: 'failed' });
    expect(engine.running()).toHaveLength(2);
    engine.end('a', 'failed', 'peer t0: connection closed');
    await settle();
    for (const name of ['c', 'd']) engine.end(name);
    await settle();
    const state = await done;
    expect(state.vms.find((entry) => entry.vm === 'a')).toMatchObject({ outcome: 'failed', error: 'peer t0: connection closed', target: 't0' });
    expect(state.vms.find((entry) => entry.vm === 'b')?.error).toMatch(/^Expected `vm`/);
    expect(outcomes(state)).toMatchObject({ c: 'moved', d: 'moved' });
  });

  it('leaves out a target that cannot be reached when planning, saying why', async () => {
    const engine = new FakeEngine([vm('a'), vm('b'), vm('c')], { t0: headroom('t0'), t1: headroom('t1'), t2: new Error('peer t2: connect ECONNREFUSED') });
    const { batch } = await begin(engine);
    expect(batch.state.leftOut).toEqual([{ peer: 't2', reason: 'peer t2: connect ECONNREFUSED' }]);
    expect(new Set(batch.state.vms.map((entry) => entry.target))).toEqual(new Set(['t0', 't1']));
    expect(engine.logs).toContain('evacuation evac-1: target t2 left out: peer t2: connect ECONNREFUSED');
  });

  it('on cancel starts no more and cancels the running ones', async () => {
    const engine = new FakeEngine(['a', 'b', 'c', 'd'].map((name) => vm(name)));
    const { batch, done } = await begin(engine);
    batch.cancel();
    await settle();
    const state = await done;
    expect(engine.started).toHaveLength(2);
    expect(engine.cancelled.sort()).toEqual(engine.started.map((name) => `${name}-m`).sort());
    expect(state.status).toBe('cancelled');
    expect(Object.values(outcomes(state))).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
    expect(state.vms.filter((entry) => !engine.started.includes(entry.vm)).map((entry) => entry.error)).toEqual(['not started: the evacuation was cancelled', 'not started: the evacuation was cancelled']);
  });

  it('after a restart starts only the VMs not started yet, and re-reads the outcome of the one that ran', async () => {
    const before = new FakeEngine(['a', 'b', 'c', 'd'].map((name) => vm(name)));
    await begin(before);
    const [first, second] = before.started as [string, string];
    before.end(first);
    await settle();
    const saved = structuredClone(before.last());
    expect(outcomes(saved)).toMatchObject({ [first]: 'moved' });
    const third = before.started[2] as string;
    // The daemon died here: its engine's journal knows the migrations that were running.
    const after = new FakeEngine(before.list);
    after.knows(second);
    after.knows(third);
    const batch = resume(after, saved, new AbortController().signal);
    await settle();
    expect(after.started).toEqual([]);
    after.end(second);
    after.end(third);
    await settle();
    const fourth = ['a', 'b', 'c', 'd'].find((name) => ![first, second, third].includes(name)) as string;
    expect(after.started).toEqual([fourth]);
    after.end(fourth);
    await settle();
    expect(batch.state.status).toBe('done');
    expect(Object.values(outcomes(after.last()))).toEqual(['moved', 'moved', 'moved', 'moved']);
  });

  it("records a migration the restarted engine does not know as failed, with the engine's word", async () => {
    const before = new FakeEngine([vm('a')]);
    await begin(before);
    const batch = resume(new FakeEngine(before.list), structuredClone(before.last()), new AbortController().signal);
    await settle();
    expect(batch.state).toMatchObject({ status: 'done', vms: [{ vm: 'a', outcome: 'failed', error: 'unknown migration "a-m"' }] });
  });

  it('a shutdown is not its end: what the shutdown cancelled waits for the next start', async () => {
    const engine = new FakeEngine(['a', 'b', 'c'].map((name) => vm(name)));
    const stop = new AbortController();
    const { done } = await begin(engine, stop.signal);
    stop.abort();
    for (const name of [...engine.started]) engine.end(name, 'cancelled', 'daemon shutting down');
    const state = await done;
    expect(state.status).toBe('running');
    expect(Object.values(outcomes(engine.last()))).toEqual(['waiting', 'waiting', 'waiting']);
    expect(engine.started).toHaveLength(2);
  });
});

describe("an evacuation batch's uplink", () => {
  const unset: BatchOptions = { minBinBytes: OPTIONS.minBinBytes, assumedLinkRate: OPTIONS.assumedLinkRate };
  const plan = async (engine: FakeEngine) => (await planBatch(engine, { id: 'evac-1', targets: TARGETS, options: unset }, new AbortController().signal)).plan;

  it("is what this host's interfaces carry to the targets that answered, when the port knows it", async () => {
    const engine = new FakeEngine([vm('a')], { t0: headroom('t0'), t1: headroom('t1'), t2: new Error('peer t2: connect ECONNREFUSED') });
    engine.interfaceUplink = 1250 * MB;
    expect((await plan(engine)).uplink).toBe(1250 * MB);
    expect(engine.uplinkAsked).toEqual([['t0', 't1']]);
  });

  it('else the measured rates to the targets added up, the assumed one for a peer never measured', async () => {
    const engine = new FakeEngine([vm('a')]);
    engine.ownLinks = [{ peer: 't0', rate: 25 * MB, phase: 'steady' }, { peer: 't1', rate: 20 * MB, phase: 'steady' }, { peer: 'elsewhere', rate: 900 * MB, phase: 'steady' }];
    expect((await plan(engine)).uplink).toBe(25 * MB + 20 * MB + OPTIONS.assumedLinkRate);
  });

  it('runs one migration per target at once when each target has a link of its own', async () => {
    // The three-host test bed: two targets on 25 MB/s links of their own, one incoming slot each.
    const slot = { incoming: { used: 0, limit: 1 } };
    const engine = new FakeEngine(['a', 'b', 'c', 'd'].map((name) => vm(name)), { t0: headroom('t0', slot), t1: headroom('t1', slot) });
    engine.ownLinks = ['t0', 't1'].map((peer) => ({ peer, rate: 25 * MB, phase: 'steady' as const }));
    engine.outgoingLimit = 4;
    expect((await plan(engine)).concurrency).toEqual({ initial: 2, boundBy: 'target-slots' });
  });
});

describe('an evacuation batch with a stalled link', () => {
  it('starts onto the healthy targets as if the stalled migration took no link, and keeps its target slot', async () => {
    const slot = { incoming: { used: 0, limit: 1 } };
    const engine = new FakeEngine(['a', 'b', 'c', 'd', 'e', 'f'].map((name) => vm(name)), Object.fromEntries(TARGETS.map((name) => [name, headroom(name, slot)])));
    engine.outgoingLimit = 4;
    // The uplink carries two of the three 1000 MB/s links.
    const { batch } = await begin(engine, undefined, { ...OPTIONS, uplink: 2000 * MB });
    const target = (name: string) => batch.state.vms.find((entry) => entry.vm === name)?.target;
    const [first, second] = engine.started as [string, string];
    expect(engine.started).toHaveLength(2);
    engine.stall(second);
    engine.end(first);
    await settle();
    const next = engine.started.slice(2);
    expect(next).toHaveLength(2);
    expect(next.map(target).sort()).toEqual(TARGETS.filter((name) => name !== target(second)));
  });
});

describe('an evacuation batch whose link stalls while nothing ends', () => {
  it('asks again when a link of its own stalled, and starts what waited for link onto another target', async () => {
    const slot = { incoming: { used: 0, limit: 1 } };
    const engine = new FakeEngine(['a', 'b'].map((name) => vm(name)), { t0: headroom('t0', slot), t1: headroom('t1', slot) });
    engine.outgoingLimit = 4;
    // The uplink carries one of the 1000 MB/s links.
    const { batch } = await begin(engine, undefined, { ...OPTIONS, uplink: 1000 * MB });
    const [first] = engine.started as [string];
    expect(engine.started).toHaveLength(1);
    const stalledTarget = batch.state.vms.find((entry) => entry.vm === first)?.target as string;
    const reads = engine.headroomReads;
    batch.linksStalled(TARGETS.filter((name) => name !== stalledTarget));
    await settle();
    expect(engine.headroomReads).toBe(reads);
    engine.stall(first);
    batch.linksStalled([stalledTarget]);
    await settle();
    expect(engine.started).toHaveLength(2);
  });
});

describe('the ETA', () => {
  it("is the longer of the slowest target's bytes over its rate and all bytes over the uplink", () => {
    const rates = new Map([['t0', 100 * MB], ['t1', 50 * MB]]);
    expect(etaSeconds([{ target: 't0', bytes: 1000 * MB }, { target: 't1', bytes: 1000 * MB }], rates, 1000 * MB)).toBe(20);
    expect(etaSeconds([{ target: 't0', bytes: 1000 * MB }, { target: 't1', bytes: 500 * MB }], rates, 100 * MB)).toBe(15);
    expect(etaSeconds([], rates, 100 * MB)).toBeUndefined();
  });
});

describe('which VMs a batch holds (an admin cannot remove them meanwhile)', () => {
  const vms: BatchState['vms'] = [
    { vm: 'waits', target: 't0', outcome: 'waiting' },
    { vm: 'moves', target: 't0', outcome: 'running', migration: 'm1' },
    { vm: 'moved', target: 't0', outcome: 'moved', migration: 'm0' },
    { vm: 'failed', target: 't0', outcome: 'failed', error: 'no' },
    { vm: 'unplaced', outcome: 'unplaced', error: 'no room' },
  ];

  it('holds those it has still to move or is moving, while it is not over', () => {
    for (const status of ['running', 'cancelling'] as const) expect(['waits', 'moves', 'moved', 'failed', 'unplaced', 'other'].filter((vm) => holdsVm({ status, vms }, vm))).toEqual(['waits', 'moves']);
  });

  it('holds none once it is over', () => {
    for (const status of ['done', 'cancelled', 'failed'] as const) expect(vms.filter((entry) => holdsVm({ status, vms }, entry.vm))).toEqual([]);
  });
});
