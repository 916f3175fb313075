/**
 * The zfs backend: a dataset `<pool>/migration-cow-buffer`, outside any user-visible volume
 * namespace, mounted under the daemon's state directory and marked `cowbuf:role=buffer`.
 * Its size is enforced by ZFS itself: refquota (a writer past it gets EDQUOT) plus an equal
 * refreservation (the pool cannot hand that space to anything else). Where the ZFS in use lacks
 * the ref* properties, quota + reservation do the same job.
 *
 * Bins are accounting (src/buffer), not child datasets: a child's quota would have to move on
 * every re-cut and could never shrink below its data, which is exactly what sharding allows.
 */
import { ShrinkBelowUsedError, InsufficientSpaceError, StorageError, VolumeExistsError, VolumeMissingError } from '../../errors.js';
import { listOverlays } from '../overlays.js';
import type { BufferVolume, CallOptions, VolumeCapabilities, VolumeStatus } from '../volume.js';
import { checkDataset, zfsCreate, zfsDestroy, zfsGet, zfsGetBytes, zfsSet } from './zfs-commands.js';
import { detectZfsFeatures } from './zfs-features.js';

export const DATASET = 'migration-cow-buffer';
export const ROLE_PROPERTY = 'cowbuf:role';

export interface ZfsVolumeConfig {
  readonly pool: string;
  readonly mountpoint: string;
}

export class ZfsVolume implements BufferVolume {
  readonly driver = 'zfs' as const;
  readonly capabilities: VolumeCapabilities = { hardLimit: true, reserved: true, fullErrno: 'EDQUOT' };
  readonly dataset: string;
  readonly mountpoint: string;

  constructor(config: ZfsVolumeConfig) {
    this.dataset = `${checkDataset('pool', config.pool)}/${DATASET}`;
    this.mountpoint = config.mountpoint;
  }

  private get pool(): string {
    return this.dataset.slice(0, -DATASET.length - 1);
  }

  private async limits(options: CallOptions): Promise<{ quota: string; reservation: string }> {
    const features = await detectZfsFeatures(this.pool);
    if (options.signal?.aborted) throw options.signal.reason;
    return features.refQuota ? { quota: 'refquota', reservation: 'refreservation' } : { quota: 'quota', reservation: 'reservation' };
  }

  async exists(options: CallOptions = {}): Promise<boolean> {
    return (await zfsGet(this.dataset, ['name'], options)) !== undefined;
  }

  async create(size: number, options: CallOptions = {}): Promise<void> {
    if ((await zfsGet(this.pool, ['name'], options)) === undefined) throw new StorageError(`ZFS pool or dataset ${this.pool} not found`);
    if (await this.exists(options)) throw new VolumeExistsError(this.dataset);
    const available = await zfsGetBytes(this.pool, 'available', options);
    if (size > available) throw new InsufficientSpaceError(size, available, `pool ${this.pool}`);
    const { quota, reservation } = await this.limits(options);
    await zfsCreate(this.dataset, { [quota]: String(size), [reservation]: String(size), mountpoint: this.mountpoint, [ROLE_PROPERTY]: 'buffer' }, options);
  }

  async status(options: CallOptions = {}): Promise<VolumeStatus> {
    const { quota } = await this.limits(options);
    const props = await zfsGet(this.dataset, [quota, 'referenced', 'available'], options);
    if (!props) throw new VolumeMissingError(this.dataset);
    return {
      driver: 'zfs',
      source: this.dataset,
      mountpoint: this.mountpoint,
      size: Number(props.get(quota)),
      used: Number(props.get('referenced')),
      available: Number(props.get('available')),
      overlays: await listOverlays(this.mountpoint),
    };
  }

  async resize(size: number, options: CallOptions = {}): Promise<void> {
    const { quota, reservation } = await this.limits(options);
    // Freed blocks show up in `referenced` only after a transaction group syncs; a property
    // write forces one (zfs-fuse otherwise waits ~30 s).
    await zfsSet(this.dataset, 'cowbuf:synced', String(Date.now()), options);
    const current = await this.status(options);
    if (size < current.used) throw new ShrinkBelowUsedError(size, current.used);
    if (size > current.size) {
      const room = (await zfsGetBytes(this.pool, 'available', options)) + current.size;
      if (size > room) throw new InsufficientSpaceError(size, room, `pool ${this.pool}`);
      await zfsSet(this.dataset, quota, String(size), options);
      await zfsSet(this.dataset, reservation, String(size), options);
    } else {
      // The reservation may never exceed the quota: lower it first.
      await zfsSet(this.dataset, reservation, String(size), options);
      await zfsSet(this.dataset, quota, String(size), options);
    }
  }

  async verifyRoom(): Promise<void> {
    // The refreservation already guarantees the room.
  }

  async destroy(options: CallOptions = {}): Promise<void> {
    const { overlays } = await this.status(options);
    if (overlays.length > 0) throw new StorageError(`${this.dataset} still holds ${overlays.length} overlay(s): ${overlays.map((o) => o.name).join(', ')}`);
    await zfsDestroy(this.dataset, options);
  }
}
