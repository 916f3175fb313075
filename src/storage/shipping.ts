/**
 * The disk-shipping port (DESIGN §9): how a VM's frozen bases leave this host's storage and how
 * they land in the target's, as streams of extents. The peer layer carries the extents without
 * knowing where they come from or go; storage never knows the peer. Two adapters, picked by
 * registry.ts: raw files, of which only the data travels and the holes stay holes
 * (raw/shipping-raw.ts), and a ZFS dataset holding exactly one VM's disks, as a `zfs send`
 * stream (zfs/shipping-zfs.ts), which falls back to raw files for any other layout.
 */
import type { Revert } from '../revert.js';
import type { CallOptions } from './volume.js';

/** Bytes at an offset of an image or a stream. What no extent covers is a hole: zeros. */
export interface Extent {
  readonly offset: number;
  readonly data: Buffer;
}

/** A disk of the VM being shipped, as the source knows it. */
export interface ShippedDisk {
  readonly id: string;
  readonly file: string;
}

/** One stream of a VM's bases as it leaves: extents in increasing order, none overlapping. */
export type Outgoing =
  /** One disk's file, `size` bytes long; only its data extents travel. */
  | { readonly kind: 'file'; readonly disk: string; readonly size: number; readonly extents: AsyncIterable<Extent> }
  /** A `zfs send` of `snapshot`, whose dataset holds exactly the disks (`files`: disk id → file name in it). */
  | { readonly kind: 'dataset'; readonly snapshot: string; readonly files: Readonly<Record<string, string>>; readonly extents: AsyncIterable<Extent> };

export interface OutgoingBases {
  readonly streams: readonly Outgoing[];
  /** Why the disks do not travel as a dataset, when that was an option (for the migration's decisions). */
  readonly note?: string;
}

/** Where one shipped stream lands on the target. */
export interface ExtentSink<T = void> {
  /** @throws StorageError (out of space, over quota, a receiver that failed) */
  write(extent: Extent): Promise<void>;
  /** Every extent arrived; `size` is the stream's whole length. */
  finish(size: number): Promise<T>;
  /** The stream failed: nothing of it stays. */
  discard(): Promise<void>;
}

export interface DiskShipping {
  /** Target: whether sources may send datasets here (the `prepare` answer says so). */
  readonly receivesDatasets: boolean;

  /**
   * Source: the streams that carry `disks`, frozen first where that takes a step (a snapshot,
   * whose undo goes on `revert`). @throws StorageError, CommandError
   */
  outgoing(migration: string, disks: readonly ShippedDisk[], targetReceivesDatasets: boolean, revert: Revert, options?: CallOptions): Promise<OutgoingBases>;
  /** Source: the guest runs on the target. What storage kept for this migration goes, and a dataset that was the disks' home (they had arrived in it) goes with them. */
  release(migration: string, options?: CallOptions): Promise<void>;
  /** Source: the migration rolled back; what `outgoing` froze for it goes, the disks stay. */
  abandon(migration: string, options?: CallOptions): Promise<void>;

  /** Target: a path on the filesystem the bases will land on (the preflight checks its room). @throws StorageError */
  landing(dir: string, options?: CallOptions): Promise<string>;
  /** Target: a raw base file of `size` bytes at `path`, its holes kept. */
  receiveFile(path: string, size: number): Promise<ExtentSink>;
  /** Target: the dataset an incoming migration's disks are received as. @throws StorageError when this host receives none */
  datasetFor(migration: string): string;
  /** Target: `zfs receive` into `dataset`; `finish` resolves to the directory holding its files. */
  receiveDataset(dataset: string): Promise<ExtentSink<string>>;
  /** Target: the guest runs here, and `dataset` is its disks' home from now on. */
  arrived(dataset: string, migration: string): Promise<void>;
  /** Target: a received dataset whose guest will not run here. */
  discard(dataset: string): Promise<void>;
}
