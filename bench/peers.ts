/**
 * cowbuf side by side with what admins run today (issue 18): in one run, the same guests, disks
 * and shaped link, migrated by cowbuf (`deadline`, `lx066`), by the Incus 6.0.4 sequence, the
 * libvirt sequence (background and write-blocking mirror) and "launch and pray", all replayed
 * with raw QMP (bench/peers/strategies.ts says what each sends and where it was read). Prints one
 * markdown table and writes it into docs/benchmarks.md between its markers.
 * Needs root and the test bed. `npx tsx bench/peers.ts [workload…] [--peer=<substring>] [--minutes=25]`
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureZfsFuse, stopZfsFuse } from '../src/testbed/zfs.js';
import { runCowbuf } from './peers/cowbuf.js';
import { markdownTable, type RunResult } from './peers/result.js';
import { runStrategy, STRATEGIES } from './peers/strategies.js';
import { DISK_DATA, LOCAL_SPACE_PER_GUEST, WORKLOADS, type Workload } from './peers/workloads.js';


const PEERS: ReadonlyArray<{ readonly name: string; readonly run: (dir: string, workload: Workload) => Promise<RunResult> }> = [
  { name: 'cowbuf deadline', run: (dir, w) => runCowbuf('deadline', dir, w) },
  { name: 'cowbuf lx066', run: (dir, w) => runCowbuf('lx066', dir, w) },
  ...STRATEGIES.map((strategy) => ({ name: strategy.name, run: (dir: string, w: Workload) => runStrategy(strategy, dir, w) })),
];

const args = process.argv.slice(2);
const peerFilter = args.find((a) => a.startsWith('--peer='))?.slice('--peer='.length);
// The matrix stops starting runs after this, so the bench ends within half an hour unattended.
const budgetMs = Number(args.find((a) => a.startsWith('--minutes='))?.slice('--minutes='.length) ?? 25) * 60_000;
const named = args.filter((a) => !a.startsWith('--'));
const workloads = named.length > 0 ? WORKLOADS.filter((w) => named.includes(w.name)) : WORKLOADS;
const peers = PEERS.filter((p) => peerFilter === undefined || p.name.includes(peerFilter));

const root = new URL('../build/bench/', import.meta.url).pathname;
await mkdir(root, { recursive: true });
const startedZfs = await ensureZfsFuse();
const started = Date.now();
const results: RunResult[] = [];
const skipped: string[] = [];
for (const workload of workloads) {
  for (const peer of peers) {
    if (Date.now() - started > budgetMs) {
      skipped.push(`${workload.name} × ${peer.name}`);
      continue;
    }
    const dir = await mkdtemp(join(root, 'peers-'));
    try {
      const result = await peer.run(dir, workload);
      results.push(result);
      console.error(markdownTable([result]).split('\n').at(-1));
    } catch (error) {
      // The test bed itself failed (not the peer's migration): say so in the table, go on.
      console.error(`${workload.name} × ${peer.name}: ${(error as Error).stack ?? String(error)}`);
      skipped.push(`${workload.name} × ${peer.name} (test bed error: ${(error as Error).message.split('\n')[0] ?? ''})`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
if (startedZfs) await stopZfsFuse();

const table = markdownTable(results);
console.log(table);
if (skipped.length > 0) console.log(`\nNot run: ${skipped.join('; ')}`);
const section = [
  '<!-- peers:begin (written by bench/peers.ts) -->',
  `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC in ${((Date.now() - started) / 60_000).toFixed(1)} min. Workloads: ${workloads.map((w) => `${w.name} (${w.guests} × ${w.memoryMiB} MiB RAM, link ${w.link})`).join(', ')}; each disk holds ${DISK_DATA} of data plus what its guest wrote before the migration; ${LOCAL_SPACE_PER_GUEST / 1024 ** 2} MiB of local space per guest (cowbuf's buffer, Incus's state volume).`,
  '',
  table,
  ...(skipped.length > 0 ? ['', `Not run: ${skipped.join('; ')}.`] : []),
  '<!-- peers:end -->',
].join('\n');
const docs = new URL('../docs/benchmarks.md', import.meta.url).pathname;
const text = await readFile(docs, 'utf8');
const markers = /<!-- peers:begin[\s\S]*?<!-- peers:end -->/;
await writeFile(docs, markers.test(text) ? text.replace(markers, section) : `${text.trimEnd()}\n\n## Side by side with Incus, libvirt and launch-and-pray (\`npx tsx bench/peers.ts\`, root, test bed)\n\n${section}\n`);
