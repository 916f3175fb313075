import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { capWrites } from '../../src/buffer/throttle/limits.js';

describe("cowbuf's write cap folded into an admin's I/O limits", () => {
  it('leaves a drive with no limits capped on writes only', () => {
    expect(capWrites({}, 5e6)).toEqual({ bps_wr: 5e6 });
  });

  it('keeps the stricter of the admin write limit and the cap, and every other limit as set', () => {
    const admin = { bps: 0, bps_rd: 9e6, bps_wr: 4e6, iops: 300, iops_rd: 0, iops_wr: 0, iops_max: 600, group: 'tenant-a' };
    expect(capWrites(admin, 5e6)).toEqual({ ...admin, bps_wr: 4e6 });
    expect(capWrites(admin, 1e6)).toEqual({ ...admin, bps_wr: 1e6 });
    expect(capWrites(admin, 0)).toEqual(admin);
  });

  it('splits a total byte limit into read and write halves, since QEMU takes one or the other', () => {
    expect(capWrites({ bps: 8e6, bps_rd: 0, bps_wr: 0, bps_max: 16e6, bps_max_length: 2 }, 1e6)).toEqual({ bps: 0, bps_rd: 8e6, bps_wr: 1e6, bps_rd_max: 16e6, bps_wr_max: 16e6, bps_rd_max_length: 2, bps_wr_max_length: 2 });
  });

  it('never loosens a limit: writes stay at most what the admin and the cap each allow', () => {
    const limit = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1e9 }));
    fc.assert(
      fc.property(limit, limit, limit, (bps, bpsWr, rate) => {
        const applied = capWrites(bps ? { bps } : { bps_wr: bpsWr }, rate);
        const allowed = [bps || bpsWr, rate].filter((value) => value > 0);
        if (allowed.length === 0) expect(applied.bps_wr ?? 0).toBe(0);
        else expect(applied.bps_wr).toBe(Math.min(...allowed));
        expect((applied.bps ?? 0) > 0 && (applied.bps_wr ?? 0) > 0).toBe(false);
      }),
    );
  });
});
