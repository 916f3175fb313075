/**
 * The migration engine on the real test bed (two namespaced cowbufd, 100 Mbit/s tbf link, a busy
 * TCG guest), measuring what issue 6 asks:
 *  - wall time ÷ (bytes moved ÷ shaped link rate), bytes moved = what the peer acknowledged;
 *  - the guest's write throughput while migrating ÷ before (from its own heartbeats);
 *  - throttle actuation latency (block_set_io_throttle round trip), p50 and p99, against the
 *    baseline of the same ticks: the monitor's round trip for a read-only query on the same VM
 *    (under TCG the vCPU thread holds QEMU's big lock, and every command waits for it alike);
 *  - control tick lag (how much later than its period each tick ran), p99, and how many ticks a
 *    write threshold ran early;
 *  - the blackout: the record's (source STOP → target RESUME, QMP event times) and the longest
 *    host-clock gap between the guest's TICK lines on either host's serial console, p50 and max.
 * Needs root and the test bed. `npx tsx bench/migration.ts [runs=3]`
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TickTrace } from '../src/migration/tick-trace.js';
import type { MigrationRecord } from '../src/migration/engine.js';
import { blackoutText } from '../src/migration/source.js';
import { run } from '../src/exec/run.js';
import { startDaemonPair } from '../src/testbed/daemons.js';
import { guestVmBody, readSerial, waitForSerial, type SerialReport } from '../src/testbed/guest.js';
import { SerialClock, longestGap } from '../src/testbed/serial-clock.js';
import { ensureZfsFuse, stopZfsFuse } from '../src/testbed/zfs.js';
import { heartbeatRate, quantile } from './peers/measure.js';

const LINK = 100e6 / 8;
const runs = Number(process.argv[2] ?? 3);
const root = new URL('../build/bench/', import.meta.url).pathname;
await mkdir(root, { recursive: true });
const startedZfs = await ensureZfsFuse();

/** MiB/s written by the guest between two serial snapshots (16 blocks of 64 KiB = 1 MiB). */
function writeRate(a: SerialReport, b: SerialReport, seconds: number): number {
  return ((b.heartbeats.at(-1)?.seq ?? 0) - (a.heartbeats.at(-1)?.seq ?? 0)) / 16 / seconds;
}

const results: Array<{ ratio: number; retained: number; p50: number; p99: number; monitorP99: number; lagP99: number; early: number; seconds: number; movedMiB: number; blackoutMs: number; gapMs: number; parts: string }> = [];
for (let i = 0; i < runs; i += 1) {
  const dir = await mkdtemp(join(root, 'run-'));
  const pair = await startDaemonPair({ dir, bufferSize: 256 * 1024 ** 2, linkRate: '100mbit' });
  try {
    const disk = join(dir, 'guest.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '256M']);
    await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 7 128M 96M', disk]);
    const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', guestVmBody('bench', disk, { diskRateMiB: 2, diskSpanMiB: 32, dirtyRateMiB: 8, verifyEvery: 0 }, 256));
    await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > 2, 'heartbeats');
    const idle0 = await readSerial(vm.serialLog);
    await sleep(10_000);
    const idle1 = await readSerial(vm.serialLog);
    const before = writeRate(idle0, idle1, 10);

    const ticks: TickTrace[] = [];
    const controller = new AbortController();
    const events = pair.source.api.events((event) => {
      if (event.type === 'tick') ticks.push(event.metadata as TickTrace);
    }, controller.signal);
    const clock = new SerialClock([vm.serialLog]);
    const began = Date.now();
    const op = await pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm: 'bench', target: 'dst' });
    clock.watch(join(pair.target.stateDir, 'vms', op.id, 'serial.log'));
    const done = await pair.source.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${op.id}/wait`);
    const seconds = (Date.now() - began) / 1000;
    // The target guest's first ticks show it runs; a second more shows the gap is over.
    await sleep(2000);
    await clock.stop();
    const gap = longestGap(clock.lines(/^TICK /), began);
    controller.abort();
    await events;
    if (done.metadata.phase !== 'completed') throw new Error(`run ${i}: ${done.metadata.error ?? done.metadata.phase}`);
    const moved = Math.max(...ticks.flatMap((t) => t.links.map((l) => l.bytesAcked)));
    const latencies = ticks.flatMap((t) => t.migrations.flatMap((m) => (m.actuationMs === undefined ? [] : [m.actuationMs])));
    const monitor = ticks.flatMap((t) => t.migrations.flatMap((m) => (m.monitorMs === undefined ? [] : [m.monitorMs])));
    results.push({
      ratio: seconds / (moved / LINK),
      retained: heartbeatRate(clock.lines(/^HB /).filter((line) => line.file === vm.serialLog && line.at >= began)) / before,
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      monitorP99: quantile(monitor, 0.99),
      lagP99: quantile(ticks.map((t) => t.lagMs), 0.99),
      early: ticks.filter((t) => t.trigger === 'write-threshold').length,
      seconds,
      movedMiB: moved / 1024 ** 2,
      blackoutMs: done.metadata.blackout?.ms ?? NaN,
      gapMs: gap?.ms ?? NaN,
      parts: done.metadata.blackout ? blackoutText(done.metadata.blackout) : 'none',
    });
  } finally {
    await pair.close();
    await rm(dir, { recursive: true, force: true });
  }
}
if (startedZfs) await stopZfsFuse();
console.log('run  seconds  moved MiB  wall÷(moved÷link)  writes kept  actuation p50 ms  p99 ms  monitor p99 ms  p99÷monitor  tick lag p99 ms  early ticks  blackout ms  tick gap ms');
results.forEach((r, i) =>
  console.log(
    `${String(i + 1).padStart(3)} ${r.seconds.toFixed(1).padStart(8)} ${r.movedMiB.toFixed(1).padStart(10)} ${r.ratio.toFixed(3).padStart(18)} ${r.retained.toFixed(3).padStart(12)} ${r.p50.toFixed(2).padStart(17)} ${r.p99.toFixed(2).padStart(7)} ${r.monitorP99.toFixed(2).padStart(15)} ${(r.p99 / r.monitorP99).toFixed(2).padStart(12)} ${r.lagP99.toFixed(1).padStart(16)} ${String(r.early).padStart(12)} ${r.blackoutMs.toFixed(0).padStart(12)} ${r.gapMs.toFixed(0).padStart(12)}`,
  ),
);
results.forEach((r, i) => console.log(`run ${i + 1} blackout ${r.parts}`));
const blackouts = results.map((r) => r.blackoutMs);
const gaps = results.map((r) => r.gapMs);
console.log(`blackout (record) p50 ${quantile(blackouts, 0.5).toFixed(0)} ms, max ${Math.max(...blackouts).toFixed(0)} ms; tick gap (host clock) p50 ${quantile(gaps, 0.5).toFixed(0)} ms, max ${Math.max(...gaps).toFixed(0)} ms`);
