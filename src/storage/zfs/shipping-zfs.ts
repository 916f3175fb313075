/**
 * Shipping by `zfs send | zfs receive`, for a VM whose disks are a dataset of their own (LXD's
 * layout: one dataset per instance). The dataset is snapshotted as `<dataset>@cowbuf-<migration>`
 * and sent whole; it arrives as `<parent>/<migration>`, which is the disks' home from then on
 * (marked `cowbuf:home`). A dataset that holds anything besides the VM's disks would carry it
 * along (other VMs' files), so that layout, and every other, goes as raw files instead, saying
 * why. A VM whose disks are such a home takes it along when it leaves: its snapshot is taken
 * whichever way the files travel, and once the guest runs on the target `release` destroys the
 * dataset rather than leave it behind.
 */
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { StorageError } from '../../errors.js';
import type { Revert } from '../../revert.js';
import type { DiskShipping, Extent, ExtentSink, OutgoingBases, ShippedDisk } from '../shipping.js';
import type { CallOptions } from '../volume.js';
import { checkDataset, zfsDatasetMountedAt, zfsDestroy, zfsGet, zfsReceive, zfsSend, zfsSet, zfsSnapshot, zfsSnapshots } from './zfs-commands.js';

/** User property of a dataset that arrived with a VM: the migration it came by. */
const HOME = 'cowbuf:home';
/** What the target's file names must be (they travel in the `dataset` hello). */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const snapshotName = (migration: string) => `cowbuf-${migration}`;

interface Holder {
  readonly dataset: string;
  /** Entries of its mountpoint that are not the VM's disks. */
  readonly others: readonly string[];
  readonly home: boolean;
}

/** The dataset mounted at the disks' one directory, or why there is none. */
async function holderOf(disks: readonly ShippedDisk[], options: CallOptions): Promise<Holder | string> {
  const dirs = new Set(disks.map((disk) => dirname(disk.file)));
  const names = disks.map((disk) => basename(disk.file));
  if (dirs.size !== 1) return `the disks are in ${dirs.size} directories, not one dataset`;
  if (new Set(names).size !== names.length || !names.every((name) => FILE_NAME.test(name))) return `the disks' file names (${names.join(', ')}) cannot travel in a dataset`;
  const dir = [...dirs][0] as string;
  const dataset = await zfsDatasetMountedAt(dir, options);
  if (!dataset) return `${dir} is not the mountpoint of a ZFS dataset`;
  const others = (await readdir(dir)).filter((entry) => !names.includes(entry)).sort();
  const home = ((await zfsGet(dataset, [HOME], options))?.get(HOME) ?? '-') !== '-';
  return { dataset, others, home };
}

/** Why the disks go as raw files; undefined when a dataset was never an option worth a word. */
function rawBecause(holder: Holder | string, targetReceivesDatasets: boolean): string | undefined {
  if (typeof holder === 'string') return targetReceivesDatasets ? holder : undefined;
  const listed = `${holder.others.slice(0, 5).join(', ')}${holder.others.length > 5 ? ', …' : ''}`;
  if (holder.others.length > 0) return `ZFS dataset ${holder.dataset} holds more than this VM's disks (${listed})${holder.home ? ', so it stays here' : ''}`;
  if (!targetReceivesDatasets) return `the target receives no ZFS datasets${holder.home ? `; ${holder.dataset} goes once the guest runs there` : ''}`;
  return undefined;
}

/** `zfs send` of `snapshot` as extents at their stream offsets; stopping early ends the send. */
async function* sendExtents(snapshot: string, options: CallOptions): AsyncGenerator<Extent> {
  const send = zfsSend(snapshot, options);
  try {
    let offset = 0;
    for await (const data of send.stdout) {
      yield { offset, data: data as Buffer };
      offset += (data as Buffer).length;
    }
    await send.done;
  } finally {
    send.stdout.destroy();
    await send.done.catch(() => undefined);
  }
}

export class ZfsShipping implements DiskShipping {
  /**
   * @param raw how disks travel that are not a dataset of their own
   * @param parent where incoming datasets are received; none: this host receives files only
   */
  constructor(
    private readonly raw: DiskShipping,
    private readonly parent?: string,
  ) {}

  get receivesDatasets(): boolean {
    return this.parent !== undefined;
  }

  async outgoing(migration: string, disks: readonly ShippedDisk[], targetReceivesDatasets: boolean, revert: Revert, options: CallOptions = {}): Promise<OutgoingBases> {
    const holder = await holderOf(disks, options);
    const whole = typeof holder !== 'string' && holder.others.length === 0;
    const snapshot = typeof holder === 'string' ? '' : `${holder.dataset}@${snapshotName(migration)}`;
    if (whole && (targetReceivesDatasets || holder.home)) {
      await zfsSnapshot(snapshot, options);
      revert.add(() => zfsDestroy(snapshot));
    }
    if (whole && targetReceivesDatasets) {
      const files = Object.fromEntries(disks.map((disk) => [disk.id, basename(disk.file)]));
      return { streams: [{ kind: 'dataset', snapshot, files, extents: sendExtents(snapshot, options) }] };
    }
    const raw = await this.raw.outgoing(migration, disks, targetReceivesDatasets, revert, options);
    const note = rawBecause(holder, targetReceivesDatasets);
    return note ? { ...raw, note } : raw;
  }

  async release(migration: string, options: CallOptions = {}): Promise<void> {
    for (const snapshot of await this.snapshots(migration, options)) {
      const dataset = snapshot.slice(0, snapshot.indexOf('@'));
      const home = ((await zfsGet(dataset, [HOME], options))?.get(HOME) ?? '-') !== '-';
      await zfsDestroy(home ? dataset : snapshot, { ...options, recursive: home });
    }
  }

  async abandon(migration: string, options: CallOptions = {}): Promise<void> {
    for (const snapshot of await this.snapshots(migration, options)) await zfsDestroy(snapshot, options);
  }

  /** This migration's snapshots (none on a host where ZFS does not answer). */
  private async snapshots(migration: string, options: CallOptions): Promise<string[]> {
    const all = await zfsSnapshots(options).catch(() => []);
    return all.filter((name) => name.endsWith(`@${snapshotName(migration)}`));
  }

  async landing(dir: string, options: CallOptions = {}): Promise<string> {
    if (this.parent === undefined) return this.raw.landing(dir, options);
    const mountpoint = (await zfsGet(this.parent, ['mountpoint'], options))?.get('mountpoint');
    if (!mountpoint?.startsWith('/')) throw new StorageError(`incoming dataset parent ${this.parent} is not mounted (mountpoint ${mountpoint ?? 'unknown'})`);
    return mountpoint;
  }

  receiveFile(path: string, size: number): Promise<ExtentSink> {
    return this.raw.receiveFile(path, size);
  }

  datasetFor(migration: string): string {
    if (this.parent === undefined) return this.raw.datasetFor(migration);
    return checkDataset('dataset', `${this.parent}/${migration}`);
  }

  async receiveDataset(dataset: string): Promise<ExtentSink<string>> {
    const receive = zfsReceive(checkDataset('dataset', dataset));
    // A receive that fails (no parent, no space) must end a wait for `drain` too.
    const ended = receive.done.then(() => {
      throw new StorageError(`zfs receive into ${dataset} ended before its stream did`);
    });
    ended.catch(() => undefined);
    let position = 0;
    return {
      write: async ({ offset, data }) => {
        if (offset !== position) throw new StorageError(`a zfs send stream has no holes: data at ${offset}, expected ${position}`);
        position += data.length;
        // A broken pipe means the receive ended: its exit status and stderr say why.
        if (!receive.stdin.write(data)) await Promise.race([once(receive.stdin, 'drain').catch(() => ended), ended]);
      },
      finish: async (size) => {
        if (size !== position) throw new StorageError(`a zfs send stream has no holes: it ends at ${size}, its data at ${position}`);
        receive.stdin.end();
        await receive.done;
        const mountpoint = (await zfsGet(dataset, ['mountpoint']))?.get('mountpoint');
        if (!mountpoint?.startsWith('/')) throw new StorageError(`received ${dataset} has no mountpoint (${mountpoint ?? 'unknown'})`);
        return mountpoint;
      },
      discard: async () => {
        receive.stdin.destroy();
        await receive.done.catch(() => undefined);
        await this.discard(dataset);
      },
    };
  }

  async arrived(dataset: string, migration: string): Promise<void> {
    await zfsSet(dataset, HOME, migration);
    await zfsDestroy(`${dataset}@${snapshotName(migration)}`);
  }

  async discard(dataset: string): Promise<void> {
    await zfsDestroy(dataset, { recursive: true }).catch(() => undefined);
  }
}
