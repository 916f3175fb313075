import { describe, expect, it } from 'vitest';
import { admit, observe, type Bin, type Partition } from '../../src/buffer/partition.js';
import { viewMigrations } from '../../src/buffer/view.js';
import { run } from '../../src/exec/run.js';
import type { TickTrace } from '../../src/migration/tick-trace.js';
import { startDaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, waitForSerial } from '../../src/testbed/guest.js';
import { report } from '../support/report.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('recut');

/** The partition a tick trace describes: bins in admission order, shards at their priority. */
function partitionOf(trace: TickTrace): Partition {
  const bins = new Map<string, { owner: string; size: number; frozen: boolean; stack: Array<{ migration: string; bytes: number }> }>();
  for (const m of trace.migrations) {
    const own = m.cow - m.shards.reduce((sum, shard) => sum + shard.bytes, 0);
    bins.set(m.id, { owner: m.id, size: m.bin, frozen: m.frozen, stack: [{ migration: m.id, bytes: own }] });
  }
  for (const m of trace.migrations) {
    for (const shard of m.shards) {
      const host = bins.get(shard.bin);
      if (host) host.stack[shard.priority - 1] = { migration: m.id, bytes: shard.bytes };
    }
  }
  return { capacity: trace.capacity, bins: [...bins.values()] as Bin[], unplaced: [] };
}

function summary(partition: Partition) {
  return viewMigrations(partition).map((view) => ({
    id: view.id,
    bin: view.holdings[0]?.binSize,
    frozen: view.holdings[0]?.frozen,
    cow: view.cowBytes,
    shards: view.holdings.slice(1).map((h) => ({ bin: h.bin, bytes: h.bytes, priority: h.priority })),
  }));
}

describe('a migration started while two others run', { timeout: 300_000 }, () => {
  it('re-cuts the bins and shards exactly as src/buffer does', async () => {
    // lx066 lets the first two fill their bins quickly on this slow link; partitioning itself does
    // not depend on the policy.
    const pair = await startDaemonPair({ dir: scope().dir, bufferSize: 48 * MiB, linkRate: '20mbit', migration: { policy: 'lx066', minBin: '4MiB' } });
    const ticks: TickTrace[] = [];
    const controller = new AbortController();
    const events = pair.source.api.events((event) => {
      if (event.type === 'tick') ticks.push(event.metadata as TickTrace);
    }, controller.signal);
    try {
      for (const name of ['r1', 'r2', 'r3']) {
        const disk = scope().path(`${name}.qcow2`);
        await qemuImg('create', '-q', '-f', 'qcow2', disk, '256M');
        await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 7 128M 64M', disk]);
        const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', guestVmBody(name, disk, { diskRateMiB: 3, diskSpanMiB: 100, dirtyRateMiB: 0, verifyEvery: 0 }, 128));
        await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > 0, `${name} running`);
      }
      const first = await Promise.all(['r1', 'r2'].map((vm) => pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm, target: 'dst' })));
      // Let the first two fill more than a third of the buffer each.
      for (let i = 0; i < 120; i += 1) {
        const last = ticks.at(-1);
        if (last && last.migrations.length === 2 && last.migrations.every((m) => m.cow > 17 * MiB)) break;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const third = await pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm: 'r3', target: 'dst' });
      for (let i = 0; i < 40 && !ticks.some((t) => t.migrations.some((m) => m.id === third.id)); i += 1) await new Promise((resolve) => setTimeout(resolve, 250));
      const nextIndex = ticks.findIndex((t) => t.migrations.some((m) => m.id === third.id));
      const before = ticks[nextIndex - 1];
      const after = ticks[nextIndex];
      if (!before || !after) throw new Error('no ticks around the third admission');
      expect(before.migrations.map((m) => m.id)).toEqual(first.map((op) => op.id));

      const cows = after.migrations.map((m) => [m.id, m.cow] as const);
      const expected = observe(admit(partitionOf(before), third.id), cows);
      expect(summary(partitionOf(after))).toEqual(summary(expected));
      expect(after.migrations.map((m) => m.bin)).toEqual([16 * MiB, 16 * MiB, 16 * MiB]);
      expect(after.migrations.some((m) => m.shards.length > 0 || m.frozen)).toBe(true);
      await report('recut', { before: summary(partitionOf(before)), after: summary(partitionOf(after)) });
      for (const op of [...first, third]) await pair.source.api.call('DELETE', `/1.0/migrations/${op.id}`);
    } finally {
      controller.abort();
      await events;
      await pair.close();
    }
  });
});
