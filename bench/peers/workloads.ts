/**
 * The guests every peer migrates: one size for all, so their runs differ only in who drives the
 * migration. Small enough that the whole matrix fits half an hour of TCG on two cores.
 */
import { join } from 'node:path';
import { run } from '../../src/exec/run.js';
import type { GuestWorkload } from '../../src/testbed/guest.js';

export const DISK_SIZE = '128M';
/** Guest data already on each disk before the migration (what shipping its base costs). */
export const DISK_DATA = '8M';
/** Local space for in-flight writes per guest: cowbuf's buffer share and Incus's state volume alike. */
export const LOCAL_SPACE_PER_GUEST = 64 * 1024 ** 2;

export interface Workload {
  readonly name: string;
  readonly guests: number;
  readonly memoryMiB: number;
  /** tc rate of the source→target link (`Nmbit`). */
  readonly link: string;
  readonly guest: GuestWorkload;
}

/** The link's rate in bytes/s, for the floor. */
export function linkBytesPerSecond(workload: Workload): number {
  return (Number(/^(\d+)mbit$/.exec(workload.link)?.[1] ?? NaN) * 1e6) / 8;
}

// A TCG guest writes at most ~1 MiB/s to its disk (its loop is shell). A link slower than that
// (6 Mbit/s) made one cell take up to 7 minutes (128 MiB of RAM to move), so the matrix did not
// fit half an hour: every workload runs on 50 Mbit/s (~6 MiB/s), and "disk at the guest's
// maximum" asks for 4 MiB/s and gets what TCG gives (the table prints the rate reached before the
// migration) — below the link, so no cell here has a disk writer above its link share except
// each of the three busy guests against its third of the link. 16 MiB/s of RAM dirtying is above
// it. 128 MiB of RAM: the guest does not boot in 64, and deadlocked on memory in 96
// (docs/benchmarks.md, the load soak). Most informative first: the budget cuts the tail.
export const WORKLOADS: readonly Workload[] = [
  { name: 'disk at guest max', guests: 1, memoryMiB: 128, link: '50mbit', guest: { diskRateMiB: 4, diskSpanMiB: 96, dirtyRateMiB: 0, verifyEvery: 0 } },
  { name: 'RAM above link', guests: 1, memoryMiB: 128, link: '50mbit', guest: { diskRateMiB: 0, diskSpanMiB: 32, dirtyRateMiB: 16, verifyEvery: 0 } },
  { name: '3 busy guests', guests: 3, memoryMiB: 128, link: '50mbit', guest: { diskRateMiB: 2, diskSpanMiB: 64, dirtyRateMiB: 0, verifyEvery: 0 } },
  { name: 'disk below link', guests: 1, memoryMiB: 128, link: '50mbit', guest: { diskRateMiB: 1, diskSpanMiB: 48, dirtyRateMiB: 0, verifyEvery: 0 } },
  { name: 'idle', guests: 1, memoryMiB: 128, link: '50mbit', guest: { diskRateMiB: 0, diskSpanMiB: 32, dirtyRateMiB: 0, verifyEvery: 0 } },
];

/** A fresh disk for guest `name` under `dir`, holding DISK_DATA of data past the written span. */
export async function guestDisk(dir: string, name: string): Promise<string> {
  const disk = join(dir, `${name}.qcow2`);
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, DISK_SIZE]);
  await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 7 100M ${DISK_DATA}`, disk]);
  return disk;
}
