/**
 * s_cow per overlay, sampled by the control loop, and the guest's written bytes from
 * `query-blockstats`, folded into `cow-model`. The size comes first from what QEMU wrote: qcow2
 * allocates by appending to its file, so the end of the last byte written to the overlay's file
 * node (`wr_highest_offset`) is its allocation the moment the write completes, while st_blocks
 * (and QMP's `actual-size`, which is st_blocks) waits for the filesystem: ZFS moves it only when a
 * transaction group syncs, seconds later. st_blocks stays as the cross-check and the floor (what
 * the quota counts, and all there is when QMP is not there). One QMP round trip of each kind per
 * VM and tick, however many disks it has. VMs are sampled in parallel and apart: a VM that fails or hangs
 * (its QMP gone, its overlay already removed) is reported as failed and keeps its last
 * estimates, and never holds up the readings of the others.
 */
import { stat } from 'node:fs/promises';
import { orAbort } from '../abort.js';
import type { BlockStatsEntry, QmpCommands } from '../qmp/commands.js';
import { UNKNOWN_COW, updateCow, type CowEstimate } from './cow-model.js';

export interface TrackedOverlay {
  readonly id: string;
  readonly path: string;
  /** QMP of the VM whose disk the overlay is on top of. */
  readonly qmp?: QmpCommands;
  /** The overlay's node name (for actual-size). */
  readonly nodeName?: string;
  /** The node of the overlay's file (offsets there are file offsets): where the write threshold is armed. */
  readonly fileNode?: string;
  /** The guest disk's qdev id (for wr_bytes). */
  readonly qdev?: string;
}

export interface CowReading {
  readonly id: string;
  /** s_cow: the larger of the written extent and st_blocks. */
  readonly allocated: number;
  /** `wr_highest_offset` of the overlay's file node, when QMP answered for it. */
  readonly extent: number | undefined;
  /** st_blocks × 512. */
  readonly stBlocks: number;
  readonly actualSize: number | undefined;
  readonly written: number | undefined;
  /**
   * The monitor's round trip for this sample's `query-named-block-nodes`: what any QMP command on this
   * VM paid just now, so the throttle's actuation latency has a baseline from the same tick.
   */
  readonly monitorMs: number | undefined;
  readonly estimate: CowEstimate;
}

export interface CowSampling {
  readonly readings: readonly CowReading[];
  /** Overlays whose VM could not be sampled this time, with why. */
  readonly failures: ReadonlyArray<{ readonly id: string; readonly error: Error }>;
}

interface Entry {
  readonly overlay: TrackedOverlay;
  estimate: CowEstimate;
}

export class CowTracker {
  private readonly overlays = new Map<string, Entry>();

  track(overlay: TrackedOverlay): void {
    this.overlays.set(overlay.id, { overlay, estimate: UNKNOWN_COW });
  }

  untrack(id: string): void {
    this.overlays.delete(id);
  }

  /** Samples every overlay at time `t` (seconds); `signal` bounds how long a VM may take. */
  async sample(t: number, signal?: AbortSignal): Promise<CowSampling> {
    // Overlays without a QMP connection are each their own group.
    const groups = new Map<QmpCommands | string, Entry[]>();
    for (const entry of this.overlays.values()) {
      const key = entry.overlay.qmp ?? entry.overlay.id;
      groups.set(key, [...(groups.get(key) ?? []), entry]);
    }
    const vms = [...groups.values()];
    const outcomes = await Promise.allSettled(vms.map((entries) => orAbort(measureVm(entries, signal), signal)));
    const readings: CowReading[] = [];
    const failures: Array<{ id: string; error: Error }> = [];
    for (const [index, entries] of vms.entries()) {
      const outcome = outcomes[index] as PromiseSettledResult<readonly Measured[]>;
      if (outcome.status === 'rejected') {
        const error = outcome.reason instanceof Error ? outcome.reason : new Error(String(outcome.reason));
        for (const { overlay } of entries) failures.push({ id: overlay.id, error });
        continue;
      }
      for (const [i, entry] of entries.entries()) {
        const measured = outcome.value[i] as Measured;
        const { allocated, written } = measured;
        entry.estimate = updateCow(entry.estimate, { t, allocated, ...(written !== undefined ? { written } : {}) });
        readings.push({ id: entry.overlay.id, ...measured, estimate: entry.estimate });
      }
    }
    return { readings, failures };
  }
}

type Measured = Omit<CowReading, 'id' | 'estimate'>;

/** One VM's overlays, in `entries` order: the QMP queries and the stats together. */
async function measureVm(entries: readonly Entry[], signal: AbortSignal | undefined): Promise<Measured[]> {
  const qmp = entries[0]?.overlay.qmp;
  const options = signal ? { signal } : {};
  const asked = performance.now();
  let monitorMs: number | undefined;
  const [nodes, devices, perNode, blocks] = await Promise.all([
    // The first query sent waits behind no other of ours: its round trip is the monitor's own.
    qmp?.queryNamedBlockNodes(options).then((named) => ((monitorMs = performance.now() - asked), named)),
    qmp?.queryBlockstats(options),
    qmp?.queryNodeBlockstats(options),
    // One stat per overlay, issued together: the thread pool overlaps them.
    Promise.all(entries.map(async ({ overlay }) => (await stat(overlay.path)).blocks * 512)),
  ]);
  const actualSizes = new Map((nodes ?? []).map((node) => [node['node-name'], node.image['actual-size'] ?? 0]));
  const writtenBy = (devices ?? []).filter((entry) => entry.qdev).map((entry) => [entry.qdev ?? '', entry.stats.wr_bytes] as const);
  return entries.map(({ overlay }, index) => {
    const stBlocks = blocks[index] ?? 0;
    const extent = overlay.nodeName && perNode ? writtenExtent(perNode, overlay.nodeName) : undefined;
    return {
      allocated: Math.max(stBlocks, extent ?? 0),
      extent,
      stBlocks,
      actualSize: overlay.nodeName ? actualSizes.get(overlay.nodeName) : undefined,
      // `/machine/peripheral/<id>/virtio-backend` for virtio-blk, `/machine/peripheral/<id>` for scsi-hd.
      written: overlay.qdev ? writtenBy.find(([qdev]) => `${qdev}/`.includes(`/${overlay.qdev}/`))?.[1] : undefined,
      monitorMs,
    };
  });
}

/**
 * How far QEMU has written into the file under the qcow2 node `nodeName`, from
 * `query-blockstats` with `query-nodes`: its file child's `wr_highest_offset`. Undefined when the
 * node is not there or has no file child. It counts metadata and data clusters alike, as the
 * filesystem will; it never shrinks, as an overlay does not while its migration runs.
 */
export function writtenExtent(perNode: readonly BlockStatsEntry[], nodeName: string): number | undefined {
  return perNode.find((entry) => entry['node-name'] === nodeName)?.parent?.stats.wr_highest_offset;
}
