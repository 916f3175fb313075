/** A trusted peer's headroom, asked over the peer control protocol (`{ method: 'headroom' }`). */
import { ControlClient } from '../peer/channel.js';
import type { Identity } from '../peer/identity.js';
import type { TrustedPeer } from '../peer/trust.js';
import { parseHeadroom, type Headroom } from './headroom.js';

/** The target answers within 10 s itself (target.ts); this leaves room for the round trip. */
const REQUEST_TIMEOUT_MS = 20_000;

/**
 * `host` is the peer's name in this host's trust store, not the fingerprint the peer calls itself:
 * the planner matches targets against this host's links, which are named so.
 * @throws PeerError (unreachable, refused, timed out), ValidationError naming a bad field of its answer
 */
export async function askHeadroom(peer: TrustedPeer, identity: Identity, signal: AbortSignal): Promise<Headroom> {
  const answer = await ControlClient.once(peer, identity, { method: 'headroom' }, { timeoutMs: REQUEST_TIMEOUT_MS, signal });
  return { ...parseHeadroom(answer), host: peer.name };
}
