import { describe, expect, it } from 'vitest';
import { guestAppend, parseSerial } from '../../src/testbed/guest.js';

describe('the guest serial console', () => {
  it('parses readiness, heartbeats, verifications and I/O errors, ignoring kernel noise', () => {
    const report = parseSerial(
      [
        '[    0.000000] Linux version 6.1.0',
        'GUEST: READY disk_rate=1 disk_span=8',
        'HB 1 seq=16 errors=0 took=470ms',
        'VERIFY n=2 blocks=32 lost=0',
        'GUEST: IOERROR dd: error writing',
        'HB 2 seq=32 errors=1 took=2',
      ].join('\n'),
    );
    expect(report).toEqual({
      ready: true,
      heartbeats: [
        { n: 1, seq: 16, errors: 0 },
        { n: 2, seq: 32, errors: 1 },
      ],
      verifications: [{ n: 2, blocks: 32, lost: 0 }],
      ioErrors: ['GUEST: IOERROR dd: error writing'],
    });
    expect(parseSerial('').ready).toBe(false);
  });

  it('boots without KASLR and passes the workload on the kernel command line', () => {
    expect(guestAppend({ diskRateMiB: 2, diskSpanMiB: 16, dirtyRateMiB: 4, verifyEvery: 3 })).toBe(
      'console=ttyS0 quiet nokaslr cowbuf.disk_rate=2 cowbuf.disk_span=16 cowbuf.dirty_rate=4 cowbuf.verify_every=3 cowbuf.tick_ms=100',
    );
  });
});
