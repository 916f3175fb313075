/**
 * The QMP steps the peers are made of, on two test-bed hosts (namespaces joined by the shaped
 * link), one source QEMU and one incoming QEMU per guest. Each step is what the peer's own code
 * sends; the sequences are in strategies.ts.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CowbufError } from '../../src/errors.js';
import { run } from '../../src/exec/run.js';
import type { BlockJobInfo } from '../../src/qmp/commands.js';
import type { EventListener } from '../../src/qmp/events.js';
import { GUEST_DISK, guestVm } from '../../src/testbed/guest.js';
import type { TwoHosts } from '../../src/testbed/netns.js';
import { launchVm, type RunningVm } from '../../src/vm/launcher.js';
import type { WriteErrorPolicy } from '../../src/vm/spec.js';
import { eventMs } from './measure.js';
import { DISK_SIZE, type Workload } from './workloads.js';

export class ReplayError extends CowbufError {
  override readonly name: string = 'ReplayError';
}

export interface ReplayHost {
  readonly dir: string;
  readonly hosts: TwoHosts;
  readonly workload: Workload;
  /** Host ms after which every wait gives up: the peer did not converge in the time allowed. */
  readonly deadline: number;
}

export interface ReplayGuest {
  readonly index: number;
  readonly name: string;
  readonly disk: string;
  readonly source: RunningVm;
  target?: RunningVm;
  /** Listens from before `migrate`, so the source's STOP is never missed. */
  stops?: EventListener;
  statuses?: EventListener;
}

const JOB = 'mirror0';
const NBD_NODE = 'nbd0';
const EXPORT = 'disk0';
const nbdPort = (guest: ReplayGuest) => 10809 + guest.index;
const ramPort = (guest: ReplayGuest) => 4444 + guest.index;

/** The guest on the source host. `werror` is the peer's: Incus leaves QEMU's default (`enospc`). */
export async function bootSource(env: Pick<ReplayHost, 'dir' | 'hosts' | 'workload'>, index: number, disk: string, werror: WriteErrorPolicy): Promise<ReplayGuest> {
  const name = `g${index + 1}`;
  const spec = guestVm({ name, dir: env.dir, disk: { file: disk, format: 'qcow2' }, workload: env.workload.guest, memoryMiB: env.workload.memoryMiB, netns: env.hosts.src.ns });
  const source = await launchVm({ ...spec, disks: spec.disks.map((d) => ({ ...d, werror })) });
  return { index, name, disk, source };
}

/** An empty disk of the guest's size on the target host (the libvirt way pre-creates it so). */
export async function emptyTargetDisk(env: ReplayHost, guest: ReplayGuest): Promise<string> {
  const disk = join(env.dir, `${guest.name}-target.qcow2`);
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, DISK_SIZE]);
  return disk;
}

function left(env: ReplayHost, what: string): number {
  const ms = env.deadline - Date.now();
  if (ms <= 0) throw new ReplayError(`${what} not reached in the time allowed`);
  return ms;
}

/**
 * Copies the guest data of `image` (read while the guest runs on an overlay above it) into
 * `targetDisk` across the link: Incus's storage layer ships the base so (a zfs send there).
 */
export async function shipBase(env: ReplayHost, guest: ReplayGuest, image: string, targetDisk: string): Promise<void> {
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', targetDisk, DISK_SIZE]);
  const port = String(10909 + guest.index);
  await run('qemu-nbd', ['--fork', '-f', 'qcow2', '-b', env.hosts.dst.ip, '-p', port, '-x', 'base', targetDisk], { netns: env.hosts.dst.ns });
  await run('qemu-img', ['convert', '-U', '-n', '--target-is-zero', '-f', 'qcow2', '-O', 'raw', image, `nbd://${env.hosts.dst.ip}:${port}/base`], { netns: env.hosts.src.ns, timeoutMs: left(env, 'the base shipped') });
}

/** The incoming QEMU (`-S -incoming defer`), its disk exported over NBD, listening for RAM. */
export async function startTarget(env: ReplayHost, guest: ReplayGuest, disk: string): Promise<RunningVm> {
  const spec = guestVm({ name: `${guest.name}-dst`, dir: env.dir, disk: { file: disk, format: 'qcow2' }, workload: env.workload.guest, memoryMiB: env.workload.memoryMiB, netns: env.hosts.dst.ns, incoming: true });
  const target = await launchVm({ ...spec, disks: spec.disks.map((d) => ({ ...d, werror: guest.source.spec.disks[0]?.werror ?? 'stop' })) });
  guest.target = target;
  await target.commands.nbdServerStart({ type: 'inet', data: { host: env.hosts.dst.ip, port: String(nbdPort(guest)) } });
  await target.commands.blockExportAdd({ id: EXPORT, nodeName: GUEST_DISK.nodeName, name: EXPORT, writable: true });
  await target.commands.migrateIncoming(`tcp:${env.hosts.dst.ip}:${ramPort(guest)}`);
  return target;
}

/** Source side: the target's export as a node, and a mirror of `device` into it. */
export async function startMirror(env: ReplayHost, guest: ReplayGuest, device: string, sync: 'top' | 'full', copyMode: 'background' | 'write-blocking'): Promise<void> {
  await guest.source.commands.blockdevAdd({ driver: 'nbd', 'node-name': NBD_NODE, server: { type: 'inet', host: env.hosts.dst.ip, port: String(nbdPort(guest)) }, export: EXPORT });
  await guest.source.commands.blockdevMirror({ jobId: JOB, device, target: NBD_NODE, sync, copyMode });
}

async function job(guest: ReplayGuest): Promise<BlockJobInfo | undefined> {
  return (await guest.source.commands.queryBlockJobs()).find((j) => j.device === JOB);
}

/** @throws ReplayError when the mirror failed or is not ready by the deadline */
export async function waitMirrorReady(env: ReplayHost, guest: ReplayGuest): Promise<void> {
  for (;;) {
    const info = await job(guest);
    if (info?.ready) return;
    if (!info || info.status === 'concluded') throw new ReplayError(`the mirror ended before it was ready (${info?.status ?? 'gone'})`);
    left(env, 'mirror ready');
    await sleep(50);
  }
}

/** The RAM migration, with the peer's capabilities (auto-converge, pause-before-switchover). */
export async function startRam(env: ReplayHost, guest: ReplayGuest, capabilities: Readonly<Record<string, boolean>>): Promise<void> {
  // Status changes come as events, as libvirt and Incus take them: polling would add its period
  // to the blackout of every pause.
  await guest.source.commands.migrateSetCapabilities({ ...capabilities, events: true });
  guest.stops = guest.source.qmp.listen('STOP');
  guest.statuses = guest.source.qmp.listen('MIGRATION');
  await guest.source.commands.migrate(`tcp:${env.hosts.dst.ip}:${ramPort(guest)}`);
}

/** @throws ReplayError when the migration failed or did not reach `status` by the deadline */
export async function waitRam(env: ReplayHost, guest: ReplayGuest, status: 'pre-switchover' | 'completed'): Promise<void> {
  const statuses = guest.statuses;
  if (!statuses) throw new ReplayError('no RAM migration started');
  for (;;) {
    const event = await statuses.next({ timeoutMs: Math.max(1, env.deadline - Date.now()) }).catch(() => undefined);
    if (event?.data.status === status) return;
    if (event === undefined || event.data.status === 'failed' || event.data.status === 'cancelled') {
      const info = await guest.source.commands.queryMigrate();
      if (event === undefined) throw new ReplayError(`RAM ${status} not reached in the time allowed (${info.status ?? 'none'}, CPU throttle ${info['cpu-throttle-percentage'] ?? 0} %)`);
      throw new ReplayError(`RAM migration ${info.status ?? 'failed'}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
    }
  }
}

/** `block-job-cancel` of a ready mirror: it drains, then ends without pivoting (the source keeps its chain). */
export async function cancelMirror(env: ReplayHost, guest: ReplayGuest): Promise<void> {
  await guest.source.commands.blockJobCancel(JOB);
  while ((await job(guest))?.status !== 'concluded') {
    left(env, 'the mirror concluded');
    await sleep(50);
  }
  await guest.source.commands.jobDismiss(JOB);
}

/**
 * After `completed`: the source lets go of the export, the target stops serving and runs the
 * guest. @returns the blackout, source STOP → target RESUME (QMP event stamps, host clock)
 */
export async function finish(guest: ReplayGuest): Promise<number> {
  const target = guest.target;
  if (!target) throw new ReplayError('no target VM');
  await guest.source.commands.blockdevDel(NBD_NODE);
  // The export may still be "in use" for a moment after its client left (TESTBED.md).
  for (let attempt = 0; ; attempt += 1) {
    try {
      await target.commands.blockExportDel(EXPORT);
      break;
    } catch (error) {
      if (attempt > 20) throw error;
      await sleep(100);
    }
  }
  await target.commands.nbdServerStop();
  const resumes = target.qmp.listen('RESUME');
  try {
    await target.commands.cont();
    const resumed = await resumes.next({ timeoutMs: 10_000 });
    const stopped = guest.stops?.drain().at(-1);
    return eventMs(resumed) - eventMs(stopped);
  } finally {
    resumes.close();
    guest.stops?.close();
    guest.statuses?.close();
  }
}
