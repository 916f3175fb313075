/**
 * Vitest global setup: the one zfs-fuse daemon every storage test shares. Both test projects run
 * this in vitest's main process, so they share a use count through its environment: the last
 * project to finish stops the daemon, and only if one of them started it.
 */
import { ensureZfsFuse, stopZfsFuse } from '../../src/testbed/zfs.js';

const USERS = 'COWBUF_TEST_ZFS_USERS';
const STARTED = 'COWBUF_TEST_ZFS_STARTED';

export default async function setup(): Promise<() => Promise<void>> {
  const users = Number(process.env[USERS] ?? '0');
  if (users === 0) process.env[STARTED] = (await ensureZfsFuse()) ? '1' : '0';
  process.env[USERS] = String(users + 1);
  return async () => {
    const left = Number(process.env[USERS] ?? '1') - 1;
    process.env[USERS] = String(left);
    if (left === 0 && process.env[STARTED] === '1') await stopZfsFuse();
  };
}
