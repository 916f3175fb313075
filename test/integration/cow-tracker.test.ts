import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { CowTracker, type CowReading } from '../../src/monitor/cow-tracker.js';
import { report } from '../support/report.js';
import { DISK, useScope, qemuImg, putOverlay } from '../support/testbed.js';

const scope = useScope('cow');

describe('the cow tracker on a real overlay', { timeout: 120_000 }, () => {
  it('follows the allocated size of an overlay growing under a real guest, agrees with QMP, and learns its unique fraction', async () => {
    const base = scope().path('base.qcow2');
    const overlay = scope().path('overlay.qcow2');
    await qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
    // 2 MiB/s over a 6 MiB span: after the first 3 s every write is a rewrite.
    const vm = await scope().bootGuest('cow', base, { diskRateMiB: 2, diskSpanMiB: 6, dirtyRateMiB: 0, verifyEvery: 0 });
    await putOverlay(vm, base, overlay);
    const tracker = new CowTracker();
    tracker.track({ id: 'vm', path: overlay, qmp: vm.commands, nodeName: 'overlay0', qdev: DISK.id });
    const began = Date.now();
    const readings: CowReading[] = [];
    for (let i = 0; i < 36; i += 1) {
      const [reading] = (await tracker.sample((Date.now() - began) / 1000)).readings;
      if (reading) readings.push(reading);
      await sleep(500);
    }
    const first = readings[0];
    const last = readings.at(-1);
    expect(last?.allocated).toBeGreaterThan((first?.allocated ?? 0) + 4 * 1024 ** 2);
    for (const reading of readings) {
      expect(Math.abs((reading.actualSize ?? 0) - reading.stBlocks)).toBeLessThanOrEqual(2 * 1024 ** 2);
    }
    expect(last?.written).toBeGreaterThan(20 * 1024 ** 2);
    expect(last?.estimate.writeRate).toBeGreaterThan(1e6);
    expect(last?.estimate.uniqueFraction).toBeLessThan(0.2);
    await report('cow-tracker', {
      overlayMiB: Number(((last?.allocated ?? 0) / 1024 ** 2).toFixed(1)),
      writeRateMBps: Number(((last?.estimate.writeRate ?? 0) / 1e6).toFixed(2)),
      uniqueFractionAfterSpanFilled: Number((last?.estimate.uniqueFraction ?? 0).toFixed(3)),
    });
  });
});
