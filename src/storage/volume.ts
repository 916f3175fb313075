/**
 * The one buffer-volume interface (`migration-cow-buffer`), after LXD's storage drivers: one
 * interface, one folder per backend, capabilities as data so callers ask what a backend can do
 * instead of branching on its name.
 */
import type { OverlayFile } from './overlays.js';

export type DriverName = 'zfs' | 'dir';

export interface VolumeCapabilities {
  /** The storage itself stops a writer at the size (the dir backend only accounts). */
  readonly hardLimit: boolean;
  /** The size is reserved up front; nothing else on the host can eat into it. */
  readonly reserved: boolean;
  /** What a writer gets once the buffer is full (measured; see docs/storage.md). */
  readonly fullErrno: 'EDQUOT' | 'ENOSPC';
}

export interface VolumeStatus {
  readonly driver: DriverName;
  /** Where it lives: `<pool>/migration-cow-buffer` or a directory. */
  readonly source: string;
  readonly mountpoint: string;
  readonly size: number;
  /** Bytes the overlays occupy (allocated, metadata included). */
  readonly used: number;
  readonly available: number;
  readonly overlays: readonly OverlayFile[];
}

export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface BufferVolume {
  readonly driver: DriverName;
  readonly capabilities: VolumeCapabilities;
  /** Where overlay files live. */
  readonly mountpoint: string;
  exists(options?: CallOptions): Promise<boolean>;
  /** @throws VolumeExistsError, InsufficientSpaceError, StorageError */
  create(size: number, options?: CallOptions): Promise<void>;
  /** @throws VolumeMissingError */
  status(options?: CallOptions): Promise<VolumeStatus>;
  /** Grow any time; shrink only down to the bytes in use. @throws ShrinkBelowUsedError, InsufficientSpaceError */
  resize(size: number, options?: CallOptions): Promise<void>;
  /** Checks the backing store can still provide the promised room (before admitting a migration). */
  verifyRoom(options?: CallOptions): Promise<void>;
  /** Removes the volume; refused while overlays remain. */
  destroy(options?: CallOptions): Promise<void>;
}
