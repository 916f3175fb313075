import { describe, expect, it } from 'vitest';
import type { EvacuationRecord } from '../../src/evacuation/progress.js';
import { startDaemonPair, type DaemonHost, type DaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, waitForSerial } from '../../src/testbed/guest.js';
import { expectWritingOn, qemuProcesses, type VmView } from '../support/faults.js';
import { report } from '../support/report.js';
import { qemuImg, until, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('evacuate');
const NAMES = ['g1', 'g2', 'g3', 'g4'];

/** `vm` runs on `host` with every write (two verifications of its ledger there). */
async function expectWritesKept(host: DaemonHost, vm: string): Promise<void> {
  const guest = (await host.api.call<VmView[]>('GET', '/1.0/vms')).find((candidate) => candidate.name === vm);
  await expectWritingOn(guest, vm, host.name, 90_000);
}

/**
 * Three hosts, four busy guests on the source. Each target takes one incoming migration at a
 * time: the batch must respect that, not a constant.
 */
async function threeHostsWithGuests(): Promise<DaemonPair> {
  const pair = await startDaemonPair({ dir: scope().dir, bufferSize: 192 * MiB, linkRate: '200mbit', moreTargets: 1, migration: { maxIncoming: 1, linkLostSeconds: 8 } });
  try {
    for (const name of NAMES) {
      const disk = scope().path(`${name}.qcow2`);
      await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
      const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', guestVmBody(name, disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 3 }, 128));
      await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > 1, `heartbeats of ${name}`);
    }
    return pair;
  } catch (error) {
    await pair.close();
    throw error;
  }
}

/** The most migrations running at once into each target, and in all, as the batch reported them. */
function concurrency(record: EvacuationRecord, perTarget: Map<string, number>): number {
  for (const target of record.targets) {
    const running = record.vms.filter((vm) => vm.target === target && vm.outcome === 'running').length;
    perTarget.set(target, Math.max(perTarget.get(target) ?? 0, running));
  }
  return record.vms.filter((vm) => vm.outcome === 'running').length;
}

/** Evacuates the source while `onProgress` sees every batch update; the batch as it ended. */
async function evacuate(pair: DaemonPair, onProgress: (record: EvacuationRecord) => void): Promise<EvacuationRecord> {
  const events = new AbortController();
  const watching = pair.source.api.events((event) => {
    if (event.type === 'evacuation') onProgress(event.metadata as EvacuationRecord);
  }, events.signal);
  const started = await pair.source.api.call<EvacuationRecord>('POST', '/1.0/evacuations', {});
  let batch = started;
  for (let i = 0; batch.status === 'running' || batch.status === 'cancelling'; i += 1) {
    expect(i, 'the evacuation never ended').toBeLessThan(2400);
    await new Promise((resolve) => setTimeout(resolve, 250));
    batch = await pair.source.api.call<EvacuationRecord>('GET', `/1.0/evacuations/${started.id}`);
  }
  events.abort();
  await watching.catch(() => undefined);
  return batch;
}

describe('evacuating a host onto two others', { timeout: 600_000 }, () => {
  it('moves four busy guests, both targets at once and each within its incoming limit: all land with every write, the source keeps none', async () => {
    const pair = await threeHostsWithGuests();
    try {
      const mostAtOnce = new Map<string, number>();
      let mostInAll = 0;
      const startedAt = Date.now();
      const batch = await evacuate(pair, (record) => (mostInAll = Math.max(mostInAll, concurrency(record, mostAtOnce))));
      const batchSeconds = Math.round((Date.now() - startedAt) / 1000);
      expect(batch.status, JSON.stringify(batch)).toBe('done');
      expect(batch.total).toMatchObject({ moved: NAMES.length, failed: 0, left: 0 });
      expect(Math.max(...mostAtOnce.values())).toBeLessThanOrEqual(1);
      // Each target has a link of its own: the batch uses both at once.
      expect(mostInAll).toBe(2);
      await report('evacuate-all', { batchSeconds, mostInAll, vms: batch.vms.map((vm) => ({ vm: vm.vm, target: vm.target, outcome: vm.outcome })) });
      // As the source names them (startDaemonPair): dst, then dst2, dst3, ...
      const hosts = new Map<string, DaemonHost>([['dst', pair.target], ...pair.more.map((host, k) => [`dst${k + 2}`, host] as const)]);
      expect(await pair.source.api.call<VmView[]>('GET', '/1.0/vms')).toEqual([]);
      for (const vm of batch.vms) {
        const host = hosts.get(vm.target ?? '');
        expect(host, `${vm.vm} went to ${String(vm.target)}`).toBeDefined();
        if (host) await expectWritesKept(host, vm.vm);
      }
    } finally {
      await pair.close();
    }
  });

  it('spreads four busy guests within each target’s incoming limit; a target cut off mid-batch keeps nothing, its guests write on at the source, the rest land with every write', async () => {
    const pair = await threeHostsWithGuests();
    try {
      const cutOff = pair.more[0] as DaemonHost;
      const link = pair.hosts.more[0];
      const mostAtOnce = new Map<string, number>();
      let cut: Promise<void> | undefined;
      let cutAt = 0;
      const endedAt = new Map<string, number>();
      const startedAt = Date.now();
      const batch = await evacuate(pair, (record) => {
        for (const vm of record.vms) if (vm.outcome !== 'running' && vm.outcome !== 'waiting' && !endedAt.has(vm.vm)) endedAt.set(vm.vm, Date.now());
        concurrency(record, mostAtOnce);
        // Mid-flight: the first guest bound for dst2 has its base there and is mirroring.
        if (!cut && record.vms.some((vm) => vm.target === 'dst2' && (vm.phase === 'mirror' || vm.phase === 'ram'))) {
          cutAt = Date.now();
          cut = link?.cut();
        }
      });
      const batchSeconds = Math.round((Date.now() - startedAt) / 1000);
      await cut;
      expect(cut, 'no guest bound for dst2 reached the mirror').toBeDefined();
      expect(batch.status, JSON.stringify(batch)).toBe('done');
      expect(new Set(batch.vms.map((vm) => vm.target))).toEqual(new Set(['dst', 'dst2']));
      expect(Math.max(...mostAtOnce.values())).toBeLessThanOrEqual(1);
      const toDst = batch.vms.filter((vm) => vm.target === 'dst');
      const toCut = batch.vms.filter((vm) => vm.target === 'dst2');
      expect(toDst.map((vm) => vm.outcome)).toEqual(toDst.map(() => 'moved'));
      expect(toCut.map((vm) => vm.outcome)).toEqual(toCut.map(() => 'failed'));
      for (const vm of toCut) expect(vm.error).toMatch(/dst2/);
      expect(batch.total).toMatchObject({ moved: toDst.length, failed: toCut.length, left: 0 });
      const seconds = (at: number | undefined) => Math.round(((at ?? NaN) - cutAt) / 100) / 10;
      await report('evacuate', {
        batchSeconds,
        cutAfterSeconds: Math.round((cutAt - startedAt) / 1000),
        vms: batch.vms.map((vm) => ({ vm: vm.vm, target: vm.target, outcome: vm.outcome, endedSecondsAfterCut: seconds(endedAt.get(vm.vm)), error: vm.error })),
      });
      // Every guest runs in exactly one place, with every write: dst's where they landed, the
      // cut target's back at the source, while its link is still down.
      expect((await pair.source.api.call<VmView[]>('GET', '/1.0/vms')).map((vm) => vm.name).sort()).toEqual(toCut.map((vm) => vm.vm).sort());
      expect((await pair.target.api.call<VmView[]>('GET', '/1.0/vms')).map((vm) => vm.name).sort()).toEqual(toDst.map((vm) => vm.vm).sort());
      for (const vm of toCut) await expectWritesKept(pair.source, vm.vm);
      for (const vm of toDst) await expectWritesKept(pair.target, vm.vm);
      // Once the link is back, the cut target drops what it had incoming (the source tells it).
      await link?.restore();
      await until('dst2 drops what it had incoming', async () => (await cutOff.api.call<unknown[]>('GET', '/1.0/vms')).length === 0 && (await qemuProcesses(cutOff.stateDir)) === 0, 90_000);
    } finally {
      await pair.close();
    }
  });
});
