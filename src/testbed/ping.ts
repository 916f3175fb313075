/**
 * Pings a guest from the client namespace throughout a migration: what a user of the guest sees.
 * iputils `ping -D` stamps each reply with the host's clock (the guest's own clock stops while
 * it is paused, so only the host can time a blackout), every 50 ms; the report is computed from
 * the log once ping has stopped, so nothing is read or timed while it runs.
 */
import { readFile } from 'node:fs/promises';
import { CowbufError, ValidationError } from '../errors.js';
import { spawn } from '../exec/run.js';

const INTERVAL_S = '0.05';

export interface PingReport {
  readonly transmitted: number;
  /** Distinct requests answered (duplicates not counted, as ping counts them). */
  readonly received: number;
  /**
   * The longest time without a reply between the first reply and the stop: between two
   * consecutive replies, or from the last one to the stop (a guest that never answers again).
   * The wait for the first reply is not counted (ARP, a guest still booting). With no reply at
   * all, the whole run.
   */
  readonly longestGapMs: number;
}

export interface Pinger {
  readonly logFile: string;
  /** Stops ping (SIGINT, so it prints its statistics) and reports. @throws CowbufError when ping had died */
  stop(): Promise<PingReport>;
}

/**
 * Reads a `ping -D` log. `startedAtMs` and `stoppedAtMs` are host times (`Date.now()`).
 * @throws CowbufError when the log has no statistics line (ping died or never ran)
 */
export function parsePing(log: string, startedAtMs: number, stoppedAtMs: number): PingReport {
  const stats = /^(\d+) packets transmitted, (\d+) received/m.exec(log);
  if (!stats) throw new CowbufError(`ping log has no statistics (ping died?); it ends: ${log.trim().split('\n').slice(-3).join(' | ') || '(empty)'}`);
  const replies = new Map<number, number>();
  for (const match of log.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from \S+ icmp_seq=(\d+)/gm)) {
    const seq = Number(match[2]);
    if (!replies.has(seq)) replies.set(seq, Number(match[1]) * 1000);
  }
  const times = [...replies.values()].sort((a, b) => a - b);
  let longestGapMs = times.length === 0 ? stoppedAtMs - startedAtMs : Math.max(0, stoppedAtMs - (times.at(-1) ?? stoppedAtMs));
  for (let i = 1; i < times.length; i += 1) longestGapMs = Math.max(longestGapMs, (times[i] ?? 0) - (times[i - 1] ?? 0));
  return { transmitted: Number(stats[1]), received: Number(stats[2]), longestGapMs: Math.round(longestGapMs) };
}

/**
 * Starts pinging `ip` from inside namespace `netns`, every 50 ms, logging to `logFile`.
 * @throws ValidationError when `ip` is not an IPv4 address
 */
export function startPing(netns: string, ip: string, logFile: string): Pinger {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) throw new ValidationError('ip', ip, 'an IPv4 address');
  const startedAtMs = Date.now();
  const child = spawn('ping', ['-D', '-n', '-i', INTERVAL_S, ip], { netns, logFile });
  return {
    logFile,
    stop: async () => {
      const stoppedAtMs = Date.now();
      child.kill('SIGINT');
      await child.exited;
      return parsePing(await readFile(logFile, 'utf8'), startedAtMs, stoppedAtMs);
    },
  };
}
