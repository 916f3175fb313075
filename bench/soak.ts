/**
 * The long soak (issue 9): N busy guests migrated all at once to the target and back, for R
 * rounds, through one small buffer. Per round: seconds, the ratio to round 1 (a slowdown is a
 * leak of some kind), lost writes and I/O errors from the guests' own ledgers, and the change of
 * every resource count against the baseline taken before round 1. Needs root and the test bed.
 * `npx tsx bench/soak.ts [rounds=5] [guests=6]`
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startDaemonPair } from '../src/testbed/daemons.js';
import { datasetCount, migrateAll, resources, startGuests, verifyGuests } from '../src/testbed/soak.js';
import { ensureZfsFuse, stopZfsFuse } from '../src/testbed/zfs.js';

const rounds = Number(process.argv[2] ?? 5);
const names = Array.from({ length: Number(process.argv[3] ?? 6) }, (_, i) => `g${i + 1}`);
const root = new URL('../build/bench/', import.meta.url).pathname;
await mkdir(root, { recursive: true });
const startedZfs = await ensureZfsFuse();
const dir = await mkdtemp(join(root, 'soak-'));
const pair = await startDaemonPair({ dir, bufferSize: 192 * 1024 ** 2, linkRate: '200mbit', migration: { maxOutgoing: 3, maxIncoming: 3, minBin: '16MiB' } });
try {
  await startGuests(pair, dir, names, 160);
  const snapshot = async () => ({ source: await resources(pair.source), target: await resources(pair.target), datasets: await datasetCount(pair) });
  const baseline = await snapshot();
  console.log('round  seconds  ×round1  migrations  failed  lost  io-errors  resource changes');
  let first = 0;
  for (let round = 1; round <= rounds; round += 1) {
    const started = Date.now();
    const records = [...(await migrateAll(pair.source, 'dst', names)), ...(await migrateAll(pair.target, 'src', names))];
    const seconds = (Date.now() - started) / 1000;
    first ||= seconds;
    const guests = await verifyGuests(pair.source);
    const lost = guests.reduce((n, g) => n + g.report.verifications.reduce((m, v) => m + v.lost, 0), 0);
    const ioErrors = guests.reduce((n, g) => n + g.report.ioErrors.length, 0);
    const now = await snapshot();
    const changes = [
      ...(['source', 'target'] as const).flatMap((side) => Object.entries(now[side]).filter(([key, value]) => value !== baseline[side][key as keyof typeof baseline.source]).map(([key, value]) => `${side}.${key} ${baseline[side][key as keyof typeof baseline.source]}→${value}`)),
      ...(now.datasets !== baseline.datasets ? [`datasets ${baseline.datasets}→${now.datasets}`] : []),
    ];
    const failed = records.filter((record) => record.phase !== 'completed').length;
    console.log(`${String(round).padStart(5)}  ${seconds.toFixed(1).padStart(7)}  ${(seconds / first).toFixed(3).padStart(7)}  ${String(records.length).padStart(10)}  ${String(failed).padStart(6)}  ${String(lost).padStart(4)}  ${String(ioErrors).padStart(9)}  ${changes.join(', ') || 'none'}`);
  }
} finally {
  await pair.close();
  await rm(dir, { recursive: true, force: true });
  if (startedZfs) await stopZfsFuse();
}
