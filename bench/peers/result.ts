/** One run's figures, judged alike for every peer, and the markdown table they make. */
import { setTimeout as sleep } from 'node:timers/promises';
import { readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { SerialClock } from '../../src/testbed/serial-clock.js';
import { allocatedBytes, heartbeatRate, iterationMs, MiB, quantile, txBytes } from './measure.js';
import { linkBytesPerSecond, type Workload } from './workloads.js';

export interface GuestRun {
  readonly sourceSerial: string;
  /** Its serial log on the target, once a target VM exists. */
  readonly targetSerial: string | undefined;
  /** Source STOP → target RESUME, host clock (NaN when it never resumed there). */
  readonly blackoutMs: number;
  /** Why this guest's migration failed, if it did. */
  readonly error?: string;
}

export interface RunResult {
  readonly peer: string;
  readonly workload: string;
  readonly completed: boolean;
  readonly why: string;
  readonly ioErrors: number;
  readonly seconds: number;
  readonly floorSeconds: number;
  readonly wireMiB: number;
  readonly blackoutMs: number;
  /** Guest MiB/s written before the migration (what "retained" is a share of). */
  readonly writeMiBs: number;
  readonly retained: number;
  readonly iterationP99Ms: number;
  readonly daemonCpuS: number | undefined;
}

export interface RunFacts {
  readonly peer: string;
  readonly workload: Workload;
  readonly clock: SerialClock;
  /** Host ms: the heartbeats before `began` (from `warmFrom`) are the guest's unhindered rate. */
  readonly warmFrom: number;
  readonly began: number;
  readonly ended: number;
  readonly guests: readonly GuestRun[];
  readonly wireBytes: number;
  /** Guest data on the disks plus guest RAM: what must cross at the least. */
  readonly floorBytes: number;
  readonly daemonCpuS?: number;
}

const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

/** A guest counts as migrated only once it writes on the target (QEMU's `completed` is not enough). */
async function arrived(guest: GuestRun): Promise<string | undefined> {
  if (guest.error) return guest.error;
  if (!guest.targetSerial) return 'no target VM';
  const shown = await waitForSerial(guest.targetSerial, (r) => r.heartbeats.length >= 2, 'heartbeats on the target', { timeoutMs: 30_000 }).catch(() => undefined);
  return shown ? undefined : 'the guest does not run on the target';
}

export async function summarize(facts: RunFacts): Promise<RunResult> {
  const whys = await Promise.all(facts.guests.map(arrived));
  let ioErrors = 0;
  for (const guest of facts.guests) {
    for (const file of [guest.sourceSerial, guest.targetSerial]) if (file) ioErrors += (await readSerial(file)).ioErrors.length;
  }
  const beats = facts.guests.map((guest) => facts.clock.lines(/^HB /).filter((line) => line.file === guest.sourceSerial));
  const before = beats.map((lines) => heartbeatRate(lines.filter((line) => line.at >= facts.warmFrom && line.at <= facts.began)));
  const during = beats.map((lines) => lines.filter((line) => line.at >= facts.began && line.at <= facts.ended));
  const failures = whys.filter((why): why is string => why !== undefined);
  return {
    peer: facts.peer,
    workload: facts.workload.name,
    completed: failures.length === 0,
    why: [...new Set(failures)].join('; '),
    ioErrors,
    seconds: (facts.ended - facts.began) / 1000,
    floorSeconds: facts.floorBytes / linkBytesPerSecond(facts.workload),
    wireMiB: facts.wireBytes / MiB,
    blackoutMs: Math.max(...facts.guests.map((g) => g.blackoutMs)),
    writeMiBs: mean(before),
    retained: mean(during.map((lines, i) => heartbeatRate(lines) / (before[i] ?? NaN))),
    iterationP99Ms: quantile(during.flatMap(iterationMs), 0.99),
    daemonCpuS: facts.daemonCpuS,
  };
}

/** Seconds of heartbeats before the migration that give the guest's own write rate. */
const WARM_MS = 10_000;

export interface Measured {
  readonly peer: string;
  readonly workload: Workload;
  /** The source guests' serial logs, already booting. */
  readonly serials: readonly string[];
  /** The link's source end (namespace, device): its tx counter is the bytes on the wire. */
  readonly link: { readonly ns: string; readonly dev: string };
  /** The guests' disks: their data when the migration starts, with their RAM, is the floor. */
  readonly disks: readonly string[];
  /** CPU seconds of the migration daemons so far, where there are any. */
  readonly cpu?: () => Promise<number>;
}

/**
 * Waits for the guests' heartbeats, measures their rate undisturbed, then times `migrate` (which
 * adds the targets' serial logs to the clock) and judges the outcome.
 */
export async function measured(run: Measured, migrate: (clock: SerialClock, floorSeconds: number) => Promise<GuestRun[]>): Promise<RunResult> {
  const clock = new SerialClock(run.serials);
  try {
    for (const serial of run.serials) await waitForSerial(serial, (r) => r.heartbeats.length > 1, 'heartbeats', { timeoutMs: 90_000 });
    const warmFrom = Date.now();
    await sleep(WARM_MS);
    const began = Date.now();
    const [tx0, cpu0, data] = await Promise.all([txBytes(run.link.ns, run.link.dev), run.cpu?.(), Promise.all(run.disks.map(allocatedBytes))]);
    const floorBytes = data.reduce((a, b) => a + b, 0) + run.disks.length * run.workload.memoryMiB * MiB;
    const guests = await migrate(clock, floorBytes / linkBytesPerSecond(run.workload));
    const ended = Date.now();
    const [tx1, cpu1] = await Promise.all([txBytes(run.link.ns, run.link.dev), run.cpu?.()]);
    const facts = { peer: run.peer, workload: run.workload, clock, warmFrom, began, ended, guests, wireBytes: tx1 - tx0, floorBytes };
    return await summarize(cpu0 === undefined || cpu1 === undefined ? facts : { ...facts, daemonCpuS: cpu1 - cpu0 });
  } finally {
    await clock.stop();
  }
}

const num = (value: number | undefined, digits: number) => (value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits));

export function markdownTable(results: readonly RunResult[]): string {
  const head = '| workload | peer | outcome | guest I/O errors | total s | ÷ floor | wire MiB | blackout ms | guest writes MiB/s before | writes kept | loop p99 ms | daemon CPU s |';
  const rows = results.map((r) =>
    [
      r.workload,
      r.peer,
      r.completed ? 'completed' : `failed: ${r.why}`,
      String(r.ioErrors),
      num(r.seconds, 1),
      num(r.seconds / r.floorSeconds, 2),
      num(r.wireMiB, 0),
      num(r.blackoutMs, 0),
      num(r.writeMiBs, 1),
      num(r.retained, 2),
      num(r.iterationP99Ms, 0),
      num(r.daemonCpuS, 1),
    ].join(' | '),
  );
  return [head, `|${' --- |'.repeat(12)}`, ...rows.map((row) => `| ${row} |`)].join('\n');
}
