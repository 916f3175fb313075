/**
 * The dir backend, for hosts without ZFS: a directory whose size cowbuf enforces by accounting.
 * Weaker than zfs, and honest about it: nothing stops a writer at the size (only the throttle
 * keeps overlays inside it) and nothing reserves the room, so free space is checked at init and
 * before every admission (`verifyRoom`). If the filesystem does fill, QEMU sees ENOSPC and, with
 * `werror=stop` on the drive, pauses the guest rather than failing its writes.
 */
import { mkdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InsufficientSpaceError, ShrinkBelowUsedError, StorageError, VolumeExistsError, VolumeMissingError } from '../../errors.js';
import { listOverlays } from '../overlays.js';
import type { BufferVolume, CallOptions, VolumeCapabilities, VolumeStatus } from '../volume.js';

const META = '.cowbuf-buffer.json';

export interface DirVolumeConfig {
  readonly path: string;
}

export class DirVolume implements BufferVolume {
  readonly driver = 'dir' as const;
  readonly capabilities: VolumeCapabilities = { hardLimit: false, reserved: false, fullErrno: 'ENOSPC' };
  readonly mountpoint: string;

  constructor(config: DirVolumeConfig) {
    this.mountpoint = config.path;
  }

  private async size(): Promise<number | undefined> {
    try {
      const meta = JSON.parse(await readFile(join(this.mountpoint, META), 'utf8')) as { size?: unknown };
      if (typeof meta.size !== 'number') throw new StorageError(`${join(this.mountpoint, META)} is corrupt`);
      return meta.size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  private async filesystemFree(): Promise<number> {
    const stats = await statfs(this.mountpoint);
    return stats.bavail * stats.bsize;
  }

  async exists(): Promise<boolean> {
    return (await this.size()) !== undefined;
  }

  async create(size: number, options: CallOptions = {}): Promise<void> {
    if (await this.exists()) throw new VolumeExistsError(this.mountpoint);
    options.signal?.throwIfAborted();
    await mkdir(this.mountpoint, { recursive: true, mode: 0o700 });
    const free = await this.filesystemFree();
    if (size > free) throw new InsufficientSpaceError(size, free, `the filesystem of ${this.mountpoint}`);
    await writeFile(join(this.mountpoint, META), `${JSON.stringify({ size })}\n`, { mode: 0o600 });
  }

  async status(): Promise<VolumeStatus> {
    const size = await this.size();
    if (size === undefined) throw new VolumeMissingError(this.mountpoint);
    const overlays = await listOverlays(this.mountpoint);
    const used = overlays.reduce((sum, overlay) => sum + overlay.allocated, 0);
    return {
      driver: 'dir',
      source: this.mountpoint,
      mountpoint: this.mountpoint,
      size,
      used,
      available: Math.max(0, Math.min(size - used, await this.filesystemFree())),
      overlays,
    };
  }

  async resize(size: number, options: CallOptions = {}): Promise<void> {
    const current = await this.status();
    if (size < current.used) throw new ShrinkBelowUsedError(size, current.used);
    options.signal?.throwIfAborted();
    const free = await this.filesystemFree();
    if (size - current.used > free) throw new InsufficientSpaceError(size, current.used + free, `the filesystem of ${this.mountpoint}`);
    await writeFile(join(this.mountpoint, META), `${JSON.stringify({ size })}\n`, { mode: 0o600 });
  }

  async verifyRoom(): Promise<void> {
    const { size, used } = await this.status();
    const free = await this.filesystemFree();
    if (size - used > free) throw new InsufficientSpaceError(size - used, free, `the filesystem of ${this.mountpoint}`);
  }

  async destroy(): Promise<void> {
    const { overlays } = await this.status();
    if (overlays.length > 0) throw new StorageError(`${this.mountpoint} still holds ${overlays.length} overlay(s): ${overlays.map((o) => o.name).join(', ')}`);
    await rm(join(this.mountpoint, META), { force: true });
  }
}
