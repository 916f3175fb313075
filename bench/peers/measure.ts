/**
 * What every peer's run is measured by, the same way whoever drives the migration: the shaped
 * veth's own byte counter, the guest's host-stamped heartbeats, QMP event times, /proc CPU ticks.
 */
import { readFile } from 'node:fs/promises';
import { run } from '../../src/exec/run.js';
import type { QmpEvent } from '../../src/qmp/events.js';
import type { StampedLine } from '../../src/testbed/serial-clock.js';

const MiB = 1024 ** 2;

/** Bytes sent so far out of `dev` in namespace `ns`: every stream of every engine crosses it. */
export async function txBytes(ns: string, dev: string): Promise<number> {
  const { stdout } = await run('ip', ['-n', ns, '-s', '-j', 'link', 'show', 'dev', dev]);
  const [link] = JSON.parse(stdout) as Array<{ stats64?: { tx?: { bytes?: number } } }>;
  return link?.stats64?.tx?.bytes ?? NaN;
}

/** Bytes of guest data a disk image holds (what any engine must ship of it). */
export async function allocatedBytes(image: string): Promise<number> {
  const { stdout } = await run('qemu-img', ['map', '-U', '--output=json', image], { timeoutMs: 60_000 });
  return (JSON.parse(stdout) as Array<{ length: number; data: boolean }>).filter((e) => e.data).reduce((sum, e) => sum + e.length, 0);
}

/** User plus system CPU seconds a live process has used (0 once it is gone). */
export async function cpuSeconds(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the parenthesised name, which may itself hold spaces: utime and stime are 14, 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100;
}

function heartbeatSeq(line: StampedLine | undefined): number {
  return Number(/seq=(\d+)/.exec(line?.line ?? '')?.[1] ?? 0);
}

/** MiB/s the guest wrote across host-stamped `HB` lines (16 blocks of 64 KiB = 1 MiB). */
export function heartbeatRate(lines: readonly StampedLine[]): number {
  const first = lines[0];
  const last = lines.at(-1);
  return first && last && last.at > first.at ? (heartbeatSeq(last) - heartbeatSeq(first)) / 16 / ((last.at - first.at) / 1000) : NaN;
}

/** The guest's own time for one loop iteration (its writes and RAM dirtying), from `took=`. */
export function iterationMs(lines: readonly StampedLine[]): number[] {
  return lines.flatMap((line) => {
    const took = /took=(\d+)ms/.exec(line.line);
    return took ? [Number(took[1])] : [];
  });
}

export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/** Host wall-clock milliseconds of a QMP event (QEMU stamps it with the host's clock). */
export function eventMs(event: QmpEvent | undefined): number {
  return event?.timestamp ? event.timestamp.seconds * 1000 + event.timestamp.microseconds / 1000 : NaN;
}

export { MiB };
