/**
 * Cost of one control-loop sample of the trackers: TCP_INFO on N real loopback sockets (link
 * tracker) and st_blocks of N overlay files (cow tracker, no QMP), for N = 1, 10, 100.
 * Prints µs per sample and per item, and the per-item cost relative to N = 1 in the same run.
 *
 *     npx tsx bench/sampling.ts
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CowTracker } from '../src/monitor/cow-tracker.js';
import { LinkTracker } from '../src/monitor/link-tracker.js';

const sizes = [1, 10, 100];
const server = createServer((socket) => socket.resume());
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as { port: number }).port;
const dir = await mkdtemp(join(tmpdir(), 'cowbuf-bench-'));

async function timePerSample(samples: number, sample: (t: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 20; i += 1) await sample(i);
  const began = performance.now();
  for (let i = 0; i < samples; i += 1) await sample(100 + i * 0.5);
  return ((performance.now() - began) * 1000) / samples;
}

const rows: string[] = [];
const base: Record<string, number> = {};
for (const n of sizes) {
  const sockets: Socket[] = await Promise.all(
    Array.from({ length: n }, () => new Promise<Socket>((resolve) => { const s = connect(port, '127.0.0.1', () => resolve(s)); })),
  );
  const links = new LinkTracker();
  sockets.forEach((socket, i) => links.track(`peer${i % 4}`, socket));
  const cows = new CowTracker();
  for (let i = 0; i < n; i += 1) {
    const path = join(dir, `o${n}-${i}.qcow2`);
    await writeFile(path, Buffer.alloc(64 * 1024, 1));
    cows.track({ id: `o${i}`, path });
  }
  const link = await timePerSample(2000, (t) => links.sample(t));
  const cow = await timePerSample(2000, (t) => cows.sample(t));
  base.link ??= link;
  base.cow ??= cow;
  rows.push(
    `${String(n).padStart(5)} ${link.toFixed(1).padStart(12)} ${(link / n).toFixed(2).padStart(10)} ${(link / n / base.link).toFixed(2).padStart(8)}` +
      ` ${cow.toFixed(1).padStart(12)} ${(cow / n).toFixed(2).padStart(10)} ${(cow / n / base.cow).toFixed(2).padStart(8)}`,
  );
  for (const socket of sockets) socket.destroy();
}
console.log('    N  link µs/tick  µs/socket  ÷ N=1   cow µs/tick  µs/overlay  ÷ N=1');
for (const row of rows) console.log(row);
server.close();
await rm(dir, { recursive: true, force: true });
