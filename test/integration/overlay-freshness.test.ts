/**
 * Issue 16, item 1 and 2 on the real buffer: a guest writing unique 64 KiB blocks at 2 MiB/s into
 * an overlay on zfs-fuse. The written extent (wr_highest_offset of the overlay's file node) must
 * follow the guest's written bytes within one tick while st_blocks waits for ZFS's transaction
 * groups; and the write threshold the control loop arms must fire before the bin's edge is crossed.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { lx066 } from '../../src/buffer/throttle/lx066.js';
import { ControlLoop, type LoopMigration } from '../../src/migration/control-loop.js';
import type { TickTrace } from '../../src/migration/tick-trace.js';
import { CowTracker, writtenExtent, type CowReading } from '../../src/monitor/cow-tracker.js';
import { LinkTracker } from '../../src/monitor/link-tracker.js';
import { ZfsVolume } from '../../src/storage/zfs/driver-zfs.js';
import type { RunningVm } from '../../src/vm/launcher.js';
import { throttleTarget } from '../../src/vm/spec.js';
import { report } from '../support/report.js';
import { DISK, putOverlay, qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const TICK_MS = 500;
const RATE_MIB = 2;
/** What the guest writes in one tick. */
const ONE_TICK = RATE_MIB * MiB * (TICK_MS / 1000);
const scope = useScope('fresh');

/** A guest writing only unique blocks (a 48 MiB span at 2 MiB/s: 24 s without a rewrite), its overlay in a zfs buffer. */
async function writingGuest(name: string): Promise<{ vm: RunningVm; overlay: string }> {
  const pool = await scope().pool(512 * MiB);
  const volume = new ZfsVolume({ pool: pool.name, mountpoint: join(scope().dir, 'buffer') });
  await volume.create(256 * MiB);
  const base = scope().path('base.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
  const vm = await scope().bootGuest(name, base, { diskRateMiB: RATE_MIB, diskSpanMiB: 48, dirtyRateMiB: 0, verifyEvery: 0 });
  const overlay = join(volume.mountpoint, `${name}-disk0.qcow2`);
  await putOverlay(vm, base, overlay);
  return { vm, overlay };
}

describe('a fresh overlay size and an early warning on zfs-fuse', { timeout: 120_000 }, () => {
  it('the written extent tracks the bytes the guest wrote within one tick, while st_blocks lags', async () => {
    const { vm, overlay } = await writingGuest('fresh');
    const tracker = new CowTracker();
    tracker.track({ id: 'vm', path: overlay, qmp: vm.commands, nodeName: 'overlay0', fileNode: 'overlay0-file', qdev: DISK.id });
    const began = Date.now();
    const readings: CowReading[] = [];
    for (let i = 0; i < 30; i += 1) {
      const [reading] = (await tracker.sample((Date.now() - began) / 1000)).readings;
      if (reading) readings.push(reading);
      await sleep(TICK_MS);
    }
    const first = readings[0] as CowReading;
    const written = (r: CowReading) => (r.written ?? 0) - (first.written ?? 0);
    const lagOf = (size: (r: CowReading) => number) => Math.max(...readings.map((r) => written(r) - (size(r) - size(first))));
    const extentLag = lagOf((r) => r.extent ?? 0);
    const stBlocksLag = lagOf((r) => r.stBlocks);
    expect(written(readings.at(-1) as CowReading)).toBeGreaterThan(20 * MiB);
    // Every sample: the extent grew by what the guest wrote, give or take one tick of writes.
    for (const r of readings) expect(Math.abs((r.extent ?? 0) - (first.extent ?? 0) - written(r))).toBeLessThanOrEqual(ONE_TICK);
    expect(extentLag).toBeLessThanOrEqual(ONE_TICK);
    // st_blocks moves only when ZFS syncs a transaction group: it falls behind by more than a tick.
    expect(stBlocksLag).toBeGreaterThan(extentLag + ONE_TICK);
    await report('overlay-freshness', {
      samples: readings.length,
      writtenMiB: Number((written(readings.at(-1) as CowReading) / MiB).toFixed(1)),
      extentLagMiB: Number((extentLag / MiB).toFixed(2)),
      stBlocksLagMiB: Number((stBlocksLag / MiB).toFixed(2)),
    });
  });

  it("the write threshold fires before the overlay crosses its bin's edge, and the loop ticks early on it", async () => {
    const { vm, overlay } = await writingGuest('warned');
    // A 24 MiB bin the guest fills in about 12 s. The throttle is computed but not applied, so the
    // guest keeps its known rate and really reaches the edge; the threshold is armed all the same.
    const bin = 24 * MiB;
    const traces: TickTrace[] = [];
    const loop = new ControlLoop(bin, {
      periodMs: TICK_MS,
      policy: lx066,
      hysteresis: 0.1,
      actuate: false,
      assumedLinkRate: 2e6,
      cow: new CowTracker(),
      links: new LinkTracker(),
      onMustFail: () => undefined,
      onTick: (trace) => traces.push(trace),
    });
    const migration: LoopMigration = {
      id: 'warned',
      peer: 'nowhere',
      qmp: vm.commands,
      events: vm.qmp,
      overlays: [{ id: 'warned/disk0', path: overlay, qmp: vm.commands, nodeName: 'overlay0', fileNode: 'overlay0-file', qdev: DISK.id }],
      throttleTargets: [throttleTarget(DISK)],
      remainingBytes: 1e9,
      phase: 'mirror',
      throttleFactor: 1,
      throttled: true,
      lastApplied: undefined,
    };
    const crossings = vm.qmp.listen('BLOCK_WRITE_THRESHOLD');
    loop.admit(migration.id);
    loop.add(migration);
    loop.start();
    try {
      const event = await crossings.next({ timeoutMs: 40_000 });
      // Read at once: where the overlay's file ends now that QEMU said the threshold was crossed.
      const extentAtEvent = writtenExtent(await vm.commands.queryNodeBlockstats(), 'overlay0') ?? Infinity;
      expect(event.data).toMatchObject({ 'node-name': 'overlay0-file' });
      expect(Number(event.data['write-threshold'])).toBeLessThan(bin);
      expect(extentAtEvent).toBeLessThan(bin);
      // The loop ran a tick on it, between its periodic ones, that saw the overlay still inside its bin.
      for (let i = 0; i < 40 && !traces.some((t) => t.trigger === 'write-threshold'); i += 1) await sleep(50);
      const early = traces.find((t) => t.trigger === 'write-threshold');
      expect(early).toBeDefined();
      expect(early?.migrations[0]?.cow).toBeLessThan(bin);
      await report('write-threshold', {
        binMiB: bin / MiB,
        thresholdMiB: Number((Number(event.data['write-threshold']) / MiB).toFixed(2)),
        extentAtEventMiB: Number((extentAtEvent / MiB).toFixed(2)),
        earlyTickCowMiB: Number(((early?.migrations[0]?.cow ?? 0) / MiB).toFixed(2)),
      });
    } finally {
      crossings.close();
      await loop.stop();
      // Never throttled (actuate: false): nothing to lift.
      loop.remove(migration.id);
    }
  });
});
