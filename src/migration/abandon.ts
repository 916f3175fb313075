/**
 * Tells a target, until it hears, that a migration was rolled back. The rollback asks once
 * (source.ts); when no answer comes (a cut link, a target daemon down), the target's incoming VM
 * and the bases it received would otherwise stay until that daemon restarts. Asking again is
 * always safe: a target discards only an incoming migration that never ran its guest, answers
 * for one it does not know, and refuses, once and for all, one whose guest it runs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { PeerRequestError } from '../errors.js';
import { ControlClient } from '../peer/channel.js';
import type { Identity } from '../peer/identity.js';
import type { TrustedPeer } from '../peer/trust.js';
import { ROLLBACK_ABORT_TIMEOUT_MS } from './source-silence.js';

/** @returns how many asks it took. @throws the target's refusal, or the signal's reason */
export async function abortUntilHeard(peer: TrustedPeer, identity: Identity, migration: string, signal: AbortSignal, retryMs = 5000): Promise<number> {
  for (let tries = 1; ; tries += 1) {
    try {
      await ControlClient.once(peer, identity, { method: 'abort', migration }, { timeoutMs: ROLLBACK_ABORT_TIMEOUT_MS, signal });
      return tries;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (error instanceof PeerRequestError && error.refused) throw error;
      await sleep(retryMs, undefined, { signal });
    }
  }
}
