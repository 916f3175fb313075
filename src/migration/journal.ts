/**
 * What must survive a SIGKILL of the daemon, each write fsync'd before it counts (state-file.ts):
 * - every outgoing migration, rewritten at each phase change (history kept once final);
 * - every incoming migration while it is in flight (removed when it arrived or was aborted);
 * - the migrations that arrived here, so a source retrying `finish` across a restart is answered.
 * Documents are validated on load: a damaged file is reported, never trusted.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CowbufError } from '../errors.js';
import { OrderedWrites, readState } from '../state-file.js';
import type { Accel, VmSpec } from '../vm/spec.js';
import type { WireVm } from '../peer/protocol.js';
import type { MigrationHead } from './record.js';

export type OutgoingEntry = Readonly<MigrationHead>;

export interface IncomingEntry {
  readonly id: string;
  readonly peer: string;
  readonly dir: string;
  readonly wire: WireVm;
  readonly dataset?: string;
  /** The paused target QEMU, once started: a restarted daemon reattaches to it. */
  readonly pid?: number;
  readonly spec?: VmSpec;
  readonly accel?: Accel;
}

/** A migration that arrived here: a source asking `finish` again is answered from it. */
export interface Arrival {
  readonly migration: string;
  readonly vm: string;
  readonly at: string;
}

/** Enough to answer any source still retrying its `finish`; older arrivals are long settled. */
const ARRIVALS_KEPT = 256;

export class Journal {
  private readonly writes = new OrderedWrites();

  constructor(private readonly dir: string) {}

  async open(): Promise<void> {
    await mkdir(join(this.dir, 'outgoing'), { recursive: true, mode: 0o700 });
    await mkdir(join(this.dir, 'incoming'), { recursive: true, mode: 0o700 });
  }

  outgoing(): Promise<OutgoingEntry[]> {
    return this.loadAll<OutgoingEntry>('outgoing');
  }

  incoming(): Promise<IncomingEntry[]> {
    return this.loadAll<IncomingEntry>('incoming');
  }

  saveOutgoing(entry: OutgoingEntry): Promise<void> {
    return this.writes.write(join(this.dir, 'outgoing', `${entry.id}.json`), entry);
  }

  saveIncoming(entry: IncomingEntry): Promise<void> {
    return this.writes.write(join(this.dir, 'incoming', `${entry.id}.json`), entry);
  }

  async dropIncoming(id: string): Promise<void> {
    const path = join(this.dir, 'incoming', `${id}.json`);
    await this.writes.settled(path);
    await rm(path, { force: true });
  }

  arrivals(): Promise<Arrival[]> {
    return readState<Arrival[]>(join(this.dir, 'arrivals.json'), []);
  }

  saveArrivals(arrivals: readonly Arrival[]): Promise<void> {
    return this.writes.write(join(this.dir, 'arrivals.json'), arrivals.slice(-ARRIVALS_KEPT));
  }

  private async loadAll<T extends { id: string }>(kind: 'outgoing' | 'incoming'): Promise<T[]> {
    const dir = join(this.dir, kind);
    const files = (await readdir(dir)).filter((file) => file.endsWith('.json'));
    return Promise.all(
      files.map(async (file) => {
        const entry = await readState<Partial<T> | undefined>(join(dir, file), undefined);
        if (typeof entry?.id !== 'string') throw new CowbufError(`damaged journal entry ${join(dir, file)}`);
        return entry as T;
      }),
    );
  }
}
