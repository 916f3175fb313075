import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import { report } from '../support/report.js';
import { useScope } from '../support/testbed.js';

const scope = useScope('link');

interface Line {
  readonly t: number;
  readonly wall: number;
  readonly rate: number;
  readonly phase: string;
  readonly streams: readonly number[];
  readonly acked: readonly number[];
  readonly iface: number | null;
}

const PROBE = fileURLToPath(new URL('../fixtures/link-probe.ts', import.meta.url));
const mbit = (n: number) => (n * 1e6) / 8;

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}

describe('the link tracker on a real shaped link', { timeout: 120_000 }, () => {
  it('reads the shaped rate within 10 %, follows a change within seconds, and reports each of two streams sharing it', async () => {
    const hosts = await scope().twoHosts();
    await hosts.shape('50mbit');
    const seconds = 34;
    const sink = run(process.execPath, ['-e', `require('net').createServer((s) => s.resume().on('error', () => {})).listen(5301, '${hosts.dst.ip}'); setTimeout(() => process.exit(0), ${(seconds + 10) * 1000});`], { netns: hosts.dst.ns, timeoutMs: (seconds + 20) * 1000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const probe = run(process.execPath, ['--import', 'tsx', PROBE, hosts.dst.ip, '5301', String(seconds), '18', hosts.src.veth], { netns: hosts.src.ns, timeoutMs: (seconds + 20) * 1000 });
    // Switch to 200 Mbit/s once the probe has run ~10 s (its first line tells when it started).
    let changedAt = 0;
    const changer = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 11_000));
      await hosts.shape('200mbit');
      changedAt = Date.now();
    })();
    const { stdout } = await probe;
    await changer;
    await sink.catch(() => undefined);
    const lines = stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Line);
    const secondStream = lines.findIndex((line) => line.streams.length === 2);
    expect(secondStream).toBeGreaterThan(0);
    const secondAt = lines[secondStream]?.wall ?? 0;

    const slow = lines.filter((l) => l.t >= 4 && l.wall < changedAt);
    const fast = lines.filter((l) => l.wall >= changedAt + 4000 && l.wall < secondAt);
    const shared = lines.filter((l) => l.wall >= secondAt + 4000);
    for (const [window, shaped] of [[slow, mbit(50)], [fast, mbit(200)], [shared, mbit(200)]] as const) {
      expect(window.length).toBeGreaterThan(4);
      // The estimate at steady state: its median within 10 % and nine samples in ten too. One
      // sample may stray further when the 2-core host starves the probe for a moment (seen once at
      // 20 %), never past a quarter.
      const errors = window.map((line) => Math.abs(line.rate - shaped) / shaped).sort((a, b) => a - b);
      expect(errors[Math.floor(errors.length / 2)]).toBeLessThan(0.1);
      expect(errors.filter((error) => error < 0.1).length / errors.length).toBeGreaterThanOrEqual(0.9);
      expect(errors.at(-1)).toBeLessThan(0.25);
    }
    const followSeconds = ((lines.find((l) => l.wall >= changedAt && Math.abs(l.rate - mbit(200)) / mbit(200) < 0.1)?.wall ?? Infinity) - changedAt) / 1000;
    expect(followSeconds).toBeLessThan(4);
    // How two TCP flows split a tbf link is TCP's business; the tracker must report each flow's own
    // rate (against its acknowledged bytes over the window), and the two must make up the link.
    const first = shared[0];
    const last = shared.at(-1);
    const span = ((last?.wall ?? 0) - (first?.wall ?? 0)) / 1000;
    const perStream = [0, 1].map((index) => mean(shared.map((line) => line.streams[index] ?? 0)));
    const truth = [0, 1].map((index) => ((last?.acked[index] ?? 0) - (first?.acked[index] ?? 0)) / span);
    perStream.forEach((estimate, index) => expect(Math.abs(estimate - (truth[index] ?? 0)) / (truth[index] ?? 1)).toBeLessThan(0.1));
    for (const share of perStream) expect(share / mbit(200)).toBeGreaterThan(0.25);
    expect(Math.abs(perStream.reduce((a, b) => a + b, 0) - mbit(200)) / mbit(200)).toBeLessThan(0.1);
    const ifaceRatio = mean(fast.map((l) => (l.iface ?? 0) / l.rate));
    expect(ifaceRatio).toBeGreaterThan(0.98);
    expect(ifaceRatio).toBeLessThan(1.1);
    await report('link-tracker', {
      at50mbit: Number((mean(slow.map((l) => l.rate)) / mbit(50)).toFixed(3)),
      at200mbit: Number((mean(fast.map((l) => l.rate)) / mbit(200)).toFixed(3)),
      followSeconds,
      twoStreamsEach: perStream.map((share) => Number((share / mbit(200)).toFixed(3))),
      interfaceOverAcked: Number(ifaceRatio.toFixed(3)),
    });
  });
});
