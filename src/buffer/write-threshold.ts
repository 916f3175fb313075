/**
 * Where to arm the early warning (QEMU's `block-set-write-threshold`) on each of a migration's
 * overlay files. The bin's edge is where its bytes stop fitting; the warning is armed one control
 * period ahead of it, at the bytes the throttle still lets in over a period, so the event comes
 * while the loop can still act before the edge and not as the edge is crossed. The room left is
 * shared evenly among the VM's overlays: whichever fills its share first fires, so the first event
 * comes no later than the sum reaching the armed point, however the writes are spread.
 */
import type { MigrationView } from './view.js';

/**
 * @param extents each overlay file's current end (bytes), the offsets QEMU's threshold is compared with
 * @param leadBytes how far ahead of the edge to fire (γ × control period)
 * @returns one file offset per overlay; an overlay already past its share fires on its next write
 */
export function writeThresholds(view: MigrationView, extents: readonly number[], leadBytes: number): number[] {
  // Free space counts every byte in a bin, shards it hosts included; a frozen bin takes no more.
  const room = view.holdings.reduce((sum, holding) => sum + (holding.frozen ? 0 : Math.max(0, holding.binSize - holding.binUsed)), 0);
  const share = Math.floor(Math.max(0, room - leadBytes) / Math.max(1, extents.length));
  // 0 would disarm the threshold in QEMU; an empty overlay is armed at its first byte instead.
  return extents.map((extent) => Math.max(1, extent + share));
}
