/**
 * The QEMU side of a migration's steps and their undos, shared by the live flow (source.ts) and
 * by crash recovery (recovery.ts), which finds the same node and job names in a QEMU it
 * reattached to.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CowbufError } from '../errors.js';
import type { QmpClient } from '../qmp/client.js';
import type { QmpCommands } from '../qmp/commands.js';
import type { QmpEvent } from '../qmp/events.js';

export const overlayNode = (index: number) => `cowbuf-ovl${index}`;
/** The overlay's file under its qcow2 node, named so a write threshold can be armed in file offsets. */
export const overlayFileNode = (index: number) => `cowbuf-ovl${index}-file`;
/** The mirror job's filter above the overlay: the guest's writes pass it while the disk mirrors. */
export const mirrorFilterNode = (index: number) => `cowbuf-ovl${index}-mirror`;
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

/** `query-migrate` statuses of a RAM migration under way, which `migrate_cancel` stops. */
const RAM_RUNNING: ReadonlySet<string> = new Set(['setup', 'active', 'device', 'pre-switchover']);
/** Statuses of a RAM migration that ended without handing the guest over. */
export const RAM_FAILED: ReadonlySet<string> = new Set(['failed', 'cancelled']);
/** Statuses after which the guest is the target's: all of it crossed, or post-copy runs it there. */
export const RAM_HANDED_OVER: ReadonlySet<string> = new Set(['completed', 'postcopy-active']);
/** Statuses a RAM migration reaches that it does not leave on its own. */
export const RAM_SETTLED: ReadonlySet<string> = new Set([...RAM_HANDED_OVER, ...RAM_FAILED]);

export async function ensureRunning(qmp: QmpCommands): Promise<void> {
  const status = await qmp.queryStatus();
  if (!status.running) await qmp.cont();
}

export async function cancelMigration(qmp: QmpCommands): Promise<void> {
  const running = async () => {
    const status = (await qmp.queryMigrate()).status ?? '';
    return RAM_RUNNING.has(status) || status === 'cancelling';
  };
  if (!RAM_RUNNING.has((await qmp.queryMigrate()).status ?? '')) return;
  await qmp.migrateCancel();
  for (let i = 0; i < 100 && (await running()); i += 1) await sleep(100);
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

/** An event's time on its QEMU's host clock, in ms (now, if QEMU gave none). */
export function eventTime(event: QmpEvent): number {
  return event.timestamp ? event.timestamp.seconds * 1000 + event.timestamp.microseconds / 1000 : Date.now();
}

/**
 * The parameters this QEMU knows (from `query-migrate-parameters`), and the names it does not:
 * features are detected, never assumed from a version.
 */
export function supportedParameters(wanted: Readonly<Record<string, number>>, offered: Readonly<Record<string, unknown>>): { known: Record<string, number>; unknown: string[] } {
  const known: Record<string, number> = {};
  const unknown: string[] = [];
  for (const [name, value] of Object.entries(wanted)) {
    if (name in offered) known[name] = value;
    else unknown.push(name);
  }
  return { known, unknown };
}

/**
 * A mirror that failed between the state read and its cancel refuses the cancel; its completion
 * event (already listened for) then says how it ended. Any other refusal is the error.
 */
async function concludedMeanwhile(qmp: QmpCommands, job: string, error: unknown): Promise<void> {
  const info = (await qmp.queryBlockJobs()).find((candidate) => candidate.device === job);
  if (info?.status !== 'concluded') throw error;
}

/**
 * At pre-switchover: a ready mirror cancelled completes without pivoting (the source keeps its
 * chain), after draining what is in flight. All are cancelled at once and their completion is
 * awaited as events, since every millisecond here is blackout. The RAM may continue only onto a
 * full copy: each mirror must have been ready and end without error with all of its bytes sent.
 * @throws CowbufError naming the mirror that was not in sync
 */
export async function finishMirrors(qmp: QmpCommands, client: QmpClient, count: number, timeoutMs = 60_000): Promise<void> {
  const jobs = Array.from({ length: count }, (_, index) => mirrorJob(index));
  // Heard from before the state is read: a mirror that fails from then on is told by its event.
  const ended = client.listen('BLOCK_JOB_COMPLETED', 'BLOCK_JOB_CANCELLED');
  try {
    const state = new Map((await qmp.queryBlockJobs()).map((job) => [job.device, job]));
    for (const job of jobs) {
      const info = state.get(job);
      if (!info?.ready) throw new CowbufError(`mirror ${job} is not in sync at the switchover (${info ? `${info.status}${info.error ? `: ${info.error}` : ''}` : 'gone'})`);
      // Someone else's pause is not overridden: the switchover rolls back instead of draining.
      if (info.paused) throw new CowbufError(`mirror ${job} is paused at the switchover (${info.status}): what the guest wrote last cannot drain to the target`);
    }
    await Promise.all(jobs.map((job) => qmp.blockJobCancel(job).catch(async (error: unknown) => concludedMeanwhile(qmp, job, error))));
    const pending = new Set(jobs);
    while (pending.size > 0) {
      const event = await ended.next({ timeoutMs });
      const job = String(event.data.device);
      if (!pending.delete(job)) continue;
      const error = event.data.error;
      if (event.event === 'BLOCK_JOB_CANCELLED' || error !== undefined || event.data.offset !== event.data.len) {
        throw new CowbufError(`mirror ${job} ended out of sync (${error === undefined ? `${String(event.data.offset)} of ${String(event.data.len)} bytes` : String(error)}): the target's copy is incomplete`);
      }
    }
  } finally {
    ended.close();
  }
  for (const job of jobs) await qmp.jobDismiss(job);
}
