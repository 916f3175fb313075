/**
 * s_cow per overlay, sampled by the control loop: allocated bytes from the filesystem (st_blocks),
 * cross-checked with QMP's `image.actual-size`, and the guest's written bytes from
 * `query-blockstats`, folded into `cow-model`. One QMP round trip of each kind per VM and tick,
 * however many disks it has.
 */
import { stat } from 'node:fs/promises';
import type { QmpCommands } from '../qmp/commands.js';
import { UNKNOWN_COW, updateCow, type CowEstimate } from './cow-model.js';

export interface TrackedOverlay {
  readonly id: string;
  readonly path: string;
  /** QMP of the VM whose disk the overlay is on top of. */
  readonly qmp?: QmpCommands;
  /** The overlay's node name (for actual-size). */
  readonly nodeName?: string;
  /** The guest disk's qdev id (for wr_bytes). */
  readonly qdev?: string;
}

export interface CowReading {
  readonly id: string;
  readonly allocated: number;
  readonly actualSize: number | undefined;
  readonly written: number | undefined;
  readonly estimate: CowEstimate;
}

export class CowTracker {
  private readonly overlays = new Map<string, { overlay: TrackedOverlay; estimate: CowEstimate }>();

  track(overlay: TrackedOverlay): void {
    this.overlays.set(overlay.id, { overlay, estimate: UNKNOWN_COW });
  }

  untrack(id: string): void {
    this.overlays.delete(id);
  }

  async sample(t: number): Promise<CowReading[]> {
    const byVm = new Map<QmpCommands, { sizes: Map<string, number>; written: Map<string, number> }>();
    for (const { overlay } of this.overlays.values()) {
      if (!overlay.qmp || byVm.has(overlay.qmp)) continue;
      const [nodes, stats] = await Promise.all([overlay.qmp.queryNamedBlockNodes(), overlay.qmp.queryBlockstats()]);
      byVm.set(overlay.qmp, {
        sizes: new Map(nodes.map((node) => [node['node-name'], node.image['actual-size'] ?? 0])),
        written: new Map(stats.filter((entry) => entry.qdev).map((entry) => [entry.qdev ?? '', entry.stats.wr_bytes])),
      });
    }
    const entries = [...this.overlays.values()];
    // One stat per overlay, issued together: the thread pool overlaps them.
    const sizes = await Promise.all(entries.map(async ({ overlay }) => (await stat(overlay.path)).blocks * 512));
    const readings = entries.map((entry, index): CowReading => {
      const { overlay } = entry;
      const allocated = sizes[index] ?? 0;
      const vm = overlay.qmp ? byVm.get(overlay.qmp) : undefined;
      const written = vm && overlay.qdev ? [...vm.written].find(([qdev]) => qdev.includes(`/${overlay.qdev}/`))?.[1] : undefined;
      entry.estimate = updateCow(entry.estimate, { t, allocated, ...(written !== undefined ? { written } : {}) });
      return { id: overlay.id, allocated, actualSize: vm && overlay.nodeName ? vm.sizes.get(overlay.nodeName) : undefined, written, estimate: entry.estimate };
    });
    return readings;
  }
}
