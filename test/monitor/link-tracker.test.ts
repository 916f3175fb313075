import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { LinkTracker } from '../../src/monitor/link-tracker.js';

/** Fake sockets whose acknowledged bytes the test sets. */
function fakeSocket(): Socket & { acked: number } {
  return { acked: 0, destroyed: false, localPort: 1 } as unknown as Socket & { acked: number };
}

function tracker(): LinkTracker {
  return new LinkTracker({ stats: (socket) => ({ bytesAcked: BigInt((socket as Socket & { acked: number }).acked), notSentBytes: 1, deliveryRateAppLimited: false }) });
}

describe('LinkTracker bookkeeping', () => {
  it('sums every stream to a peer, and keeps what a closed stream carried (no false counter reset)', async () => {
    const links = tracker();
    const a = fakeSocket();
    const b = fakeSocket();
    links.track('peer', a, 'a');
    links.track('peer', b, 'b');
    let reading;
    for (let i = 0; i <= 20; i += 1) {
      a.acked = i * 500_000;
      b.acked = i * 500_000;
      [reading] = await links.sample(i * 0.5);
    }
    expect(reading?.estimate.rate).toBeCloseTo(2_000_000, -4);
    expect(reading?.streams.map((s) => Math.round((s.estimate.rate ?? 0) / 1e5))).toEqual([10, 10]);
    links.untrack(b);
    // b carried 10 MB; a alone now carries the whole 2 MB/s.
    for (let i = 21; i <= 40; i += 1) {
      a.acked = i * 1_000_000 - 10_000_000;
      [reading] = await links.sample(i * 0.5);
    }
    expect(reading?.bytesAcked).toBe(a.acked + 10_000_000);
    expect(reading?.estimate.rate).toBeCloseTo(2_000_000, -4);
    expect(reading?.streams).toHaveLength(1);
  });

  it('drops a destroyed socket on its own at the next sample', async () => {
    const links = tracker();
    const a = fakeSocket();
    links.track('peer', a);
    a.acked = 1000;
    await links.sample(0);
    (a as { destroyed: boolean }).destroyed = true;
    const [reading] = await links.sample(0.5);
    expect(reading?.streams).toHaveLength(1);
    const [after] = await links.sample(1);
    expect(after?.streams).toHaveLength(0);
    expect(after?.bytesAcked).toBe(1000);
  });
});
