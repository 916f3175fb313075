/** Backend names to constructors: the one place that knows every buffer-volume driver. */
import { DirVolume } from './dir/driver-dir.js';
import type { BufferVolume } from './volume.js';
import { ZfsVolume } from './zfs/driver-zfs.js';

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
