/**
 * The base phase: the frozen bases of a VM's disks cross to the target. When the disks live in
 * one ZFS dataset (mounted at their directory) and the target receives datasets, the dataset is
 * snapshotted and shipped as a `zfs send` stream; otherwise each file goes as a raw stream.
 * Both carry an end-to-end SHA-256.
 */
import { basename, dirname } from 'node:path';
import type { LinkTracker } from '../monitor/link-tracker.js';
import type { PeerSocket } from '../peer/channel.js';
import type { Identity } from '../peer/identity.js';
import { sendBase, sendDataset, shippedSnapshot } from '../peer/transfer.js';
import type { TrustedPeer } from '../peer/trust.js';
import type { Revert } from '../revert.js';
import { zfsDatasetMountedAt, zfsDestroy, zfsSnapshot } from '../storage/zfs/zfs-commands.js';
import type { DiskSpec } from '../vm/spec.js';

export interface BaseShipping {
  readonly id: string;
  readonly peer: TrustedPeer;
  readonly identity: Identity;
  readonly links: LinkTracker;
  readonly signal: AbortSignal;
  /** The target said it can `zfs receive`. */
  readonly targetTakesDatasets: boolean;
  readonly onShipped: (bytes: number) => void;
  readonly onDecision: (message: string) => void;
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** The dataset that holds exactly these disks' directory, if they can travel as one. */
async function datasetOf(disks: readonly DiskSpec[], signal: AbortSignal): Promise<string | undefined> {
  const dirs = new Set(disks.map((disk) => dirname(disk.file)));
  const names = disks.map((disk) => basename(disk.file));
  if (dirs.size !== 1 || new Set(names).size !== names.length || !names.every((name) => FILE_NAME.test(name))) return undefined;
  return zfsDatasetMountedAt([...dirs][0] as string, { signal });
}

/**
 * Ships every disk's base. @returns the snapshot left to destroy once the migration completed
 * (the revert stack destroys it if the migration fails).
 */
export async function shipBases(ctx: BaseShipping, disks: readonly DiskSpec[], revert: Revert): Promise<string | undefined> {
  const onSocket = (label: string) => (socket: PeerSocket) => ctx.links.track(ctx.peer.name, socket.raw, label, socket.tls);
  const dataset = ctx.targetTakesDatasets ? await datasetOf(disks, ctx.signal) : undefined;
  if (dataset) {
    const snapshot = `${dataset}@${shippedSnapshot(ctx.id)}`;
    await zfsSnapshot(snapshot, { signal: ctx.signal });
    revert.add(() => zfsDestroy(snapshot));
    const files = Object.fromEntries(disks.map((disk) => [disk.id, basename(disk.file)]));
    const shipped = await sendDataset(ctx.peer, ctx.identity, ctx.id, snapshot, files, { signal: ctx.signal, onSocket: onSocket('base-dataset') });
    ctx.onShipped(shipped.bytes);
    ctx.onDecision(`bases shipped as a zfs send stream of ${snapshot} (${shipped.bytes} bytes, sha256 ${shipped.sha256.slice(0, 12)}…)`);
    return snapshot;
  }
  let sent = 0;
  for (const disk of disks) {
    const shipped = await sendBase(ctx.peer, ctx.identity, ctx.id, disk.id, disk.file, { signal: ctx.signal, onSocket: onSocket(`base-${disk.id}`) });
    sent += shipped.bytes;
    ctx.onShipped(sent);
  }
  return undefined;
}
