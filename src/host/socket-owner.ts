/**
 * The process listening on a unix socket, read from /proc. Adopting a QEMU someone else started
 * needs its pid (a restart or a lost monitor reattaches by it), and an admin handing cowbuf a QMP
 * socket should not have to look it up: the socket's inode in /proc/net/unix names it, and the
 * process holding a descriptor on that inode is its owner.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { CowbufError } from '../errors.js';

/** @throws CowbufError when nothing listens on `path`, or when no visible process holds it */
export async function socketOwner(path: string): Promise<number> {
  const table = await readFile('/proc/net/unix', 'utf8');
  // Num RefCount Protocol Flags Type St Inode Path; St 01 is "unconnected", a listening socket's state.
  const inode = table
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .find((fields) => fields[7] === path && fields[5] === '01')?.[6];
  if (!inode) throw new CowbufError(`nothing listens on unix socket ${path}`);
  const target = `socket:[${inode}]`;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fds = await readdir(`/proc/${entry}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      if ((await readlink(`/proc/${entry}/fd/${fd}`).catch(() => '')) === target) return Number(entry);
    }
  }
  throw new CowbufError(`no visible process holds unix socket ${path} (inode ${inode})`);
}
