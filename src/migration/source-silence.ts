/**
 * A target whose source is gone for good (its host dead, the link never back) would keep the
 * paused incoming VM, the bases it received and its incoming slot forever: nobody is left to say
 * `abort`. So a target gives up on its own an incoming migration it has heard nothing of (no
 * peer request for it, no byte on its base, dataset, NBD or RAM streams) for longer than its
 * source takes to give it up, and discards it exactly as that source's `abort` would.
 *
 * Why the source must give up first, and why that keeps one owner: the source is the guest's
 * owner until its point of no return, and it decides alone. A source that hears nothing back
 * rolls back after `linkLostSeconds` of a stalled stream, or once a peer request of it got no
 * answer (REQUEST_TIMEOUT_MS; a dial through an outage gives up sooner), then asks the target
 * `abort` for at most ROLLBACK_ABORT_TIMEOUT_MS before its guest runs on at home (and asks again
 * in the background, abandon.ts). A target that waits longer than all that only ever carries
 * out, late, a rollback its source has already decided (or a source long dead would have): it
 * never withdraws a copy from a live source that might still complete into it, and the
 * source's later `abort` finds nothing and is answered as done. The other way round, a target
 * giving up first would race a source still counting on its copy, over a link that was only slow.
 * Whatever the timing, only a copy that cannot run is discarded. One whose QEMU holds the whole
 * guest (`completed`) or runs post-copy may be the guest's only copy, since its source may be
 * past its point of no return, waiting in doubt to be told: it is kept, paused, until the source
 * says `finish` or `abort`, as after a restart (target.ts `keep`). Discarding a copy that never
 * got all of the guest is what the death of its QEMU here would do, which a source survives at
 * every phase: its `finish` is answered `not-run`, and it resumes its own copy.
 */

import { REQUEST_TIMEOUT_MS } from '../peer/channel.js';
import type { QmpCommands } from '../qmp/commands.js';

/**
 * How long a source's rollback waits for the target to answer its `abort`, and each later ask
 * (abandon.ts); here so the target's patience follows it.
 */
export const ROLLBACK_ABORT_TIMEOUT_MS = 30_000;

/**
 * On top of the source's bounds: its link watch notices a stall on its next control tick, and
 * its rollback undoes local steps (cancels, the overlay's commit) before it asks `abort`.
 */
const SOURCE_SLACK_SECONDS = 10;

/** How long a target waits, hearing nothing, before it gives an incoming migration up. */
export function sourceGivesUpSeconds(linkLostSeconds: number): number {
  return Math.max(linkLostSeconds, REQUEST_TIMEOUT_MS / 1000) + ROLLBACK_ABORT_TIMEOUT_MS / 1000 + SOURCE_SLACK_SECONDS;
}

/** How often the target looks for silent sources. */
const SWEEP_MS = 1000;

/** A bound on QEMU's answer to `query-migrate`; a monitor this slow is left for the next sweep. */
const STATUS_TIMEOUT_MS = 10_000;

/**
 * The incoming QEMU's migration statuses in which its copy can never run (`undefined`: no QEMU
 * running, not started yet or gone). Any other (`completed`, `postcopy-*`, one QEMU may add)
 * keeps the copy.
 */
const CANNOT_RUN: ReadonlySet<string | undefined> = new Set([undefined, 'none', 'setup', 'active', 'failed', 'cancelled']);

export function mayDiscardUnheard(status: string | undefined): boolean {
  return CANNOT_RUN.has(status);
}

/**
 * A stream from the source: heard while its bytes read grow. Bytes already buffered here do not
 * count, since a cut link can leave them there for good (a splice waiting on a QEMU that waits
 * on its replies into the cut link).
 */
export interface HeardStream {
  readonly bytesRead: number;
  readonly destroyed: boolean;
}

interface Hearing {
  at: number;
  /** Requests from the source under way: it waits on us (a preflight, a launch), it is not silent. */
  busy: number;
  /** Each stream's bytes read when last looked at. */
  readonly streams: Map<HeardStream, number>;
  /** Said once that the copy is kept though its source is silent. */
  keptSaid?: boolean;
}

/** When each incoming migration last heard from its source (peer, id). `now` in ms. */
export class SilenceWatch {
  private readonly hearings = new Map<string, Hearing>();

  constructor(private readonly now: () => number = () => Date.now()) {}

  private hearing(peer: string, id: string): Hearing {
    const key = `${peer}/${id}`;
    let hearing = this.hearings.get(key);
    if (!hearing) this.hearings.set(key, (hearing = { at: 0, busy: 0, streams: new Map() }));
    hearing.at = this.now();
    return hearing;
  }

  heard(peer: string, id: string): void {
    this.hearing(peer, id);
  }

  /** A stream opened (the source spoke), and is listened to from now on. */
  stream(peer: string, id: string, socket: HeardStream): void {
    this.hearing(peer, id).streams.set(socket, socket.bytesRead);
  }

  /** A request from the source: heard when it comes and again when it is answered, not silent in between. */
  async during<T>(peer: string, id: string, work: () => Promise<T>): Promise<T> {
    const hearing = this.hearing(peer, id);
    hearing.busy += 1;
    try {
      return await work();
    } finally {
      hearing.busy -= 1;
      hearing.at = this.now();
    }
  }

  /**
   * Seconds since the source was last heard (a byte received on its streams since the last look
   * is heard now), 0 while a request of it is under way. A migration never heard of (one kept
   * over a restart) starts its silence now.
   */
  silence(peer: string, id: string): number {
    const hearing = this.hearings.get(`${peer}/${id}`) ?? this.hearing(peer, id);
    const now = this.now();
    for (const [socket, bytes] of hearing.streams) {
      if (socket.bytesRead !== bytes) {
        hearing.at = now;
        hearing.streams.set(socket, socket.bytesRead);
      }
      if (socket.destroyed) hearing.streams.delete(socket);
    }
    return hearing.busy > 0 ? 0 : (now - hearing.at) / 1000;
  }

  /** @returns true the first time it is asked for this migration */
  firstKept(peer: string, id: string): boolean {
    const hearing = this.hearings.get(`${peer}/${id}`);
    if (!hearing || hearing.keptSaid) return false;
    hearing.keptSaid = true;
    return true;
  }

  /** Forgets every migration but these (the others arrived, were aborted, or were never prepared). */
  prune(live: Iterable<{ readonly peer: string; readonly id: string }>): void {
    const keep = new Set([...live].map(({ peer, id }) => `${peer}/${id}`));
    for (const key of [...this.hearings.keys()]) if (!keep.has(key)) this.hearings.delete(key);
  }
}

export interface Unheard {
  readonly id: string;
  readonly peer: string;
  /** A `finish` under way: the source spoke, and the copy may be resuming. */
  readonly finishing?: unknown;
  readonly vm?: { running(): boolean; readonly commands: Pick<QmpCommands, 'queryMigrate'> } | undefined;
}

export interface SilencePort<T extends Unheard> {
  /** The incoming migrations by id. */
  readonly incoming: ReadonlyMap<string, T>;
  /** The cleanup of a source's `abort`. */
  discard(incoming: T): Promise<void>;
  log(message: string, migration?: string): void;
}

/**
 * Its QEMU's migration status, undefined when no QEMU runs for it. An incoming QEMU reports
 * none (no `status`) until its source's RAM stream connects.
 */
async function statusOf({ vm }: Unheard): Promise<string | undefined> {
  if (!vm?.running()) return undefined;
  return (await vm.commands.queryMigrate({ signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) })).status ?? 'none';
}

/** One look: aborts each incoming migration silent for more than `boundSeconds` whose copy cannot run. */
export async function abortUnheard<T extends Unheard>(watch: SilenceWatch, boundSeconds: number, port: SilencePort<T>): Promise<void> {
  const incoming = [...port.incoming.values()];
  watch.prune(incoming);
  for (const candidate of incoming) {
    const { id, peer } = candidate;
    if (candidate.finishing || watch.silence(peer, id) <= boundSeconds) continue;
    let status: string | undefined;
    try {
      status = await statusOf(candidate);
    } catch {
      continue;
    }
    // The source may have spoken, or a `finish` begun, while QEMU answered.
    const seconds = watch.silence(peer, id);
    if (port.incoming.get(id) !== candidate || candidate.finishing || seconds <= boundSeconds) continue;
    const heard = `nothing heard from ${peer} for ${Math.round(seconds)} s, past the ${boundSeconds} s its source takes to give up`;
    if (!mayDiscardUnheard(status)) {
      if (watch.firstKept(peer, id)) port.log(`${id}: ${heard}; kept: its incoming QEMU is ${status ?? 'unknown'}, it may hold the guest's only copy, so it waits paused for its source's \`finish\` or \`abort\``, id);
      continue;
    }
    port.log(`${id}: ${heard}; aborted here as its \`abort\` would (its incoming QEMU: ${status ?? 'not running'})`, id);
    await port.discard(candidate);
  }
}

/**
 * Looks every second until the returned stop is called; a look that fails is logged and the
 * next one tries again. Looks never overlap.
 */
export function watchUnheard<T extends Unheard>(watch: SilenceWatch, boundSeconds: number, port: SilencePort<T>): () => void {
  let looking = false;
  const timer = setInterval(() => {
    if (looking) return;
    looking = true;
    abortUnheard(watch, boundSeconds, port)
      .catch((error: Error) => port.log(`the watch for silent sources failed: ${error.message}`))
      .finally(() => (looking = false));
  }, SWEEP_MS);
  timer.unref();
  return () => clearInterval(timer);
}
