import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lx066 } from '../../src/buffer/throttle/lx066.js';
import { ControlLoop, type LoopMigration } from '../../src/migration/control-loop.js';
import type { TickTrace } from '../../src/migration/tick-trace.js';
import { CowTracker } from '../../src/monitor/cow-tracker.js';
import { LinkTracker } from '../../src/monitor/link-tracker.js';
import { QmpClient } from '../../src/qmp/client.js';
import { QmpCommands } from '../../src/qmp/commands.js';
import { fakeQmp, type FakeQmp } from '../support/fake-qmp.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir('early');
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

interface Guest {
  readonly migration: LoopMigration;
  readonly server: FakeQmp;
  /** Every `block-set-write-threshold` the guest's QEMU was sent. */
  readonly armed: Array<{ node: string; at: number }>;
  /** Pushes BLOCK_WRITE_THRESHOLD for `node`, as QEMU does when a write crosses it. */
  cross(node: string): void;
}

const opened: Array<{ server: FakeQmp; client: QmpClient }> = [];
const loops: ControlLoop[] = [];
afterEach(async () => {
  for (const loop of loops.splice(0)) await loop.stop();
  for (const { server, client } of opened.splice(0)) {
    await client.disconnect();
    await server.close();
  }
});

/** A guest with one drive whose overlay file holds `extent` bytes; QEMU reports that extent. */
async function guest(name: string, extent = 4 * MiB): Promise<Guest> {
  const armed: Guest['armed'] = [];
  const server = await fakeQmp((command, args) => {
    if (command === 'query-named-block-nodes') return { return: [] };
    if (command === 'query-blockstats') {
      const perNode = (args as { 'query-nodes'?: boolean } | undefined)?.['query-nodes'];
      if (perNode) return { return: [{ 'node-name': 'ovl0', stats: { wr_bytes: 0, wr_operations: 0, rd_bytes: 0, wr_highest_offset: 0 }, parent: { 'node-name': 'ovl0-file', stats: { wr_bytes: 0, wr_operations: 0, rd_bytes: 0, wr_highest_offset: extent } } }] };
      return { return: [{ qdev: '/machine/peripheral/disk0/virtio-backend', stats: { wr_bytes: 0, wr_operations: 0, rd_bytes: 0, wr_highest_offset: 0 } }] };
    }
    if (command === 'block_set_io_throttle') return { return: {} };
    if (command === 'block-set-write-threshold') {
      const a = args as { 'node-name': string; 'write-threshold': number };
      armed.push({ node: a['node-name'], at: a['write-threshold'] });
      return { return: {} };
    }
    return { error: { class: 'CommandNotFound', desc: command } };
  });
  const client = new QmpClient({ commandTimeoutMs: 2000 });
  await client.connect(server.path, { timeoutMs: 2000 });
  opened.push({ server, client });
  const qmp = new QmpCommands(client);
  const path = join(dir(), `${name}.qcow2`);
  await writeFile(path, Buffer.alloc(64 * 1024, 1));
  const migration: LoopMigration = {
    id: name,
    peer: 'peer',
    qmp,
    events: client,
    overlays: [{ id: `${name}/disk0`, path, qmp, nodeName: 'ovl0', fileNode: 'ovl0-file', qdev: 'disk0' }],
    throttleTargets: ['disk0/virtio-backend'],
    remainingBytes: 1e9,
    phase: 'mirror',
    throttleFactor: 1,
    throttled: true,
    lastApplied: undefined,
  };
  const event = (node: string) => JSON.stringify({ event: 'BLOCK_WRITE_THRESHOLD', data: { 'node-name': node, 'amount-exceeded': 512, 'write-threshold': 1 }, timestamp: { seconds: 0, microseconds: 0 } });
  return { migration, server, armed, cross: (node) => server.send(server.sockets[0] as never, `${event(node)}\r\n`) };
}

function loop(periodMs: number, onTick?: (trace: TickTrace) => void): ControlLoop {
  const made = new ControlLoop(GiB, { periodMs, policy: lx066, hysteresis: 0.1, actuate: true, assumedLinkRate: 12.5e6, cow: new CowTracker(), links: new LinkTracker(), onMustFail: () => undefined, ...(onTick ? { onTick } : {}) });
  loops.push(made);
  return made;
}

function running(l: ControlLoop, g: Guest): void {
  l.admit(g.migration.id);
  l.add(g.migration);
}

/** Where the threshold must sit after `trace`: the file's end plus the bin's room less one period of γ. */
const expected = (trace: TickTrace, periodMs: number, extent = 4 * MiB) => {
  const [entry] = trace.migrations;
  return extent + Math.floor((entry?.bin ?? 0) - (entry?.cow ?? 0) - (entry?.throttle ?? 0) * (periodMs / 1000));
};

describe('the early warning: write thresholds at the bins’ edges', () => {
  it("arms the overlay file one period of γ ahead of its bin's edge, and re-arms it lower when the bins are re-cut", async () => {
    const l = loop(500);
    const a = await guest('a');
    running(l, a);
    const first = await l.tick(0);
    expect(a.armed).toEqual([{ node: 'ovl0-file', at: expected(first, 500) }]);
    expect(first.migrations[0]).toMatchObject({ bin: GiB, cow: 4 * MiB, thresholds: [expected(first, 500)] });

    // Nothing moved: nothing re-armed.
    await l.tick(0.5);
    expect(a.armed).toHaveLength(1);

    // A second migration halves a's bin: its edge came closer, so its threshold moves down now.
    const b = await guest('b');
    running(l, b);
    const recut = await l.tick(1);
    expect(recut.migrations[0]?.bin).toBe(GiB / 2);
    expect(a.armed).toHaveLength(2);
    expect(a.armed[1]).toEqual({ node: 'ovl0-file', at: expected(recut, 500) });
    expect(a.armed[1]?.at).toBeLessThan(a.armed[0]?.at ?? 0);
    expect(b.armed).toEqual([{ node: 'ovl0-file', at: expect.any(Number) as number }]);
  });

  it('runs a tick early when a write crosses a threshold, and re-arms it there', async () => {
    const periodMs = 4000;
    const ticks: Array<{ trace: TickTrace; at: number }> = [];
    const began = performance.now();
    const l = loop(periodMs, (trace) => ticks.push({ trace, at: performance.now() - began }));
    const a = await guest('a');
    running(l, a);
    await l.tick(0);
    expect(a.armed).toHaveLength(1);
    l.start();
    const crossedAt = performance.now() - began;
    a.cross('ovl0-file');
    for (let i = 0; i < 100 && ticks.length === 0; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
    const [early] = ticks;
    expect(early?.trace.trigger).toBe('write-threshold');
    // No sooner than a quarter period after the last tick, long before the next period.
    expect((early?.at ?? Infinity) - crossedAt).toBeLessThan(periodMs / 2);
    // QEMU disarmed it when it fired; the early tick armed it again.
    expect(a.armed).toHaveLength(2);
    expect(early?.trace.migrations[0]?.thresholds).toEqual([a.armed[1]?.at]);
  });

  it('ignores events for nodes it did not arm, and stops listening once the throttle is lifted', async () => {
    const ticks: TickTrace[] = [];
    const l = loop(4000, (trace) => ticks.push(trace));
    const a = await guest('a');
    running(l, a);
    await l.tick(0);
    l.start();
    a.cross('someone-else');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(ticks).toEqual([]);
    await l.lift('a');
    a.cross('ovl0-file');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(ticks).toEqual([]);
  });
});
