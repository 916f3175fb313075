/** Vitest global setup: the one zfs-fuse daemon every storage test shares, stopped if we started it. */
import { ensureZfsFuse, stopZfsFuse } from '../../src/testbed/zfs.js';

export default async function setup(): Promise<() => Promise<void>> {
  const started = await ensureZfsFuse();
  return async () => {
    if (started) await stopZfsFuse();
  };
}
