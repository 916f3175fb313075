/**
 * Calibration (issue 17, item 4): each scenario of bench/calibration/ runs for real (two
 * namespaced cowbufd, a tbf-shaped link, real TCG guests, the zfs-fuse buffer) and in the
 * simulator, and the table puts makespan, overlay peak and retained writes side by side with the
 * sim ÷ real ratio (goal: within 15 %).
 *
 * The scenario maps onto the test bed one to one: `disk` is the base's allocated data, `ram` the
 * guest's memory, `writeRate`/`workingSet`/`ramDirtyRate`/`ramWorkingSet` the guest's workload (it
 * writes 64 KiB blocks cycling over the set: `writePattern: sequential`), `control` the daemons'
 * settings. What the bed itself measures goes into the simulator as inputs, never its results:
 * the link rate the daemon's tracker saw (a busy 2-core host delivers less than the tbf rate),
 * how long the engine's `target` phase took (the target's QEMU starting under TCG), and the RAM
 * an idle guest of that size holds (pre-copy sends zero pages as headers), measured once by
 * migrating one.
 *
 * Needs root and the test bed. `npx tsx bench/calibrate.ts [--sim|--replay] [--timeline] [name…]` (--sim:
 * simulator only, without the bed's inputs; --replay: simulator only, against the last real run
 * saved in build/bench/; --timeline: each migration's control loop real beside simulated, on stderr)
 */
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { load, phaseShares, save, throttledWindow, timeline, windows, type MigrationTrace, type TickRow, type WrittenPoint } from './calibrate-trace.js';
import type { TickTrace } from '../src/migration/tick-trace.js';
import type { MigrationRecord } from '../src/migration/engine.js';
import { CowbufError } from '../src/errors.js';
import { run } from '../src/exec/run.js';
import { simPolicy } from '../src/sim/policies.js';
import { parseScenario, type Scenario } from '../src/sim/scenario.js';
import { simulate } from '../src/sim/simulate.js';
import { startDaemonPair } from '../src/testbed/daemons.js';
import { guestVmBody, waitForSerial } from '../src/testbed/guest.js';
import { SerialClock, type StampedLine } from '../src/testbed/serial-clock.js';
import { ensureZfsFuse, stopZfsFuse } from '../src/testbed/zfs.js';

const MiB = 1024 ** 2;
const POLICY = 'deadline';

interface Measured {
  readonly makespan: number;
  readonly peakOverlay: number;
  readonly retained: number;
  readonly failed: number;
  readonly traces: readonly MigrationTrace[];
}

interface RealRun extends Measured {
  /** What the daemon's link tracker measured the link at (median of the ticks' U), bytes/s. */
  readonly linkRate: number;
  /** Mean seconds of the engine's `target` phase (the target's QEMU starting). */
  readonly targetStart: number;
}

/** What the test bed measured of the link, the engine and the guests: the simulator's inputs. */
interface Inputs {
  readonly real?: RealRun;
  /** RAM holding data in an idle guest of each memory size, bytes. */
  readonly footprints?: ReadonlyMap<number, number>;
}

const args = process.argv.slice(2);
const replay = args.includes('--replay');
const simOnly = replay || args.includes('--sim');
const showTimeline = args.includes('--timeline');
const only = args.filter((arg) => !arg.startsWith('--'));
const dir = new URL('calibration/', import.meta.url).pathname;
const scenarios: Scenario[] = [];
for (const file of (await readdir(dir)).filter((name) => name.endsWith('.json')).sort()) {
  const scenario = parseScenario(JSON.parse(await readFile(join(dir, file), 'utf8')));
  if (only.length === 0 || only.some((name) => scenario.name.includes(name))) scenarios.push(scenario);
}

/**
 * The guest's resident RAM: an idle guest's (what its migration's single pass sent) plus the
 * tmpfs file it dirties, filled before the migration starts.
 */
function resident(m: Scenario['migrations'][number], footprints: ReadonlyMap<number, number> | undefined): number | undefined {
  const idle = footprints?.get(m.ram);
  return idle === undefined ? m.ramResident : Math.min(m.ram, idle + (m.ramWorkingSet ?? 0));
}

function simRun(scenario: Scenario, inputs: Inputs = {}): Measured {
  const { real } = inputs;
  const measured = {
    ...scenario,
    link: real ? { ...scenario.link, bandwidth: real.linkRate } : scenario.link,
    control: real ? { ...scenario.control, targetStartSeconds: real.targetStart } : scenario.control,
    migrations: scenario.migrations.map((m) => ({ ...m, ramResident: resident(m, inputs.footprints) })),
  };
  const ticks = new Map<string, TickRow[]>();
  const writes = new Map<string, WrittenPoint[]>();
  const result = simulate(measured, simPolicy(POLICY), {
    onTick: (line) => {
      for (const m of line.migrations) {
        const start = scenario.migrations.find((spec) => spec.id === m.id)?.start ?? 0;
        const t = line.t + scenario.tickSeconds - start;
        const rows = ticks.get(m.id) ?? [];
        const inForce = m.applied ?? Infinity;
        rows.push({ t, phase: m.phase, gamma: m.throttle ?? Infinity, inForce, applied: rows.at(-1)?.inForce !== inForce, cow: m.cow, remaining: m.remainingBytes, share: m.linkShare, unique: m.uniqueFraction });
        ticks.set(m.id, rows);
        writes.set(m.id, [...(writes.get(m.id) ?? []), { t, bytes: m.written }]);
      }
    },
  });
  const traces = result.migrations.map((m): MigrationTrace => ({ id: m.id, seconds: m.seconds, wanted: m.wantedWriteBytes, written: m.writtenBytes, ticks: ticks.get(m.id) ?? [], writes: writes.get(m.id) ?? [] }));
  return { makespan: result.makespanSeconds, peakOverlay: result.peakBufferBytes, retained: result.retainedWriteFraction, failed: result.failed + result.unfinished, traces };
}

/** Migrates an idle guest of each memory size once: with nothing re-dirtied, RAM sent = RAM holding data. */
async function footprints(sizes: ReadonlySet<number>, root: string): Promise<Map<number, number>> {
  const runDir = await mkdtemp(join(root, 'footprint-'));
  const pair = await startDaemonPair({ dir: runDir, bufferSize: 64 * MiB, linkRate: '1gbit' });
  try {
    const found = new Map<number, number>();
    for (const ram of sizes) {
      const name = `idle${ram / MiB}`;
      const disk = join(runDir, `${name}.qcow2`);
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
      const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', guestVmBody(name, disk, { diskRateMiB: 0, diskSpanMiB: 1, dirtyRateMiB: 0, verifyEvery: 0, tickMs: 0 }, ram / MiB));
      await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > 2, `heartbeats of ${name}`, { timeoutMs: 120_000 });
      const op = await pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm: name, target: 'dst' });
      const done = await pair.source.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${op.id}/wait`);
      if (done.metadata.phase !== 'completed') throw new CowbufError(`idle guest ${name} did not migrate: ${done.metadata.error ?? done.metadata.phase}`);
      found.set(ram, done.metadata.progress.ramTransferred);
      console.error(`idle guest of ${mib(ram)} MiB: RAM sent ${mib(done.metadata.progress.ramTransferred)} MiB`);
    }
    return found;
  } finally {
    await pair.close();
    await rm(runDir, { recursive: true, force: true });
  }
}

function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** Seconds a migration spent in `phase`, from the phases its records went through. */
function phaseSeconds(seen: ReadonlyArray<{ phase: string; at: number }>, phase: string): number {
  const index = seen.findIndex((p) => p.phase === phase);
  return index >= 0 ? (seen[index + 1]?.at ?? seen[index]?.at ?? 0) - (seen[index]?.at ?? 0) : 0;
}

const seqOf = (line: StampedLine) => Number(/seq=(\d+)/.exec(line.line)?.[1] ?? 0);
const tookOf = (line: StampedLine) => Number(/took=(\d+)ms/.exec(line.line)?.[1] ?? 0) / 1000;

async function realRun(scenario: Scenario, root: string): Promise<RealRun> {
  const runDir = await mkdtemp(join(root, `${scenario.name}-`));
  const { control } = scenario;
  const pair = await startDaemonPair({
    dir: runDir,
    bufferSize: scenario.bufferSize,
    linkRate: `${Math.round((scenario.link.bandwidth * 8) / 1000)}kbit`,
    migration: {
      policy: POLICY,
      controlPeriodMs: Math.round(control.periodSeconds * 1000),
      hysteresis: control.hysteresis,
      mirrorReadySeconds: control.mirrorReadySeconds,
      assumedLinkRate: `${Math.round((control.assumedLinkRate * 8) / 1000)}kbit`,
      // The simulator admits every migration at its start: so does the daemon here.
      minBin: '1MiB',
    },
  });
  // Host-stamped heartbeats, stamped as they appear: a clock started later would stamp every line
  // already logged with its first read, and a guest first read after its migration's start would
  // count all it wrote since boot. The source's log stops at the switchover (and goes with the VM).
  const clock = new SerialClock([]);
  try {
    const serials = new Map<string, string>();
    for (const m of scenario.migrations) {
      const disk = join(runDir, `${m.id}.qcow2`);
      const span = Math.ceil((m.workingSet ?? m.disk) / MiB);
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, `${Math.max(span, Math.ceil(m.disk / MiB)) * 2}M`]);
      // The base's data: what the base phase ships (the guest's own pre-migration writes land inside it).
      await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 7 0 ${Math.ceil(m.disk / MiB)}M`, disk]);
      const workload = { diskRateMiB: m.writeRate / MiB, diskSpanMiB: span, dirtyRateMiB: m.ramDirtyRate / MiB, dirtySpanMiB: Math.ceil((m.ramWorkingSet ?? m.ram) / MiB), verifyEvery: 0, tickMs: 0 };
      const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', guestVmBody(m.id, disk, workload, Math.round(m.ram / MiB)));
      serials.set(m.id, vm.serialLog);
      clock.watch(vm.serialLog);
    }
    for (const [id, serial] of serials) await waitForSerial(serial, (r) => r.heartbeats.length > 2, `heartbeats of ${id}`, { timeoutMs: 120_000 });
    // The RAM a guest dirties is filled before it migrates (resident() counts it).
    const fill = Math.max(...scenario.migrations.map((m) => (m.ramDirtyRate > 0 ? (m.ramWorkingSet ?? m.ram) / m.ramDirtyRate : 0)));
    await sleep(fill * 1000);

    let peakOverlay = 0;
    let moved = 0;
    const linkRates: number[] = [];
    const phases = new Map<string, Array<{ phase: string; at: number }>>();
    const vmOf = new Map<string, string>();
    // Per VM, the loop's ticks stamped with the host clock (ms) and seconds from the run's start.
    const ticks = new Map<string, Array<TickRow & { readonly at: number }>>();
    const began = Date.now();
    const controller = new AbortController();
    const events = pair.source.api.events((event) => {
      if (event.type === 'migration') {
        const record = event.metadata as MigrationRecord;
        vmOf.set(record.id, record.vm);
        const seen = phases.get(record.vm) ?? [];
        if (seen.at(-1)?.phase !== record.phase) seen.push({ phase: record.phase, at: (Date.now() - began) / 1000 });
        phases.set(record.vm, seen);
      }
      if (event.type !== 'tick') return;
      const trace = event.metadata as TickTrace;
      const at = Date.now();
      for (const m of trace.migrations) {
        const vm = vmOf.get(m.id) ?? m.id;
        const rows = ticks.get(vm) ?? [];
        const drive = m.drives?.[0];
        rows.push({ at, t: (at - began) / 1000, phase: phases.get(vm)?.at(-1)?.phase ?? '?', gamma: m.throttle, inForce: drive ?? Infinity, applied: m.applied, cow: m.cow, remaining: m.remainingBytes, share: m.linkShare, unique: m.uniqueFraction, ...(m.written !== undefined ? { written: m.written } : {}) });
        ticks.set(vm, rows);
      }
      peakOverlay = Math.max(peakOverlay, trace.migrations.reduce((sum, m) => sum + m.cow, 0));
      if (trace.migrations.length > 0) linkRates.push(...trace.links.filter((l) => l.rate > 0).map((l) => l.rate));
      moved = Math.max(moved, ...trace.links.map((l) => l.bytesAcked));
    }, controller.signal);
    const outcomes = await Promise.all(
      scenario.migrations.map(async (m) => {
        await sleep(m.start * 1000);
        const from = Date.now();
        const op = await pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm: m.id, target: 'dst' });
        const done = await pair.source.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${op.id}/wait`);
        const ended = Date.now();
        // Counted over the whole migration: a guest stalled by its throttle prints no heartbeat.
        const beats = clock.lines(/^HB /).filter((line) => line.file === serials.get(m.id) && line.at <= ended);
        const start = beats.filter((line) => line.at <= from).at(-1) ?? beats[0];
        const last = beats.at(-1);
        const written = start && last ? (seqOf(last) - seqOf(start)) * 64 * 1024 : 0;
        const wanted = (m.writeRate * (ended - from)) / 1000;
        // From 15 s before: what the guest wrote unthrottled shows beside the migration.
        const writes = beats.filter((line) => line.at >= from - 15_000).map((line): WrittenPoint => ({ t: (line.at - from) / 1000, bytes: (seqOf(line) - seqOf(start ?? line)) * 64 * 1024, took: tookOf(line) }));
        const rows = (ticks.get(m.id) ?? []).filter((row) => row.at >= from && row.at <= ended).map(({ at, ...row }) => ({ ...row, t: (at - from) / 1000 }));
        const offset = (from - began) / 1000;
        const seen = (phases.get(m.id) ?? []).map((p) => ({ phase: p.phase, t: p.at - offset }));
        const trace: MigrationTrace = { id: m.id, seconds: (ended - from) / 1000, wanted, written, ticks: rows, writes, phases: seen };
        const p = done.metadata.progress;
        console.error(`${scenario.name} ${m.id}: ${((ended - began) / 1000).toFixed(1)} s, base ${mib(p.baseTotal)} MiB, mirror ${mib(p.mirrorCopied)} MiB, RAM ${mib(p.ramTransferred)} of ${mib(p.ramTotal)} MiB, cpu throttle ${p.cpuThrottlePercent} %, written ${mib(written)} MiB of ${mib(wanted)}`);
        // The table's figure: what the drive took while throttled (heartbeats above are the cross-check).
        const drive = throttledWindow(trace, m.writeRate) ?? { written, wanted };
        return { ended, written: drive.written, wanted: drive.wanted, completed: done.metadata.phase === 'completed', trace };
      }),
    );
    controller.abort();
    await events;
    console.error(`${scenario.name}: link acknowledged ${mib(moved)} MiB`);
    for (const [vm, seen] of phases) console.error(`${scenario.name} ${vm}: ${seen.map((p) => `${p.phase}@${p.at.toFixed(1)}`).join(' ')}`);
    const wanted = outcomes.reduce((sum, o) => sum + o.wanted, 0);
    return {
      makespan: (Math.max(...outcomes.map((o) => o.ended)) - began) / 1000,
      peakOverlay,
      retained: wanted > 0 ? outcomes.reduce((sum, o) => sum + o.written, 0) / wanted : 1,
      failed: outcomes.filter((o) => !o.completed).length,
      linkRate: median(linkRates),
      targetStart: mean([...phases.values()].map((seen) => phaseSeconds(seen, 'target'))),
      traces: outcomes.map((o) => o.trace),
    };
  } finally {
    await clock.stop();
    await pair.close();
    await rm(runDir, { recursive: true, force: true });
  }
}

const ratio = (sim: number, real: number) => (real > 0 ? (sim / real).toFixed(3) : '–');
const mib = (bytes: number) => (bytes / MiB).toFixed(1);

console.log('| scenario | guests | link Mbit/s tbf → measured | target start s | makespan s real / sim / ratio | overlay peak MiB real / sim / ratio | writes kept real / sim / ratio | failed real / sim |');
console.log('|---|---|---|---|---|---|---|---|');
const root = new URL('../build/bench/', import.meta.url).pathname;
await mkdir(root, { recursive: true });
const startedZfs = simOnly ? false : await ensureZfsFuse();
try {
  const saved = join(root, 'calibrate-footprints.json');
  const sizes = new Set(scenarios.flatMap((s) => s.migrations.map((m) => m.ram)));
  const idle = replay ? new Map(await load<Array<[number, number]>>(saved)) : simOnly ? undefined : await footprints(sizes, root);
  if (idle && !replay) await save(saved, [...idle]);
  for (const scenario of scenarios) {
    const runFile = join(root, `calibrate-${scenario.name}.json`);
    const real = replay ? await load<RealRun>(runFile) : simOnly ? undefined : await realRun(scenario, root);
    if (real && !replay) await save(runFile, real);
    const sim = simRun(scenario, { ...(real ? { real } : {}), ...(idle ? { footprints: idle } : {}) });
    if (real && showTimeline) {
      for (const trace of real.traces) {
        const simulated = sim.traces.find((s) => s.id === trace.id);
        if (!simulated) continue;
        const rate = scenario.migrations.find((m) => m.id === trace.id)?.writeRate ?? 0;
        console.error([`${scenario.name}`, ...timeline(trace, simulated, 2), `  real: ${phaseShares(trace)}`, `  sim:  ${phaseShares(simulated)}`, `  real kept: ${windows(trace, rate)}`].join('\n'));
      }
    }
    const link = `${((scenario.link.bandwidth * 8) / 1e6).toFixed(0)} → ${real ? ((real.linkRate * 8) / 1e6).toFixed(1) : '–'}`;
    const target = real ? real.targetStart.toFixed(1) : '–';
    const cell = (r: number | undefined, s: number, format: (v: number) => string) => (r === undefined ? `– / ${format(s)} / –` : `${format(r)} / ${format(s)} / ${ratio(s, r)}`);
    console.log(
      `| ${scenario.name} | ${scenario.migrations.length} | ${link} | ${target} | ${cell(real?.makespan, sim.makespan, (v) => v.toFixed(1))} | ${cell(real?.peakOverlay, sim.peakOverlay, mib)} | ${cell(real?.retained, sim.retained, (v) => v.toFixed(3))} | ${real?.failed ?? '–'} / ${sim.failed} |`,
    );
  }
} finally {
  if (startedZfs) await stopZfsFuse();
}
