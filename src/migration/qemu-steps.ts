/**
 * The QEMU side of a migration's steps and their undos, shared by the live flow (source.ts) and
 * by crash recovery (recovery.ts), which finds the same node and job names in a QEMU it
 * reattached to.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CowbufError } from '../errors.js';
import type { QmpCommands } from '../qmp/commands.js';

export const overlayNode = (index: number) => `cowbuf-ovl${index}`;
export const nbdNode = (index: number) => `cowbuf-nbd${index}`;
export const mirrorJob = (index: number) => `cowbuf-mirror${index}`;
/** The overlay of one disk of one migration, in the buffer volume. */
export const overlayName = (migration: string, disk: string) => `${migration}-${disk}`;

/**
 * Rollback of the overlay: an active commit copies it down into the base, then pivots the guest
 * back onto the base. If it fails, the overlay stays attached (it holds the guest's writes) and
 * the error propagates, so the file is never removed under a running guest.
 */
export async function commitBack(qmp: QmpCommands, node: string, index: number): Promise<void> {
  const job = `cowbuf-commit${index}`;
  await qmp.blockCommit({ jobId: job, device: node });
  const state = async () => (await qmp.queryBlockJobs()).find((candidate) => candidate.device === job);
  for (let info = await state(); !info?.ready; info = await state()) {
    if (!info || info.status === 'concluded') throw new CowbufError(`commit of ${node} stopped before it was ready`);
    await sleep(100);
  }
  await qmp.blockJobComplete(job);
  for (let info = await state(); info && info.status !== 'concluded'; info = await state()) await sleep(100);
  await qmp.jobDismiss(job);
}

export async function ensureRunning(qmp: QmpCommands): Promise<void> {
  const status = await qmp.queryStatus();
  if (!status.running) await qmp.cont();
}

export async function cancelMigration(qmp: QmpCommands): Promise<void> {
  const status = (await qmp.queryMigrate()).status;
  if (status === 'active' || status === 'pre-switchover' || status === 'setup' || status === 'device') {
    await qmp.migrateCancel();
    for (let i = 0; i < 100 && ['active', 'pre-switchover', 'setup', 'device', 'cancelling'].includes((await qmp.queryMigrate()).status ?? ''); i += 1) await sleep(100);
  }
}

export async function cancelMirrors(qmp: QmpCommands, count: number): Promise<void> {
  const jobs = new Map((await qmp.queryBlockJobs()).map((job) => [job.device, job]));
  for (let index = 0; index < count; index += 1) {
    const job = jobs.get(mirrorJob(index));
    if (!job) continue;
    // A mirror whose NBD target vanished has already concluded: only dismissing is left.
    if (job.status !== 'concluded') await qmp.blockJobCancel(mirrorJob(index), true);
    for (let i = 0; i < 100; i += 1) {
      const current = (await qmp.queryBlockJobs()).find((candidate) => candidate.device === mirrorJob(index));
      if (!current) break;
      if (current.status === 'concluded') {
        await qmp.jobDismiss(mirrorJob(index));
        break;
      }
      await sleep(100);
    }
  }
}

/** A ready mirror cancelled at pre-switchover completes without pivoting: the source keeps its chain. */
export async function finishMirrors(qmp: QmpCommands, count: number): Promise<void> {
  for (let index = 0; index < count; index += 1) {
    await qmp.blockJobCancel(mirrorJob(index));
    for (let i = 0; ; i += 1) {
      const job = (await qmp.queryBlockJobs()).find((candidate) => candidate.device === mirrorJob(index));
      if (!job || job.status === 'concluded') break;
      if (i > 600) throw new CowbufError(`mirror ${mirrorJob(index)} did not complete`);
      await sleep(50);
    }
    await qmp.jobDismiss(mirrorJob(index));
  }
}
