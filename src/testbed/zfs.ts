/**
 * zfs-fuse for the test bed: one daemon per machine (started without systemd, as TESTBED.md
 * describes), and throw-away pools on sparse files. `-a 0` turns FUSE attribute caching off,
 * otherwise st_blocks (the overlay's allocated size) stays stale for an hour.
 */
import { mkdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StorageError } from '../errors.js';
import { run } from '../exec/run.js';

export const ZFS_FUSE_PIDFILE = '/run/cowbuf-zfs-fuse.pid';

async function daemonAnswers(): Promise<boolean> {
  return run('zpool', ['list', '-H', '-o', 'name'], { timeoutMs: 5000 }).then(
    () => true,
    () => false,
  );
}

/** Starts zfs-fuse unless a ZFS daemon already answers. Returns whether it started one. */
export async function ensureZfsFuse(): Promise<boolean> {
  if (await daemonAnswers()) return false;
  // A stale pidfile makes the next start exit 1 without a word.
  await rm(ZFS_FUSE_PIDFILE, { force: true });
  await run('zfs-fuse', ['--pidfile', ZFS_FUSE_PIDFILE, '--no-kstat-mount', '-a', '0', '-e', '0'], { timeoutMs: 10_000 });
  for (let i = 0; i < 100; i += 1) {
    if (await daemonAnswers()) return true;
    await sleep(100);
  }
  throw new StorageError('zfs-fuse started but never answered');
}

export async function stopZfsFuse(): Promise<void> {
  const pid = Number(await readFile(ZFS_FUSE_PIDFILE, 'utf8').catch(() => ''));
  if (!pid) return;
  await run('zfs', ['umount', '-a'], { okExitCodes: [1] }).catch(() => undefined);
  for (const pool of (await run('zpool', ['list', '-H', '-o', 'name']).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean)) {
    await run('zpool', ['export', pool]).catch(() => undefined);
  }
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100; i += 1) {
    try {
      process.kill(pid, 0);
      await sleep(100);
    } catch {
      break;
    }
  }
  await rm(ZFS_FUSE_PIDFILE, { force: true });
}

export interface TestPool {
  readonly name: string;
  readonly dir: string;
  destroy(): Promise<void>;
}

let counter = 0;

/** A pool of `size` bytes on a sparse file under `dir`, named after this process. */
export async function createTestPool(dir: string, size: number): Promise<TestPool> {
  const name = `cbt${process.pid.toString(36)}p${(counter++).toString(36)}`;
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${name}.img`);
  await rm(file, { force: true });
  await writeFile(file, '');
  await truncate(file, size);
  await run('zpool', ['create', '-m', join(dir, name), name, file]);
  return {
    name,
    dir,
    destroy: async () => {
      for (let attempt = 0; attempt < 10; attempt += 1) {
        const result = await run('zpool', ['destroy', name], { okExitCodes: [1] });
        if (result.exitCode === 0 || /no such pool/.test(result.stderr)) break;
        await sleep(500);
      }
      await rm(file, { force: true });
    },
  };
}
