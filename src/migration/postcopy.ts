/**
 * Post-copy across a broken RAM stream. Once the target runs the guest neither side can take it
 * back, so a stream that stops is not failed: it is paused and carried on over a new one, QEMU's
 * post-copy recovery (`postcopy-paused`, `migrate-recover` on the target, `migrate` with `resume`
 * on the source). A link that is only down never errors the socket (TCP retries for many
 * minutes), so a stream that moved nothing for a while is paused on purpose, and the guest's
 * page faults are served again as soon as the target answers, not when TCP's backoff next fires.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { PeerError, PeerRequestError } from '../errors.js';
import type { QmpCommands } from '../qmp/commands.js';
import { QmpCommandError } from '../qmp/errors.js';

/** How long a `postcopy-active` stream may move nothing before it is paused for a new one. */
export const POSTCOPY_STALL_MS = 5000;

/**
 * Target side: the paused post-copy listens on `uri` for the source's resumed stream. One still
 * `postcopy-active` here (the old stream never errored) is paused first. Idempotent: a source
 * whose first ask got no answer asks again, and finds it listening.
 * @throws PeerError when there is no post-copy to recover (it ended, or failed)
 */
export async function listenForRecovery(qmp: Pick<QmpCommands, 'queryMigrate' | 'migratePause' | 'migrateRecover'>, uri: string, signal: AbortSignal): Promise<void> {
  let status = (await qmp.queryMigrate({ signal })).status;
  if (status === 'postcopy-active') {
    await qmp.migratePause({ signal });
    status = await statusAfter(qmp, 'postcopy-active', 10_000, signal);
  }
  if (status === 'postcopy-recover') return;
  if (status !== 'postcopy-paused') throw new PeerError(`the post-copy is ${status ?? 'gone'} here: nothing to recover`);
  try {
    await qmp.migrateRecover(uri, { signal });
  } catch (error) {
    // QEMU's words for "already listening", from an earlier ask of the same recovery.
    if (!(error instanceof QmpCommandError && /triggered already/i.test(error.message))) throw error;
  }
}

/** How long a resumed stream may take to connect before it is taken for failed and resumed again. */
export const RESUME_CONNECT_MS = 30_000;

/**
 * Source side, once this QEMU is `postcopy-paused`: asks the target to listen, through the
 * partition until it answers, then resumes the stream on `uri` (the RAM proxy, which dials a new
 * peer stream). QEMU answers `migrate` before that stream has connected and reads
 * `postcopy-paused` until it has; resumed again meanwhile it refuses ("no paused migration"), so
 * this waits for the status to move on. Resolves false when it had not within `connectMs` (the
 * dial failed: QEMU stays paused, and may be resumed again).
 * @throws PeerRequestError when the target refused (it has nothing to recover),
 *   the signal's reason (daemon shutdown: the journal keeps the migration for the next start)
 */
export async function resumePostcopy(
  qmp: Pick<QmpCommands, 'migrateResume' | 'queryMigrate'>,
  uri: string,
  askTarget: () => Promise<unknown>,
  retryMs: number,
  signal: AbortSignal,
  connectMs = RESUME_CONNECT_MS,
): Promise<boolean> {
  for (;;) {
    signal.throwIfAborted();
    try {
      await askTarget();
      break;
    } catch (error) {
      if (error instanceof PeerRequestError && error.refused) throw error;
      await sleep(retryMs, undefined, { signal }).catch(() => signal.throwIfAborted());
    }
  }
  try {
    await qmp.migrateResume(uri, { signal });
  } catch (error) {
    // After an earlier resume given up on as slow to connect, QEMU refuses this one once that
    // stream has connected after all: the recovery is under way, not failed.
    if (!(error instanceof QmpCommandError) || (await qmp.queryMigrate({ signal })).status === 'postcopy-paused') throw error;
  }
  return (await statusAfter(qmp, 'postcopy-paused', connectMs, signal)) !== 'postcopy-paused';
}

/** QEMU's migration status once it has left `from`, or `from` still after `timeoutMs` (polled: neither caller holds a MIGRATION event listener). */
async function statusAfter(qmp: Pick<QmpCommands, 'queryMigrate'>, from: string, timeoutMs: number, signal: AbortSignal): Promise<string | undefined> {
  for (const deadline = Date.now() + timeoutMs; ; await sleep(100, undefined, { signal })) {
    const { status } = await qmp.queryMigrate({ signal });
    if (status !== from || Date.now() >= deadline) return status;
  }
}
