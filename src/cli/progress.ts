/** How a migration reads in a terminal (bars) and in a pipe (one plain line per change). */
import type { MigrationRecord } from '../migration/engine.js';
import type { Io } from './io.js';
import { blackoutText } from '../migration/source.js';
import { formatBytes } from '../units.js';

function bar(done: number, total: number, width = 20): string {
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const filled = Math.round(fraction * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`;
}

const rate = (bytesPerSecond: number) => `${formatBytes(bytesPerSecond)}/s`;

/** One plain line: everything `watch` shows, greppable. */
export function progressLine(record: MigrationRecord): string {
  const p = record.progress;
  const b = record.buffer;
  return [
    `${record.id}`,
    `phase=${record.phase}`,
    `base=${formatBytes(p.baseSent)}/${formatBytes(p.baseTotal)}`,
    `mirror_left=${formatBytes(p.mirrorRemaining)}`,
    `ram_left=${formatBytes(p.ramRemaining)}`,
    ...(b ? [`bin=${formatBytes(b.bin)}`, `cow=${formatBytes(b.cow)}`, `shards=${b.shards}`, `throttle=${rate(b.throttle)}`, `share=${rate(b.linkShare)}`] : []),
    ...(p.cpuThrottlePercent ? [`cpu_throttle=${p.cpuThrottlePercent}%`] : []),
    ...(record.blackout ? [`blackout_ms=${Math.round(record.blackout.ms)}`, `qemu_downtime_ms=${record.blackout.qemuDowntimeMs}`] : []),
    ...(record.error ? [`error=${JSON.stringify(record.error)}`] : []),
  ].join(' ');
}

/** A block of lines for a terminal: bars for the disk, the buffer bin and RAM. */
export function progressBlock(record: MigrationRecord): string {
  const p = record.progress;
  const b = record.buffer;
  const eta = b && b.linkShare > 0 ? Math.round((Math.max(0, p.baseTotal - p.baseSent) + p.mirrorRemaining + p.ramRemaining) / b.linkShare) : undefined;
  return [
    `${record.id}  ${record.vm} → ${record.peer}  [${record.phase}]  policy ${record.policy}${eta !== undefined ? `  ETA ~${eta}s` : ''}`,
    `  disk  ${bar(p.baseSent, p.baseTotal)}  ${formatBytes(p.baseSent)} of ${formatBytes(p.baseTotal)}, mirror left ${formatBytes(p.mirrorRemaining)}`,
    ...(b ? [`  bin   ${bar(b.cow, b.bin)}  ${formatBytes(b.cow)} of ${formatBytes(b.bin)}${b.shards ? `, ${b.shards} shard(s)` : ''}${b.frozen ? ', frozen' : ''}  γ ${rate(b.throttle)}  U/N ${rate(b.linkShare)}`] : []),
    `  ram   ${p.ramTotal ? bar(p.ramTotal - p.ramRemaining, p.ramTotal) : bar(0, 1)}  ${formatBytes(p.ramRemaining)} left${p.cpuThrottlePercent ? `, vCPU throttled up to ${p.cpuThrottlePercent} %` : ''}`,
    ...(record.blackout ? [`  blackout ${blackoutText(record.blackout)}`] : []),
    ...(record.error ? [`  error ${record.error}`] : []),
  ].join('\n');
}


/** One thing followed live: its block of lines for a terminal, its plain line for a pipe. */
export interface Shown {
  readonly key: string;
  readonly block: string;
  readonly line: string;
}

/**
 * Shows what is followed as it changes: a terminal gets the whole view redrawn in place, a pipe
 * one plain line for each thing whose line changed (never the same line twice in a row).
 */
export function liveView(io: Io): (shown: readonly Shown[]) => void {
  const lastLine = new Map<string, string>();
  let drawn = 0;
  return (shown) => {
    if (io.tty) {
      const block = shown.map((entry) => entry.block).join('\n');
      if (drawn > 0) io.stdout(`\x1b[${drawn}A\x1b[J`);
      io.stdout(`${block}\n`);
      drawn = block.split('\n').length;
      return;
    }
    for (const { key, line } of shown) {
      if (lastLine.get(key) !== line) io.stdout(`${line}\n`);
      lastLine.set(key, line);
    }
  };
}
