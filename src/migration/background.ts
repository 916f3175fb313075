/**
 * The work on an outgoing migration that goes on in the background once its run cannot finish it:
 * one a restart (or a lost QMP connection) found past its point of no return asks its target
 * until it answers or an admin resolves it (handoff.ts); a target that did not hear a rollback's
 * abort is told again until it does (abandon.ts). Neither holds up the daemon or the run.
 */
import { InDoubtError } from '../errors.js';
import type { Identity } from '../peer/identity.js';
import type { TrustedPeer } from '../peer/trust.js';
import type { DiskShipping } from '../storage/shipping.js';
import type { ManagedVm, VmProvider } from '../vm/provider.js';
import type { VmSpec } from '../vm/spec.js';
import { abortUntilHeard } from './abandon.js';
import { completeHandoff } from './handoff.js';
import type { Ledger, MigrationLog } from './ledger.js';

/** The engine's parts an outgoing migration works with. */
export interface OutgoingParts {
  readonly ledger: Ledger;
  readonly identity: Identity;
  readonly shipping: DiskShipping;
  readonly bufferPath: string;
  readonly provider: Pick<VmProvider, 'departed'>;
  peer(name: string): TrustedPeer | undefined;
  /** A VM that left for another host: the provider retired it, the engine lets go of it. */
  forget(vm: ManagedVm | undefined): void;
  log(entry: MigrationLog): void;
  /** Aborted when the engine closes: background work that outlives its migration stops with it. */
  readonly closing: AbortSignal;
}

/**
 * A restart found this migration past its point of no return: ask the target again, in the
 * background (the daemon must come up meanwhile), until it answers or an admin resolves it.
 */
export function continueHandoff(parts: OutgoingParts, id: string, vm: ManagedVm | undefined, spec: VmSpec): void {
  const { ledger } = parts;
  const record = ledger.get(id);
  const controller = ledger.begin(id);
  record.phase = 'in-doubt';
  ledger.changed(record);
  void completeHandoff(
    {
      migration: id,
      peer: parts.peer(record.peer),
      identity: parts.identity,
      shipping: parts.shipping,
      signal: controller.signal,
      decided: ledger.decision(id),
      onDoubt: (reason) => parts.log({ level: 'warn', migration: id, message: `in doubt after the restart: ${reason}` }),
      onStall: (reason) => parts.log({ level: 'warn', migration: id, message: reason }),
      departed: (left) => parts.provider.departed(left, id),
    },
    vm,
    parts.bufferPath,
    spec.disks.map((disk) => disk.id),
  )
    .then((handoff) => {
      if (handoff.side === 'target') {
        parts.forget(vm);
        ledger.settle(id, 'completed', undefined, 'finished on the target after the restart');
      } else {
        ledger.settle(id, 'failed', `${handoff.reason}: the guest was resumed here`);
      }
    })
    .catch((error: unknown) => {
      if (!(error instanceof InDoubtError)) ledger.settle(id, 'failed', `after the restart: ${(error as Error).message}`);
    })
    .finally(() => ledger.end(id));
}

/** The target did not hear the rollback: it is told again, in the background, until it does. */
export function tellAborted(parts: OutgoingParts, id: string, peer: TrustedPeer): void {
  const log = (level: 'info' | 'warn', message: string) => parts.log({ level, migration: id, message });
  log('warn', `${peer.name} did not answer the rollback's abort: asking again until it does`);
  abortUntilHeard(peer, parts.identity, id, parts.closing).then(
    (tries) => log('info', `${peer.name} heard the rollback's abort after ${tries} more ${tries === 1 ? 'ask' : 'asks'}`),
    (error: unknown) => {
      if (!parts.closing.aborted) log('warn', `${peer.name} refused the rollback's abort: ${(error as Error).message}`);
    },
  );
}
