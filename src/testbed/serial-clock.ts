/**
 * The host's clock on a guest's serial consoles. The guest's own clock stops while it is paused,
 * so it cannot time its blackout; the host can, by stamping each line as it appears in the
 * serial log files (the source's and the target's copy of the same guest). A background loop
 * reads what was appended every `periodMs`; the stamp is therefore late by at most one period.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface StampedLine {
  /** Host time (ms, `Date.now()`) at which the line was first seen. */
  readonly at: number;
  readonly file: string;
  readonly line: string;
}

export interface Gap {
  readonly ms: number;
  /** The lines on either side of the gap. */
  readonly before: StampedLine;
  readonly after: StampedLine;
}

interface Tail {
  readonly file: string;
  handle?: FileHandle;
  offset: number;
  partial: string;
}

export class SerialClock {
  private readonly tails: Tail[] = [];
  private readonly seen: StampedLine[] = [];
  private readonly controller = new AbortController();
  private readonly loop: Promise<void>;
  private readonly buffer = Buffer.alloc(65536);

  constructor(files: readonly string[], private readonly periodMs = 20) {
    for (const file of files) this.watch(file);
    // Background loop: owns its timer, ends with stop().
    this.loop = this.poll();
  }

  /** Starts stamping another file (the target's serial log once its VM exists). */
  watch(file: string): void {
    if (!this.tails.some((tail) => tail.file === file)) this.tails.push({ file, offset: 0, partial: '' });
  }

  lines(pattern?: RegExp): readonly StampedLine[] {
    return pattern ? this.seen.filter((entry) => pattern.test(entry.line)) : [...this.seen];
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
    for (const tail of this.tails) await tail.handle?.close();
  }

  private async poll(): Promise<void> {
    while (!this.controller.signal.aborted) {
      for (const tail of this.tails) await this.read(tail);
      await sleep(this.periodMs, undefined, { signal: this.controller.signal }).catch(() => undefined);
    }
  }

  private async read(tail: Tail): Promise<void> {
    if (!tail.handle) {
      const handle = await open(tail.file, 'r').catch(() => undefined);
      if (!handle) return;
      tail.handle = handle;
    }
    const at = Date.now();
    for (;;) {
      const { bytesRead } = await tail.handle.read(this.buffer, 0, this.buffer.length, tail.offset);
      if (bytesRead === 0) return;
      tail.offset += bytesRead;
      const text = tail.partial + this.buffer.subarray(0, bytesRead).toString('utf8');
      const parts = text.split('\n');
      tail.partial = parts.pop() ?? '';
      for (const line of parts) this.seen.push({ at, file: tail.file, line: line.replace(/\r$/, '') });
    }
  }
}

/** The longest host-clock gap between consecutive matching lines (of any file) in [from, to]. */
export function longestGap(lines: readonly StampedLine[], from = -Infinity, to = Infinity): Gap | undefined {
  const inWindow = lines.filter((entry) => entry.at >= from && entry.at <= to).sort((a, b) => a.at - b.at);
  let widest: Gap | undefined;
  for (let index = 1; index < inWindow.length; index += 1) {
    const before = inWindow[index - 1] as StampedLine;
    const after = inWindow[index] as StampedLine;
    if (!widest || after.at - before.at > widest.ms) widest = { ms: after.at - before.at, before, after };
  }
  return widest;
}
