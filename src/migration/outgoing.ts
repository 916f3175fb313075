/**
 * One admitted outgoing migration's run on the engine's parts: the source side (source.ts) with
 * what it reports written into the migration's record, and its end settled: completed, in doubt
 * (a shutdown before the target answered), rolled back, or resolved from QEMU's own state when
 * the QMP connection to its VM was lost (restart.ts).
 */
import { throttlePolicy } from '../buffer/throttle/index.js';
import { CancelledError, CowbufError, InDoubtError } from '../errors.js';
import type { LinkTracker } from '../monitor/link-tracker.js';
import { tellAborted } from './background.js';
import type { ControlLoop } from './control-loop.js';
import type { ConvergenceConfig } from './convergence.js';
import type { MigrationRecord } from './ledger.js';
import { FINAL, headOf } from './record.js';
import { afterQmpLoss, restartHostOf, type RestartParts } from './restart.js';
import { blackoutText, runSource } from './source.js';

export interface RunParts extends RestartParts {
  readonly runDir: string;
  readonly loop: ControlLoop;
  readonly links: LinkTracker;
  readonly convergence: ConvergenceConfig;
  readonly mirrorReadySeconds: number;
  /** A run ended: the next queued migration may be admitted. */
  admitNext(): void;
}

export async function runOutgoing(parts: RunParts, record: MigrationRecord): Promise<void> {
  const { ledger } = parts;
  const controller = ledger.begin(record.id);
  const vm = parts.vms.get(record.vm);
  const peer = parts.peer(record.peer);
  try {
    // On disk before any side effect: a restart must know this migration was in flight.
    await ledger.journal(record);
    if (!vm || !peer) throw new CowbufError(`VM ${record.vm} or peer ${record.peer} went away`);
    await runSource({
      id: record.id,
      vm,
      peer,
      identity: parts.identity,
      bufferPath: parts.bufferPath,
      runDir: parts.runDir,
      shipping: parts.shipping,
      loop: parts.loop,
      links: parts.links,
      convergence: parts.convergence,
      mirrorReadySeconds: parts.mirrorReadySeconds,
      policy: throttlePolicy(record.policy),
      signal: controller.signal,
      onPhase: (phase) => {
        // Final phases are recorded by settle(), together with their error.
        if (FINAL.has(phase)) return;
        record.phase = phase;
        ledger.changed(record);
      },
      onProgress: (progress) => {
        record.progress = { ...record.progress, ...progress };
        ledger.changed(record);
      },
      onDecision: (message) => {
        record.decisions.push(message);
        parts.log({ level: 'info', migration: record.id, message });
        ledger.changed(record);
      },
      onBlackout: (blackout) => {
        record.blackout = blackout;
      },
      onLimits: (limits) => {
        if (limits.size > 0) record.ioLimits = Object.fromEntries(limits);
      },
      onAbortUnheard: () => tellAborted(parts, record.id, peer),
      decided: ledger.decision(record.id),
      departed: (left) => parts.provider.departed(left, record.id),
    });
    parts.forget(vm);
    ledger.settle(record.id, 'completed', undefined, record.blackout && `blackout ${blackoutText(record.blackout)}`);
  } catch (error) {
    if (error instanceof InDoubtError) {
      // Stopped (a shutdown) before the target answered: the journal keeps it in doubt and
      // the next start asks again.
      record.phase = 'in-doubt';
      ledger.changed(record);
      return;
    }
    const lost = vm && vm.qmp.state === 'idle' && vm.running() ? await afterQmpLoss(restartHostOf(parts), headOf(record), vm) : undefined;
    if (lost) ledger.settle(record.id, lost.phase, lost.error && `${(error as Error).message}; ${lost.error}`);
    else ledger.settle(record.id, controller.signal.reason instanceof CancelledError ? 'cancelled' : 'failed', (error as Error).message);
  } finally {
    ledger.end(record.id);
    parts.loop.remove(record.id);
    parts.admitNext();
  }
}
