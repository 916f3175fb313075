/**
 * cowbuf's write cap folded into the I/O limits an admin set on a drive, so a migration never
 * loosens them and its end puts them back exactly. QEMU counts 0 as unlimited, and takes either a
 * total byte limit or separate read and write ones, never both: a total limit is split into equal
 * read and write halves while cowbuf caps the writes.
 */
import type { IoLimits } from '../../qmp/commands.js';

/** The stricter of two limits, 0 meaning none. */
function stricter(a: number | undefined, b: number): number {
  if (!a) return b;
  if (!b) return a;
  return Math.min(a, b);
}

/** The limits to apply while cowbuf throttles writes to `rate` bytes/s (0: cowbuf imposes none). */
export function capWrites(baseline: Partial<IoLimits>, rate: number): Partial<IoLimits> {
  const { bps: total = 0, bps_max: burst, bps_max_length: burstLength, ...rest } = baseline;
  if (!total) return { ...baseline, bps_wr: stricter(baseline.bps_wr, rate) };
  return {
    ...rest,
    bps: 0,
    bps_rd: total,
    bps_wr: stricter(total, rate),
    ...(burst ? { bps_rd_max: burst, bps_wr_max: burst } : {}),
    ...(burst && burstLength ? { bps_rd_max_length: burstLength, bps_wr_max_length: burstLength } : {}),
  };
}
