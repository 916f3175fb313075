/**
 * The base phase: the frozen bases of a VM's disks cross to the target, the way the disk
 * shipping port (storage/shipping.ts) says they leave: the one dataset holding exactly the
 * VM's disks as a `zfs send` stream when the target receives datasets, otherwise each file's
 * data extents. Every stream carries an end-to-end SHA-256.
 */
import type { LinkTracker } from '../monitor/link-tracker.js';
import type { PeerSocket } from '../peer/channel.js';
import type { Identity } from '../peer/identity.js';
import { sendStream } from '../peer/transfer.js';
import type { TrustedPeer } from '../peer/trust.js';
import type { Revert } from '../revert.js';
import type { DiskShipping } from '../storage/shipping.js';
import type { DiskSpec } from '../vm/spec.js';

export interface BaseShipping {
  readonly id: string;
  readonly peer: TrustedPeer;
  readonly identity: Identity;
  readonly links: LinkTracker;
  readonly shipping: DiskShipping;
  readonly signal: AbortSignal;
  /** The target said it can `zfs receive`. */
  readonly targetTakesDatasets: boolean;
  readonly onShipped: (bytes: number) => void;
  readonly onDecision: (message: string) => void;
}

/** Ships every disk's base; what shipping froze for it is undone on `revert` if the migration fails. */
export async function shipBases(ctx: BaseShipping, disks: readonly DiskSpec[], revert: Revert): Promise<void> {
  const { streams, note } = await ctx.shipping.outgoing(ctx.id, disks, ctx.targetTakesDatasets, revert, { signal: ctx.signal });
  let bytes = 0;
  let size = 0;
  for (const stream of streams) {
    const track = `base-${stream.kind === 'file' ? stream.disk : 'dataset'}`;
    const options = { signal: ctx.signal, onSocket: (socket: PeerSocket) => ctx.links.track(ctx.peer.name, socket.raw, track, socket.tls) };
    const hello = stream.kind === 'file' ? { type: 'hello' as const, kind: 'base' as const, migration: ctx.id, disk: stream.disk, size: stream.size } : { type: 'hello' as const, kind: 'dataset' as const, migration: ctx.id, files: stream.files };
    const shipped = await sendStream(ctx.peer, ctx.identity, hello, stream.extents, options);
    bytes += shipped.bytes;
    size += shipped.size;
    ctx.onShipped(bytes);
    if (stream.kind === 'dataset') ctx.onDecision(`bases shipped as a zfs send stream of ${stream.snapshot} (${shipped.bytes} bytes, sha256 ${shipped.sha256.slice(0, 12)}…)`);
  }
  if (note) ctx.onDecision(`bases shipped as raw files (${bytes} bytes of data in ${size}): ${note}`);
}
