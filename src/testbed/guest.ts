/**
 * The test bed's tiny guest (built by scripts/testbed/build-guest.sh): its files, its kernel
 * command line, and what it reports on its serial console. `nokaslr` is not optional: with
 * KASLR, destination guests crashed after migrations with an active write throttle (TESTBED.md).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { CowbufError, ValidationError } from '../errors.js';
import type { VmSpec } from '../vm/spec.js';

/** build/guest at the repository root (two levels up from src/testbed or dist/testbed). */
export const GUEST_DIR = fileURLToPath(new URL('../../build/guest/', import.meta.url));

export interface GuestWorkload {
  /** MiB/s written to the disk, in 64 KiB O_DIRECT requests. */
  readonly diskRateMiB: number;
  /** MiB at the start of the disk that writes cycle over: sets the share of unique clusters. */
  readonly diskSpanMiB: number;
  /** MiB/s of RAM dirtied. */
  readonly dirtyRateMiB: number;
  /** MiB of RAM (a tmpfs file) the dirtying cycles over; the guest's default is 32. */
  readonly dirtySpanMiB?: number;
  /** Iterations between read-back verifications of the whole span (0: never). */
  readonly verifyEvery: number;
  /** Milliseconds between `TICK` lines, which time the guest's pauses from the host (0: none). */
  readonly tickMs?: number;
  /** eth0's address with its prefix (`10.214.0.10/24`); without it the guest has no network. */
  readonly ip?: string;
  /** A second disk's kernel name (`sda` for one on virtio-scsi) that gets a write ledger of its own. */
  readonly disk2?: string;
  /** A UEFI guest stores this word in an NVRAM variable once and reads it back every VERIFY round. */
  readonly efivar?: string;
}

/** @throws ValidationError when `ip`, `disk2` or `efivar` would not be one kernel parameter the guest reads */
export function guestAppend(workload: GuestWorkload): string {
  if (workload.ip !== undefined && !/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(workload.ip)) {
    throw new ValidationError('workload.ip', workload.ip, 'an IPv4 address with a prefix length, like `10.214.0.10/24`');
  }
  if (workload.disk2 !== undefined && !/^[a-z]+[0-9]*$/.test(workload.disk2)) {
    throw new ValidationError('workload.disk2', workload.disk2, 'a kernel disk name, like `sda`');
  }
  if (workload.efivar !== undefined && !/^[A-Za-z0-9]{1,32}$/.test(workload.efivar)) {
    throw new ValidationError('workload.efivar', workload.efivar, 'a word of 1 to 32 letters and digits');
  }
  return [
    'console=ttyS0 quiet nokaslr',
    `cowbuf.disk_rate=${workload.diskRateMiB}`,
    `cowbuf.disk_span=${workload.diskSpanMiB}`,
    `cowbuf.dirty_rate=${workload.dirtyRateMiB}`,
    ...(workload.dirtySpanMiB !== undefined ? [`cowbuf.dirty_span=${workload.dirtySpanMiB}`] : []),
    `cowbuf.verify_every=${workload.verifyEvery}`,
    `cowbuf.tick_ms=${workload.tickMs ?? 100}`,
    ...(workload.ip !== undefined ? [`cowbuf.ip=${workload.ip}`] : []),
    ...(workload.disk2 !== undefined ? [`cowbuf.disk2=${workload.disk2}`] : []),
    ...(workload.efivar !== undefined ? [`cowbuf.efivar=${workload.efivar}`] : []),
  ].join(' ');
}

export interface GuestVmOptions {
  readonly name: string;
  readonly dir: string;
  readonly disk: { readonly file: string; readonly format: 'qcow2' | 'raw' };
  readonly workload: GuestWorkload;
  readonly memoryMiB?: number;
  readonly incoming?: boolean;
  readonly netns?: string;
}

/** The body of `POST /1.0/vms` that starts the test guest on a daemon. */
export function guestVmBody(name: string, disk: string, workload: GuestWorkload, memoryMiB = 256): Record<string, unknown> {
  return {
    name,
    memoryMiB,
    kernel: join(GUEST_DIR, 'vmlinuz'),
    initrd: join(GUEST_DIR, 'initrd.cpio.gz'),
    append: guestAppend(workload),
    disks: [{ id: GUEST_DISK.id, file: disk }],
  };
}

/** The disk's qdev id and node name in every guest VM. */
export const GUEST_DISK = { id: 'vdisk0', nodeName: 'disk0' } as const;

export function guestVm(options: GuestVmOptions): VmSpec {
  return {
    name: options.name,
    memoryMiB: options.memoryMiB ?? 256,
    vcpus: 1,
    kernel: join(GUEST_DIR, 'vmlinuz'),
    initrd: join(GUEST_DIR, 'initrd.cpio.gz'),
    append: guestAppend(options.workload),
    disks: [{ ...GUEST_DISK, file: options.disk.file, format: options.disk.format, werror: 'stop' }],
    qmpSocket: join(options.dir, `${options.name}.qmp`),
    serialLog: join(options.dir, `${options.name}.serial`),
    ...(options.incoming ? { incoming: true } : {}),
    ...(options.netns ? { netns: options.netns } : {}),
  };
}

export interface Heartbeat {
  readonly n: number;
  readonly seq: number;
  readonly errors: number;
}

export interface Verification {
  readonly n: number;
  readonly blocks: number;
  readonly lost: number;
}

export interface SerialReport {
  readonly ready: boolean;
  readonly heartbeats: readonly Heartbeat[];
  /** The ledger on /dev/vda. */
  readonly verifications: readonly Verification[];
  /** The ledger on `workload.disk2` (`VERIFY dev=<disk2> ...` lines). */
  readonly disk2Verifications: readonly Verification[];
  /** The NVRAM variable as the guest read it back, one per VERIFY round (`workload.efivar`). */
  readonly efivars: readonly string[];
  /** Lines where the guest saw a write fail (it should never: drives run with werror=stop). */
  readonly ioErrors: readonly string[];
}

export function parseSerial(text: string): SerialReport {
  const heartbeats: Heartbeat[] = [];
  const verifications: Verification[] = [];
  const disk2Verifications: Verification[] = [];
  const ioErrors: string[] = [];
  const efivars: string[] = [];
  let ready = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('GUEST: READY')) ready = true;
    const hb = /^HB (\d+) seq=(\d+) errors=(\d+)/.exec(line);
    if (hb) heartbeats.push({ n: Number(hb[1]), seq: Number(hb[2]), errors: Number(hb[3]) });
    const verify = /^VERIFY (dev=\S+ )?n=(\d+) blocks=(\d+) lost=(\d+)/.exec(line);
    if (verify) (verify[1] ? disk2Verifications : verifications).push({ n: Number(verify[2]), blocks: Number(verify[3]), lost: Number(verify[4]) });
    if (line.startsWith('GUEST: IOERROR')) ioErrors.push(line);
    if (line.startsWith('EFIVAR ')) efivars.push(line.slice('EFIVAR '.length).trim());
  }
  return { ready, heartbeats, verifications, disk2Verifications, efivars, ioErrors };
}

export async function readSerial(path: string): Promise<SerialReport> {
  return parseSerial(await readFile(path, 'utf8').catch(() => ''));
}

export class GuestTimeoutError extends CowbufError {
  override readonly name: string = 'GuestTimeoutError';
}

/** Polls the serial log until `done` holds. @throws GuestTimeoutError with what was seen last */
export async function waitForSerial(
  path: string,
  done: (report: SerialReport) => boolean,
  what: string,
  options: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {},
): Promise<SerialReport> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const report = await readSerial(path);
    if (done(report)) return report;
    if (Date.now() > deadline) {
      const last = report.heartbeats.at(-1);
      // The guest's last words (a kernel panic, a hung task) are what explains a silence.
      const tail = (await readFile(path, 'utf8').catch(() => '')).trim().split('\n').slice(-4).join(' | ');
      throw new GuestTimeoutError(`guest (${path}) never showed ${what}; last heartbeat ${last ? `n=${last.n} seq=${last.seq}` : 'none'}; serial ends: ${tail || '(empty)'}`);
    }
    await sleep(200, undefined, options.signal ? { signal: options.signal } : {});
  }
}
