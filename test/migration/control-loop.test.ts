import type { Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lx066 } from '../../src/buffer/throttle/lx066.js';
import { EPSILON, type ThrottleDemand, type ThrottlePolicy } from '../../src/buffer/throttle/policy.js';
import { ControlLoop, type LoopMigration } from '../../src/migration/control-loop.js';
import { CowTracker } from '../../src/monitor/cow-tracker.js';
import { LinkTracker } from '../../src/monitor/link-tracker.js';
import { QmpClient } from '../../src/qmp/client.js';
import { QmpCommands } from '../../src/qmp/commands.js';
import { fakeQmp, type FakeQmp } from '../support/fake-qmp.js';
import { useTempDir } from '../support/temp-dir.js';

const PERIOD_MS = 500;
const ASSUMED = 12.5e6;
const dir = useTempDir('loop');

/** A fake guest's QMP: write counters per drive the test moves, and the throttles it was given. */
interface FakeVm {
  readonly name: string;
  readonly drives: readonly string[];
  readonly commands: QmpCommands;
  readonly written: number[];
  readonly throttles: Array<{ id: string; bps_wr: number }>;
  readonly server: FakeQmp;
  mode: 'ok' | 'error' | 'hang';
}

const opened: Array<{ server: FakeQmp; client: QmpClient }> = [];
afterEach(async () => {
  for (const { server, client } of opened.splice(0)) {
    await client.disconnect();
    await server.close();
  }
});

async function fakeVm(name: string, drives: readonly string[] = ['disk0']): Promise<FakeVm> {
  const vm: Omit<FakeVm, 'server' | 'commands'> = { name, drives, written: drives.map(() => 0), throttles: [], mode: 'ok' };
  const server = await fakeQmp((command, args) => {
    if (vm.mode === 'hang') return undefined;
    if (vm.mode === 'error') return { error: { class: 'GenericError', desc: `${name} is gone` } };
    if (command === 'query-named-block-nodes') return { return: [] };
    if (command === 'query-blockstats') {
      return { return: drives.map((drive, i) => ({ qdev: `/machine/peripheral/${drive}/virtio-backend`, stats: { wr_bytes: vm.written[i], wr_operations: 0, rd_bytes: 0, wr_highest_offset: 0 } })) };
    }
    if (command === 'block_set_io_throttle') {
      const { id, bps_wr } = args as { id: string; bps_wr: number };
      vm.throttles.push({ id, bps_wr });
      return { return: {} };
    }
    return { error: { class: 'CommandNotFound', desc: command } };
  });
  const client = new QmpClient({ commandTimeoutMs: 2000 });
  await client.connect(server.path, { timeoutMs: 2000 });
  opened.push({ server, client });
  return Object.assign(vm, { server, commands: new QmpCommands(client) });
}

async function migrationOf(vm: FakeVm, peer: string, overlayBytes = 1024 ** 2): Promise<LoopMigration> {
  const overlays = await Promise.all(
    vm.drives.map(async (drive) => {
      const path = join(dir(), `${vm.name}-${drive}.qcow2`);
      await writeFile(path, Buffer.alloc(overlayBytes, 1));
      return { id: `${vm.name}/${drive}`, path, qmp: vm.commands, nodeName: `ovl-${drive}`, qdev: drive };
    }),
  );
  return {
    id: vm.name,
    peer,
    qmp: vm.commands,
    overlays,
    throttleTargets: vm.drives.map((drive) => `${drive}/virtio-backend`),
    remainingBytes: 1e9,
    phase: 'mirror',
    throttleFactor: 1,
    throttled: true,
    lastApplied: undefined,
  };
}

function loopWith(links = new LinkTracker(), options: { policy?: ThrottlePolicy; hysteresis?: number } = {}): ControlLoop {
  return new ControlLoop(1024 ** 3, {
    periodMs: PERIOD_MS,
    policy: options.policy ?? lx066,
    hysteresis: options.hysteresis ?? 0.1,
    actuate: true,
    assumedLinkRate: ASSUMED,
    cow: new CowTracker(),
    links,
    onMustFail: () => undefined,
  });
}

async function running(loop: ControlLoop, ...migrations: LoopMigration[]): Promise<void> {
  for (const migration of migrations) {
    loop.admit(migration.id);
    loop.add(migration);
  }
  await Promise.resolve();
}

describe('the control loop: what γ is computed from', () => {
  it('counts the whole overlay as still to move during the base phase, and only what the mirror reports after', async () => {
    const loop = loopWith();
    const migration = await migrationOf(await fakeVm('a'), 'peer');
    await running(loop, { ...migration, phase: 'base' });
    const [base] = (await loop.tick(0)).migrations;
    expect(base?.cow).toBeGreaterThanOrEqual(1024 ** 2);
    expect(base?.remainingBytes).toBe(1e9 + (base?.cow ?? 0));

    const mirroring = loopWith();
    await running(mirroring, migration);
    expect((await mirroring.tick(0)).migrations[0]?.remainingBytes).toBe(1e9);
  });

  it('tells the policy how long RAM pre-copy still needs from the pace of the RAM remaining it is given, and only in that phase', async () => {
    const demands: ThrottleDemand[] = [];
    const capture: ThrottlePolicy = { name: 'capture', summary: '', rate: (_view, demand) => (demands.push(demand), EPSILON) };
    const loop = loopWith(undefined, { policy: capture });
    const migration: LoopMigration = { ...(await migrationOf(await fakeVm('a'), 'peer')), phase: 'ram', remainingBytes: 1e9 };
    await running(loop, migration);
    await loop.tick(0);
    migration.remainingBytes = 0.99e9;
    await loop.tick(1);
    expect(demands.map((demand) => demand.ramSeconds)).toEqual([undefined, 0.99e9 / 0.01e9]);
    migration.phase = 'mirror';
    await loop.tick(2);
    expect(demands[2]?.ramSeconds).toBeUndefined();
  });

  it('tells the policy its link share is the assumed rate until the peer\'s link is measured', async () => {
    const socket = { destroyed: false, localPort: 1, localAddress: '10.0.0.1' } as unknown as Socket;
    let acked = 0;
    const links = new LinkTracker({ stats: () => ({ bytesAcked: BigInt(acked), notSentBytes: 1, deliveryRateAppLimited: false }) });
    links.track('peer', socket);
    const demands: ThrottleDemand[] = [];
    const capture: ThrottlePolicy = { name: 'capture', summary: '', rate: (_view, demand) => (demands.push(demand), EPSILON) };
    const loop = loopWith(links, { policy: capture });
    await running(loop, await migrationOf(await fakeVm('a'), 'peer'));
    for (let i = 0; i <= 10; i += 1) {
      acked = i * 1_000_000;
      await loop.tick(i * 0.5);
    }
    expect(demands[0]).toMatchObject({ linkShare: ASSUMED, linkAssumed: true });
    expect(demands.at(-1)?.linkAssumed).toBeUndefined();
    expect(demands.at(-1)?.linkShare).toBeCloseTo(2_000_000, -4);
  });

  it('traces the interface rate next to the acknowledged rate of each peer', async () => {
    const socket = { destroyed: false, localPort: 1, localAddress: '10.0.0.1' } as unknown as Socket;
    let acked = 0;
    const links = new LinkTracker({
      stats: () => ({ bytesAcked: BigInt(acked), notSentBytes: 1, deliveryRateAppLimited: false }),
      interfaces: { interfaceOf: () => Promise.resolve('veth0'), interfaceCounters: () => Promise.resolve({ txBytes: acked * 1.03, rxBytes: 0 }) },
    });
    links.track('peer', socket);
    const loop = loopWith(links);
    let trace;
    for (let i = 0; i <= 10; i += 1) {
      acked = i * 1_000_000;
      trace = await loop.tick(i * 0.5);
    }
    const [link] = trace?.links ?? [];
    expect(link?.rate).toBeCloseTo(2_000_000, -4);
    expect(link?.interfaceRate).toBeCloseTo(2_060_000, -4);
  });

  it('reads a link measured at exactly 0 as dead (γ = ε), not as unknown (the assumed rate)', async () => {
    const dead = { destroyed: false, localPort: 1 } as unknown as Socket;
    const links = new LinkTracker({ stats: () => ({ bytesAcked: 0n, notSentBytes: 65536, deliveryRateAppLimited: false }) });
    links.track('dead-peer', dead);
    const loop = loopWith(links);
    await running(loop, await migrationOf(await fakeVm('a'), 'dead-peer'), await migrationOf(await fakeVm('b'), 'unmeasured-peer'));
    await loop.tick(0);
    const trace = await loop.tick(0.5);
    expect(trace.links).toEqual([expect.objectContaining({ peer: 'dead-peer', rate: 0, phase: 'transient' })]);
    const [a, b] = trace.migrations;
    expect(a).toMatchObject({ linkShare: 0, throttle: EPSILON, drives: [EPSILON] });
    expect(b).toMatchObject({ linkShare: ASSUMED, throttle: ASSUMED });
  });

  it('reports how late a tick ran', async () => {
    const loop = loopWith();
    expect((await loop.tick(0)).lagMs).toBe(0);
    expect((await loop.tick(0.5)).lagMs).toBe(0);
    expect((await loop.tick(3)).lagMs).toBe(2000);
  });
});

describe('the control loop: no blind ticks', () => {
  it("traces each VM's monitor round trip beside its actuation, from this tick's sample only", async () => {
    const loop = loopWith();
    const vms = await Promise.all(['a', 'b'].map((name) => fakeVm(name)));
    await running(loop, ...(await Promise.all(vms.map((vm) => migrationOf(vm, 'peer')))));
    const first = await loop.tick(0);
    for (const entry of first.migrations) expect(entry).toMatchObject({ applied: true, monitorMs: expect.any(Number) as number, actuationMs: expect.any(Number) as number });
    (vms[1] as FakeVm).mode = 'error';
    const byId = new Map((await loop.tick(0.5)).migrations.map((entry) => [entry.id, entry]));
    expect(byId.get('a')).toHaveProperty('monitorMs');
    // b's last sample stands in for its overlay size, not for how its monitor answers now.
    expect(byId.get('b')).toMatchObject({ cow: 1024 ** 2, error: expect.any(String) as string });
    expect(byId.get('b')).not.toHaveProperty('monitorMs');
  });

  it.each(['error', 'hang'] as const)('samples and throttles the other VMs when one VM fails (%s)', async (mode) => {
    const loop = loopWith();
    const vms = await Promise.all(['a', 'b', 'c'].map((name) => fakeVm(name)));
    await running(loop, ...(await Promise.all(vms.map((vm) => migrationOf(vm, 'peer')))));
    const [, broken] = vms as [FakeVm, FakeVm, FakeVm];
    broken.mode = mode;
    const began = performance.now();
    const trace = await loop.tick(0);
    expect(performance.now() - began).toBeLessThan(PERIOD_MS + 400);
    const byId = new Map(trace.migrations.map((entry) => [entry.id, entry]));
    for (const id of ['a', 'c']) expect(byId.get(id)).toMatchObject({ applied: true, cow: 1024 ** 2 });
    expect(byId.get('b')).toMatchObject({ applied: false, cow: 0, error: expect.any(String) as string });
    expect(vms[0]?.throttles).toHaveLength(1);
    expect(vms[2]?.throttles).toHaveLength(1);

    broken.mode = 'ok';
    const healed = await loop.tick(0.5);
    expect(healed.migrations.find((entry) => entry.id === 'b')).toMatchObject({ applied: true, cow: 1024 ** 2 });
    expect(healed.migrations.find((entry) => entry.id === 'b')).not.toHaveProperty('error');
  });

  it('stops sampling a migration once its throttle is lifted, before its QEMU stops or its overlay goes', async () => {
    const loop = loopWith();
    const vm = await fakeVm('a');
    await running(loop, await migrationOf(vm, 'peer'));
    await loop.tick(0);
    await loop.lift('a');
    expect(vm.throttles.at(-1)).toEqual({ id: 'disk0/virtio-backend', bps_wr: 0 });
    vm.mode = 'error';
    const before = vm.server.received.length;
    const trace = await loop.tick(0.5);
    expect(vm.server.received.length).toBe(before);
    expect(trace.migrations[0]).toMatchObject({ id: 'a', cow: 1024 ** 2, applied: false });
    expect(trace.migrations[0]).not.toHaveProperty('error');
  });

  it("splits γ across a VM's drives by how fast each writes", async () => {
    const loop = loopWith();
    const vm = await fakeVm('a', ['disk0', 'disk1']);
    await running(loop, await migrationOf(vm, 'peer'));
    let trace;
    for (let i = 0; i <= 20; i += 1) {
      vm.written[0] = i * 1.5e6;
      vm.written[1] = i * 0.5e6;
      trace = await loop.tick(i * 0.5);
    }
    const [fast = 0, slow = 0] = trace?.migrations[0]?.drives ?? [];
    const budget = trace?.migrations[0]?.throttle ?? 0;
    expect(budget).toBe(ASSUMED);
    expect(fast / slow).toBeCloseTo((0.9 * 0.75 + 0.05) / (0.9 * 0.25 + 0.05), 1);
    expect(fast + slow).toBeLessThanOrEqual(budget + 1);
  });

  it('always applies a decrease, and an increase only beyond the hysteresis', async () => {
    const loop = loopWith(new LinkTracker(), { hysteresis: 0.5 });
    const vm = await fakeVm('a');
    const migration = await migrationOf(vm, 'peer');
    await running(loop, migration);
    await loop.tick(0);
    expect(vm.throttles.map((t) => t.bps_wr)).toEqual([ASSUMED]);
    migration.throttleFactor = 0.9;
    expect((await loop.tick(0.5)).migrations[0]).toMatchObject({ applied: true, drives: [0.9 * ASSUMED] });
    migration.throttleFactor = 1;
    expect((await loop.tick(1)).migrations[0]).toMatchObject({ applied: false, drives: [0.9 * ASSUMED] });
    migration.throttleFactor = 0.0001;
    expect((await loop.tick(1.5)).migrations[0]).toMatchObject({ applied: true, drives: [EPSILON] });
    expect(vm.throttles.map((t) => t.bps_wr)).toEqual([ASSUMED, 0.9 * ASSUMED, EPSILON]);
  });
});
