/**
 * What the installed ZFS can do, asked rather than assumed: zfs-fuse 0.7 (pool version 23) has
 * `zfs get -Hp` and refquota but neither `zfs list -p` nor working zvols nor `zfs version`;
 * OpenZFS has all of them.
 */
import { onPath, run } from '../../exec/run.js';
import { checkDataset } from './zfs-commands.js';

export interface ZfsFeatures {
  readonly implementation: 'openzfs' | 'zfs-fuse' | 'unknown';
  /** `zfs list -p` (parsable numbers); `zfs get -Hp` is used either way. */
  readonly parsableList: boolean;
  /** refquota/refreservation; otherwise quota/reservation limit the buffer. */
  readonly refQuota: boolean;
  /** zvols (`zfs create -V`): not needed by the buffer, reported for `cowbuf buffer show`. */
  readonly zvols: boolean;
}

const cache = new Map<string, Promise<ZfsFeatures>>();

async function succeeds(cmd: string, args: readonly string[]): Promise<boolean> {
  return run(cmd, args, { timeoutMs: 10_000 }).then(
    () => true,
    () => false,
  );
}

export function detectZfsFeatures(pool: string): Promise<ZfsFeatures> {
  checkDataset('pool', pool);
  let features = cache.get(pool);
  if (!features) {
    features = (async () => {
      const openzfs = await succeeds('zfs', ['version']);
      const fuse = !openzfs && (await onPath('zfs-fuse'));
      return {
        implementation: openzfs ? 'openzfs' : fuse ? 'zfs-fuse' : 'unknown',
        parsableList: await succeeds('zfs', ['list', '-H', '-p', '-o', 'name', pool]),
        refQuota: await succeeds('zfs', ['get', '-H', '-o', 'value', 'refquota', pool]),
        zvols: openzfs,
      } satisfies ZfsFeatures;
    })();
    cache.set(pool, features);
  }
  return features;
}
