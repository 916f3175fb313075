/** Throw-away zfs-fuse pools for storage tests, destroyed after the file's tests. */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { createTestPool, type TestPool } from '../../src/testbed/zfs.js';

const ROOT = new URL('../../build/test-runs/', import.meta.url).pathname;

/** @returns a maker of a fresh pool of `size` bytes and a scratch directory beside it */
export function usePools(size: number): () => Promise<{ pool: TestPool; scratch: string }> {
  const pools: TestPool[] = [];
  // zfs-fuse takes its time to destroy a pool while the integration suite loads the host.
  afterAll(async () => {
    for (const pool of pools) {
      await pool.destroy();
      await rm(pool.dir, { recursive: true, force: true });
    }
  }, 120_000);
  return async () => {
    await mkdir(ROOT, { recursive: true });
    const scratch = await mkdtemp(join(ROOT, 'zfs-'));
    const pool = await createTestPool(scratch, size);
    pools.push(pool);
    return { pool, scratch };
  };
}
