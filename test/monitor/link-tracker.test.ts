import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { LinkTracker, type LinkTrackerOptions } from '../../src/monitor/link-tracker.js';

/** Fake sockets whose acknowledged bytes the test sets. */
function fakeSocket(): Socket & { acked: number } {
  return { acked: 0, destroyed: false, localPort: 1, localAddress: '10.0.0.1' } as unknown as Socket & { acked: number };
}

function tracker(interfaces?: LinkTrackerOptions['interfaces']): LinkTracker {
  return new LinkTracker({ stats: (socket) => ({ bytesAcked: BigInt((socket as Socket & { acked: number }).acked), notSentBytes: 1, deliveryRateAppLimited: false }), ...(interfaces ? { interfaces } : {}) });
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

describe('the interface cross-check', () => {
  it("finds the interface a peer's streams leave by and rates its tx counter beside U; an unreadable counter keeps its last estimate", async () => {
    let tx = 0;
    let readable = true;
    const lookups: string[] = [];
    const links = tracker({
      interfaceOf: (address) => (lookups.push(address), Promise.resolve(address === '10.0.0.1' ? 'veth0' : undefined)),
      interfaceCounters: (iface) => (readable && iface === 'veth0' ? Promise.resolve({ txBytes: tx, rxBytes: 0 }) : Promise.reject(new Error('gone'))),
    });
    const a = fakeSocket();
    links.track('peer', a);
    let reading;
    for (let i = 0; i <= 20; i += 1) {
      a.acked = i * 500_000;
      tx = i * 515_000;
      [reading] = await links.sample(i * 0.5);
    }
    expect(lookups).toEqual(['10.0.0.1']);
    expect(reading?.estimate.rate).toBeCloseTo(1_000_000, -4);
    expect(reading?.interfaceEstimate?.rate).toBeCloseTo(1_030_000, -4);
    readable = false;
    a.acked = 21 * 500_000;
    const [after] = await links.sample(10.5);
    expect(after?.estimate.rate).toBeCloseTo(1_000_000, -4);
    expect(after?.interfaceEstimate?.rate).toBe(reading?.interfaceEstimate?.rate);
  });

  it('has none without interface counters, and refuses to watch one', async () => {
    const links = tracker();
    links.track('peer', fakeSocket());
    const [reading] = await links.sample(0);
    expect(reading?.interfaceEstimate).toBeUndefined();
    expect(() => links.watchInterface('peer', 'eth0')).toThrow('cannot watch eth0: this link tracker was given no interface counters');
  });
});
