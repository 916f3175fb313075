import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { CowbufError } from '../../src/errors.js';
import { parsePing } from '../../src/testbed/ping.js';

// Recorded with iputils 20221126 (`ping -D -n -i 0.05`) over a veth whose far end went down for
// 0.6 s: the kernel held the requests meanwhile, and the replies came in a burst once it was up.
const LINK_DOWN = new URL('../fixtures/ping-link-down.txt', import.meta.url);
const FIRST_REPLY = 1796217671520.32;
const LAST_REPLY = 1796217674304.303;

describe('ping -D logs', () => {
  it('counts from the statistics and finds the longest silence between replies, on a recorded log', async () => {
    const log = await readFile(LINK_DOWN, 'utf8');
    expect(parsePing(log, FIRST_REPLY - 3000, LAST_REPLY + 20)).toEqual({ transmitted: 40, received: 40, longestGapMs: 1288 });
  });

  it('counts the silence from the last reply to the stop (a guest that never answers again)', async () => {
    const log = await readFile(LINK_DOWN, 'utf8');
    expect(parsePing(log, FIRST_REPLY, LAST_REPLY + 5000).longestGapMs).toBe(5000);
  });

  it('ignores duplicates and unreachable notices; no reply at all is a gap of the whole run', () => {
    const log = [
      'PING 10.214.0.10 (10.214.0.10) 56(84) bytes of data.',
      '[1000.000000] 64 bytes from 10.214.0.10: icmp_seq=1 ttl=64 time=0.3 ms',
      '[1000.100000] 64 bytes from 10.214.0.10: icmp_seq=1 ttl=64 time=100 ms (DUP!)',
      '[1000.300000] From 10.214.0.100 icmp_seq=3 Destination Host Unreachable',
      '[1000.400000] 64 bytes from 10.214.0.10: icmp_seq=5 ttl=64 time=0.2 ms',
      '',
      '--- 10.214.0.10 ping statistics ---',
      '5 packets transmitted, 2 received, +1 duplicates, +1 errors, 60% packet loss, time 200ms',
    ].join('\n');
    expect(parsePing(log, 999_000, 1_000_450)).toEqual({ transmitted: 5, received: 2, longestGapMs: 400 });
    const silent = ['PING 10.214.0.10 (10.214.0.10) 56(84) bytes of data.', '', '--- 10.214.0.10 ping statistics ---', '20 packets transmitted, 0 received, 100% packet loss, time 950ms'];
    expect(parsePing(silent.join('\n'), 5_000, 6_000)).toEqual({ transmitted: 20, received: 0, longestGapMs: 1000 });
  });

  it('fails, quoting the log, when ping ended without its statistics', () => {
    expect(() => parsePing('ping: connect: Network is unreachable\n', 0, 10)).toThrow(CowbufError);
    expect(() => parsePing('ping: connect: Network is unreachable\n', 0, 10)).toThrow('ping log has no statistics (ping died?); it ends: ping: connect: Network is unreachable');
  });
});
