/**
 * What must survive a SIGKILL of the daemon, each write fsync'd before it counts (state-file.ts):
 * - every outgoing migration, rewritten at each phase change (history kept once final);
 * - every incoming migration while it is in flight (removed when it arrived or was aborted);
 * - the VMs this daemon owns, with their pids, so a restarted daemon reattaches to them.
 * Documents are validated on load: a damaged file is reported, never trusted.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CowbufError } from '../errors.js';
import { readState, writeState } from '../state-file.js';
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

export interface OwnedVm {
  readonly spec: VmSpec;
  readonly pid: number;
  readonly accel: Accel;
  /** The migration it arrived by, if it did. */
  readonly arrivedBy?: string;
}

export class Journal {
  private readonly writes = new Map<string, Promise<void>>();

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
    return this.queue(join(this.dir, 'outgoing', `${entry.id}.json`), entry);
  }

  saveIncoming(entry: IncomingEntry): Promise<void> {
    return this.queue(join(this.dir, 'incoming', `${entry.id}.json`), entry);
  }

  async dropIncoming(id: string): Promise<void> {
    const path = join(this.dir, 'incoming', `${id}.json`);
    await this.writes.get(path);
    await rm(path, { force: true });
  }

  vms(): Promise<OwnedVm[]> {
    return readState<OwnedVm[]>(join(this.dir, 'vms.json'), []);
  }

  saveVms(vms: readonly OwnedVm[]): Promise<void> {
    return this.queue(join(this.dir, 'vms.json'), vms);
  }

  /** Writes to one file happen in order; the last one wins on disk as in memory. */
  private queue(path: string, value: unknown): Promise<void> {
    const next = (this.writes.get(path) ?? Promise.resolve()).catch(() => undefined).then(() => writeState(path, value));
    this.writes.set(path, next);
    return next;
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
