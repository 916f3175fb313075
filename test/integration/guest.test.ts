import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { QmpCommands } from '../../src/qmp/commands.js';
import { readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { throttleTarget } from '../../src/vm/spec.js';
import { report } from '../support/report.js';
import { DISK, useScope, qemuImg, putOverlay } from '../support/testbed.js';

const scope = useScope('guest');

async function writtenBytes(commands: QmpCommands): Promise<number> {
  const stats = await commands.queryBlockstats();
  const entry = stats.find((s) => s.qdev?.includes(DISK.id));
  if (!entry) throw new Error(`no blockstats for ${DISK.id}: ${JSON.stringify(stats)}`);
  return entry.stats.wr_bytes;
}

/** Guest write rate in bytes/s over `seconds`, from QEMU's own counters (guest I/O only). */
async function writeRate(commands: QmpCommands, seconds: number): Promise<number> {
  const before = await writtenBytes(commands);
  const began = Date.now();
  await sleep(seconds * 1000);
  return ((await writtenBytes(commands)) - before) / ((Date.now() - began) / 1000);
}

describe('the tiny busy guest', { timeout: 120_000 }, () => {
  it('boots under the detected accelerator and runs its workload, verifying its own writes', async () => {
    const disk = scope().path('disk.qcow2');
    await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
    const began = Date.now();
    const vm = await scope().bootGuest('boot', disk, { diskRateMiB: 1, diskSpanMiB: 4, dirtyRateMiB: 2, verifyEvery: 2 });
    const bootSeconds = (Date.now() - began) / 1000;
    const serial = await waitForSerial(vm.spec.serialLog, (r) => r.verifications.length >= 2, 'two verifications', { timeoutMs: 60_000 });
    expect(serial.ready).toBe(true);
    expect(serial.verifications.every((v) => v.lost === 0 && v.blocks > 0)).toBe(true);
    expect(serial.ioErrors).toEqual([]);
    const rss = Number(/VmRSS:\s+(\d+)/.exec(await import('node:fs/promises').then((fs) => fs.readFile(`/proc/${vm.child.pid}/status`, 'utf8')))?.[1] ?? 0) / 1024;
    await report('guest-boot', { accel: vm.accel, secondsToFirstHeartbeat: bootSeconds, qemuRssMiB: Math.round(rss) });
  });

  it("catches a write lost behind the guest's back (negative control for the verifier)", async () => {
    const disk = scope().path('disk.qcow2');
    await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
    const vm = await scope().bootGuest('lost', disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 0, verifyEvery: 2 });
    await waitForSerial(vm.spec.serialLog, (r) => r.verifications.some((v) => v.blocks >= 32), 'a verification of written blocks');
    // Zero the whole span from the host, behind the guest's back. A verification already reading
    // the disk may not see it, so look at the next two; by then the guest has rewritten at most
    // 4 × 16 of the 128 blocks, and the rest are lost writes as far as its ledger knows.
    const seen = (await readSerial(vm.spec.serialLog)).verifications.length;
    expect(await vm.commands.humanMonitorCommand(`qemu-io -d ${throttleTarget(DISK)} "write -P 0 0 8M"`)).toBe('');
    const serial = await waitForSerial(vm.spec.serialLog, (r) => r.verifications.length >= seen + 2, 'two more verifications');
    expect(Math.max(...serial.verifications.slice(seen).map((v) => v.lost))).toBeGreaterThanOrEqual(32);
  });

  it('puts an overlay on top with blockdev-snapshot, and the overlay grows while the guest writes', async () => {
    const base = scope().path('base.qcow2');
    const overlay = scope().path('overlay.qcow2');
    await qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
    const vm = await scope().bootGuest('overlay', base, { diskRateMiB: 2, diskSpanMiB: 32, dirtyRateMiB: 0, verifyEvery: 0 });
    await putOverlay(vm, base, overlay);
    const baseBlocks = (await stat(base)).blocks;
    const sizes: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      await sleep(1500);
      sizes.push((await stat(overlay)).blocks * 512);
    }
    expect(sizes.at(-1)).toBeGreaterThan((sizes[0] ?? 0) + 1024 * 1024);
    expect((await stat(base)).blocks).toBe(baseBlocks);
    const node = (await vm.commands.queryNamedBlockNodes()).find((n) => n['node-name'] === 'overlay0');
    expect(node?.image['actual-size']).toBeGreaterThan(1024 * 1024);
    expect((await readSerial(vm.spec.serialLog)).ioErrors).toEqual([]);
  });

  it('block_set_io_throttle with a bps_wr cap slows the guest, and lifting it restores the rate', async () => {
    const disk = scope().path('disk.qcow2');
    await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
    const vm = await scope().bootGuest('throttle', disk, { diskRateMiB: 3, diskSpanMiB: 32, dirtyRateMiB: 0, verifyEvery: 0 });
    const target = throttleTarget(DISK);
    const cap = 256 * 1024;
    const free = await writeRate(vm.commands, 6);
    await vm.commands.setIoThrottle(target, { bps_wr: cap });
    await sleep(1500);
    const capped = await writeRate(vm.commands, 6);
    await vm.commands.setIoThrottle(target, {});
    await sleep(1500);
    const restored = await writeRate(vm.commands, 6);
    await report('throttle', { uncappedBps: Math.round(free), cap, cappedBps: Math.round(capped), restoredBps: Math.round(restored), ratio: Number((capped / free).toFixed(3)) });
    expect(free).toBeGreaterThan(4 * cap);
    expect(capped).toBeLessThan(1.3 * cap);
    expect(restored).toBeGreaterThan(0.6 * free);
  });
});
