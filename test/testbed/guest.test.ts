import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { guestAppend, parseSerial } from '../../src/testbed/guest.js';

describe('the guest serial console', () => {
  it('parses readiness, heartbeats, verifications and I/O errors, ignoring kernel noise', () => {
    const report = parseSerial(
      [
        '[    0.000000] Linux version 6.1.0',
        'GUEST: READY disk_rate=1 disk_span=8',
        'HB 1 seq=16 errors=0 took=470ms',
        'VERIFY n=2 blocks=32 lost=0',
        'VERIFY dev=sda n=2 blocks=16 lost=1',
        'GUEST: IOERROR vda dd: error writing',
        'EFIVAR moved42',
        'HB 2 seq=32 errors=1 took=2 seq2=32',
      ].join('\n'),
    );
    expect(report).toEqual({
      ready: true,
      heartbeats: [
        { n: 1, seq: 16, errors: 0 },
        { n: 2, seq: 32, errors: 1 },
      ],
      verifications: [{ n: 2, blocks: 32, lost: 0 }],
      disk2Verifications: [{ n: 2, blocks: 16, lost: 1 }],
      efivars: ['moved42'],
      ioErrors: ['GUEST: IOERROR vda dd: error writing'],
    });
    expect(parseSerial('').ready).toBe(false);
  });

  it('passes a UEFI guest the word to keep in NVRAM, and refuses one that is not a plain word', () => {
    const workload = { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 0, verifyEvery: 2, tickMs: 0 };
    expect(guestAppend({ ...workload, efivar: 'moved42' })).toMatch(/ cowbuf\.efivar=moved42$/);
    expect(() => guestAppend({ ...workload, efivar: 'two words' })).toThrow(ValidationError);
  });

  it('boots without KASLR and passes the workload on the kernel command line', () => {
    expect(guestAppend({ diskRateMiB: 2, diskSpanMiB: 16, dirtyRateMiB: 4, verifyEvery: 3 })).toBe(
      'console=ttyS0 quiet nokaslr cowbuf.disk_rate=2 cowbuf.disk_span=16 cowbuf.dirty_rate=4 cowbuf.verify_every=3 cowbuf.tick_ms=100',
    );
  });

  it('gives the guest an address and a second ledgered disk only when asked, one parameter each', () => {
    const workload = { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 0, verifyEvery: 2, tickMs: 0 };
    expect(guestAppend({ ...workload, ip: '10.214.0.10/24', disk2: 'sda' })).toBe(
      'console=ttyS0 quiet nokaslr cowbuf.disk_rate=1 cowbuf.disk_span=8 cowbuf.dirty_rate=0 cowbuf.verify_every=2 cowbuf.tick_ms=0 cowbuf.ip=10.214.0.10/24 cowbuf.disk2=sda',
    );
    expect(() => guestAppend({ ...workload, ip: '10.214.0.10' })).toThrow(ValidationError);
    expect(() => guestAppend({ ...workload, ip: '10.214.0.10/24 init=/bin/sh' })).toThrow('Expected `workload.ip` to be an IPv4 address');
    expect(() => guestAppend({ ...workload, disk2: '/dev/sda' })).toThrow('Expected `workload.disk2` to be a kernel disk name');
  });
});
