/**
 * The early warning's I/O: arms `block-set-write-threshold` on each overlay's file node where
 * the control loop computed (src/buffer/write-threshold.ts), and listens, per migrating VM, for
 * `BLOCK_WRITE_THRESHOLD`, so a bin about to fill is acted on between ticks rather than up to a
 * period late. QEMU disarms a threshold when it fires; it is armed again at the next tick. A
 * threshold is re-armed when it moved down (a re-cut bin, a faster throttle), and up only past
 * the hysteresis: a threshold left low costs at most one early tick, one left high a late one.
 * The per-VM listeners are background loops; they end with the migration or its QMP connection.
 */
import type { EventListener } from '../qmp/events.js';
import { QmpTimeoutError } from '../qmp/errors.js';
import type { LoopMigration } from './control-loop.js';

interface Watched {
  readonly listener: EventListener;
  /** File node → the offset armed there, absent while disarmed. */
  readonly armed: Map<string, number>;
}

export class EarlyWarning {
  private readonly watched = new Map<string, Watched>();

  constructor(
    private readonly hysteresis: number,
    /** A write crossed a threshold of migration `id`. */
    private readonly onCrossed: (id: string, node: string) => void,
  ) {}

  /** Starts listening to `migration`'s QEMU; nothing is armed until `arm`. */
  watch(migration: LoopMigration): void {
    if (!migration.events || this.watched.has(migration.id)) return;
    const watched: Watched = { listener: migration.events.listen('BLOCK_WRITE_THRESHOLD'), armed: new Map() };
    this.watched.set(migration.id, watched);
    void this.listen(migration.id, watched);
  }

  /** Stops listening; what is armed stays in QEMU and goes with the overlay. */
  unwatch(id: string): void {
    this.watched.get(id)?.listener.close();
    this.watched.delete(id);
  }

  /** Background loop: each event disarms its node and wakes the loop. */
  private async listen(id: string, watched: Watched): Promise<void> {
    for (;;) {
      let node: string;
      try {
        node = String((await watched.listener.next({ timeoutMs: 3_600_000 })).data['node-name']);
      } catch (error) {
        if (error instanceof QmpTimeoutError) continue;
        return;
      }
      if (!watched.armed.delete(node)) continue;
      this.onCrossed(id, node);
    }
  }

  /**
   * Arms each overlay's threshold (in the order of its overlays) where it moved enough; never
   * throws. @returns why arming failed, if it did (the tick trace says so)
   */
  async arm(migration: LoopMigration, thresholds: readonly number[], signal: AbortSignal): Promise<string | undefined> {
    const watched = this.watched.get(migration.id);
    if (!watched) return undefined;
    const due = migration.overlays.flatMap((overlay, i) => {
      const at = thresholds[i];
      const before = overlay.fileNode === undefined ? undefined : watched.armed.get(overlay.fileNode);
      if (overlay.fileNode === undefined || at === undefined) return [];
      return before === undefined || at < before || at > before * (1 + this.hysteresis) ? [{ node: overlay.fileNode, at }] : [];
    });
    try {
      await Promise.all(
        due.map(async ({ node, at }) => {
          await migration.qmp.setWriteThreshold(node, at, { signal });
          watched.armed.set(node, at);
        }),
      );
      return undefined;
    } catch (error) {
      return `arming the write threshold: ${(error as Error).message}`;
    }
  }

  /** The offsets armed on `id`'s overlays now, in their order (undefined: disarmed). */
  armed(migration: LoopMigration): Array<number | undefined> {
    const armed = this.watched.get(migration.id)?.armed;
    return migration.overlays.map((overlay) => (overlay.fileNode === undefined ? undefined : armed?.get(overlay.fileNode)));
  }
}
