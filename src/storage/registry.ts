/** Backend names to constructors: the one place that knows every buffer-volume driver and shipping adapter. */
import { DirVolume } from './dir/driver-dir.js';
import { RawShipping } from './raw/shipping-raw.js';
import type { DiskShipping } from './shipping.js';
import type { BufferVolume, DriverName } from './volume.js';
import { ZfsVolume } from './zfs/driver-zfs.js';
import { ZfsShipping } from './zfs/shipping-zfs.js';

export type VolumeConfig =
  | { readonly driver: 'zfs'; readonly pool: string; readonly mountpoint: string }
  | { readonly driver: 'dir'; readonly path: string };

export function openVolume(config: VolumeConfig): BufferVolume {
  switch (config.driver) {
    case 'zfs':
      return new ZfsVolume(config);
    case 'dir':
      return new DirVolume(config);
    default:
      return config satisfies never;
  }
}

export interface ShippingConfig {
  /** The buffer volume's driver: a ZFS host's VMs may have their disks in datasets. */
  readonly driver: DriverName;
  /** Parent dataset for disks that arrive by `zfs receive`; absent, they arrive as files. */
  readonly incomingDataset?: string | undefined;
}

/** Raw files everywhere; `zfs send`/`receive` too on a host with ZFS (its buffer or its incoming dataset). */
export function openShipping(config: ShippingConfig): DiskShipping {
  const raw = new RawShipping();
  return config.driver === 'zfs' || config.incomingDataset !== undefined ? new ZfsShipping(raw, config.incomingDataset) : raw;
}
