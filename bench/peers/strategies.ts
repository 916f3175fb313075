/**
 * What admins run today, replayed as the QMP sequences their tools send, on the same test bed,
 * guests and link as cowbuf. Every peer shares one tail (pause before the switchover, mirror
 * drained and cancelled, `migrate-continue`, the target resumed); they differ in what they do
 * before it.
 *
 * - Incus 6.0.4 (lxc/incus internal/server/instance/drivers/driver_qemu.go, qmp/commands.go):
 *   a qcow2 overlay on the VM's state volume (here a zfs dataset with a 64 MiB quota),
 *   `blockdev-snapshot`, the base shipped by the storage layer while the guest writes into the
 *   overlay unthrottled, `blockdev-mirror sync=top copy-mode=write-blocking` without a speed
 *   limit, `auto-converge` and `pause-before-switchover`. No `werror`: QEMU's default (`enospc`)
 *   hands EDQUOT to the guest as an I/O error. Waiting for the mirror's `ready` before RAM is
 *   this replay's reading (cancelling an unready mirror would lose the overlay's tail).
 * - libvirt 9 `--copy-storage-all` (src/qemu/qemu_migration.c): qemuMigrationDstStartNBDServer
 *   exports the pre-created target disks, qemuMigrationSrcNBDStorageCopy mirrors each whole disk
 *   (`sync=full`, background, or write-blocking with VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES),
 *   qemuMigrationSrcNBDStorageCopyReady gates the RAM migration on every mirror being ready,
 *   and at `pre-switchover` (qemu_migration_params.c keeps `pause-before-switchover` always on)
 *   qemuMigrationSrcNBDCopyCancel drains and cancels the mirrors before the migration continues.
 *   No auto-converge unless VIR_MIGRATE_AUTO_CONVERGE.
 * - Launch and pray: a background mirror and the RAM migration started at once, nothing waited
 *   for and nothing throttled; at `pre-switchover` the paused guest's mirror drains to ready.
 */
import { join } from 'node:path';
import { zfsCreate } from '../../src/storage/zfs/zfs-commands.js';
import { GUEST_DISK } from '../../src/testbed/guest.js';
import { createTwoHosts, sweepStaleHosts } from '../../src/testbed/netns.js';
import { createTestPool, type TestPool } from '../../src/testbed/zfs.js';
import { run } from '../../src/exec/run.js';
import { measured, type GuestRun, type RunResult } from './result.js';
import { bootSource, cancelMirror, emptyTargetDisk, finish, shipBase, startMirror, startRam, startTarget, waitMirrorReady, waitRam, type ReplayGuest, type ReplayHost } from './replay.js';
import { DISK_SIZE, guestDisk, LOCAL_SPACE_PER_GUEST, type Workload } from './workloads.js';

export interface Strategy {
  readonly name: string;
  /** Incus: the guest writes into an overlay on a small state volume while its base ships. */
  readonly overlay: boolean;
  readonly copyMode: 'background' | 'write-blocking';
  readonly readyBeforeRam: boolean;
  readonly autoConverge: boolean;
}

export const STRATEGIES: readonly Strategy[] = [
  { name: 'Incus 6.0.4', overlay: true, copyMode: 'write-blocking', readyBeforeRam: true, autoConverge: true },
  { name: 'libvirt background', overlay: false, copyMode: 'background', readyBeforeRam: true, autoConverge: false },
  { name: 'libvirt write-blocking', overlay: false, copyMode: 'write-blocking', readyBeforeRam: true, autoConverge: false },
  { name: 'launch and pray', overlay: false, copyMode: 'background', readyBeforeRam: false, autoConverge: false },
];

/** The time allowed, as a multiple of the floor, past which a peer counts as not converging. */
const ALLOWED_FLOORS = 2;

async function migrateOne(env: ReplayHost, guest: ReplayGuest, strategy: Strategy, stateDir: string | undefined): Promise<number> {
  let targetDisk: string;
  let device: string = GUEST_DISK.nodeName;
  if (stateDir) {
    const overlay = join(stateDir, `${guest.name}-overlay.qcow2`);
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', guest.disk, '-F', 'qcow2', overlay, DISK_SIZE]);
    await guest.source.commands.blockdevAdd({ driver: 'qcow2', 'node-name': 'overlay0', file: { driver: 'file', 'node-name': 'overlay0-file', filename: overlay }, backing: null });
    await guest.source.commands.blockdevSnapshot(GUEST_DISK.nodeName, 'overlay0');
    device = 'overlay0';
    targetDisk = join(env.dir, `${guest.name}-target.qcow2`);
    await shipBase(env, guest, guest.disk, targetDisk);
  } else {
    targetDisk = await emptyTargetDisk(env, guest);
  }
  await startTarget(env, guest, targetDisk);
  await startMirror(env, guest, device, stateDir ? 'top' : 'full', strategy.copyMode);
  if (strategy.readyBeforeRam) await waitMirrorReady(env, guest);
  await startRam(env, guest, { 'auto-converge': strategy.autoConverge, 'pause-before-switchover': true });
  await waitRam(env, guest, 'pre-switchover');
  await waitMirrorReady(env, guest);
  await cancelMirror(env, guest);
  await guest.source.commands.migrateContinue('pre-switchover');
  await waitRam(env, guest, 'completed');
  return finish(guest);
}

export async function runStrategy(strategy: Strategy, dir: string, workload: Workload): Promise<RunResult> {
  await sweepStaleHosts();
  const hosts = await createTwoHosts();
  const guests: ReplayGuest[] = [];
  let pool: TestPool | undefined;
  try {
    await hosts.shape(workload.link);
    const stateDirs: Array<string | undefined> = [];
    if (strategy.overlay) pool = await createTestPool(dir, 512 * 1024 ** 2);
    for (let i = 0; i < workload.guests; i += 1) {
      const disk = await guestDisk(dir, `g${i + 1}`);
      const stateDir = pool && join(dir, `state${i + 1}`);
      if (pool && stateDir) await zfsCreate(`${pool.name}/state${i + 1}`, { mountpoint: stateDir, quota: String(LOCAL_SPACE_PER_GUEST) });
      stateDirs.push(stateDir);
      guests.push(await bootSource({ dir, hosts, workload }, i, disk, 'enospc'));
    }
    const serials = guests.map((g) => g.source.spec.serialLog);
    return await measured({ peer: strategy.name, workload, serials, link: { ns: hosts.src.ns, dev: hosts.src.veth }, disks: guests.map((g) => g.disk) }, async (clock, floorSeconds) => {
      const env: ReplayHost = { dir, hosts, workload, deadline: Date.now() + Math.max(60, ALLOWED_FLOORS * floorSeconds) * 1000 };
      guests.forEach((g) => clock.watch(join(dir, `${g.name}-dst.serial`)));
      return Promise.all(
        guests.map(async (guest, i): Promise<GuestRun> => {
          const base = { sourceSerial: serials[i] ?? '', targetSerial: join(dir, `${guest.name}-dst.serial`) };
          try {
            return { ...base, blackoutMs: await migrateOne(env, guest, strategy, stateDirs[i]) };
          } catch (error) {
            await guest.source.commands.migrateCancel().catch(() => undefined);
            return { ...base, targetSerial: undefined, blackoutMs: NaN, error: (error as Error).message };
          }
        }),
      );
    });
  } finally {
    for (const guest of guests) await Promise.all([guest.source.stop(), guest.target?.stop()]);
    await hosts.destroy();
    await pool?.destroy();
  }
}
