/**
 * The README's main job: a real live migration on this machine. Sets up two hosts (network
 * namespaces joined by a 100 Mbit/s veth), a zfs-fuse pool for the source's migration buffer,
 * starts a cowbufd in each namespace, boots a busy guest on the source, migrates it with
 * `cowbuf migrate` (progress bars in a terminal, plain lines otherwise), checks that the guest is
 * alive and writing on the target with every write it made, then tears everything down.
 * Needs root and the test bed (`npm run testbed`).
 *
 *     npx tsx scripts/demo.ts
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { main as cli } from '../src/cli/main.js';
import { run } from '../src/exec/run.js';
import { startDaemonPair } from '../src/testbed/daemons.js';
import { guestVmBody, waitForSerial } from '../src/testbed/guest.js';
import { ensureZfsFuse, stopZfsFuse } from '../src/testbed/zfs.js';

const say = (text: string) => console.log(`\x1b[1m==> ${text}\x1b[0m`);
const root = new URL('../build/demo/', import.meta.url).pathname;
await mkdir(root, { recursive: true });
const dir = await mkdtemp(join(root, 'run-'));
const startedZfs = await ensureZfsFuse();
say('two hosts (network namespaces) joined by a 100 Mbit/s link; a 256 MiB zfs migration buffer on the source');
const pair = await startDaemonPair({ dir, bufferSize: 256 * 1024 ** 2, linkRate: '100mbit' });
let code = 1;
try {
  say(`cowbufd running in ${pair.hosts.src.ns} (${pair.source.ip}) and ${pair.hosts.dst.ns} (${pair.target.ip}); each trusts the other's certificate`);
  const disk = join(dir, 'guest.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '256M']);
  await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 7 128M 96M', disk]);
  const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', guestVmBody('busy1', disk, { diskRateMiB: 2, diskSpanMiB: 32, dirtyRateMiB: 8, verifyEvery: 4 }, 256));
  const before = await waitForSerial(vm.serialLog, (r) => r.verifications.length > 0, 'the guest verifying its writes', { timeoutMs: 120_000 });
  say(`guest busy1 boots and writes 2 MiB/s, dirties 8 MiB/s of RAM; its own read-back: ${JSON.stringify(before.verifications.at(-1))}`);
  say('cowbuf migrate busy1 --target dst');
  code = await cli(['node', 'cowbuf', '--socket', join(pair.source.stateDir, 'unix.socket'), 'migrate', 'busy1', '--target', 'dst']);
  if (code !== 0) throw new Error('the migration did not complete');
  const [arrived] = await pair.target.api.call<Array<{ name: string; serialLog: string }>>('GET', '/1.0/vms');
  const after = await waitForSerial(arrived?.serialLog ?? '', (r) => r.verifications.length >= 2, 'the guest verifying on the target', { timeoutMs: 120_000 });
  const lost = after.verifications.reduce((sum, v) => sum + v.lost, 0);
  say(`busy1 runs on the target: heartbeat ${after.heartbeats.at(-1)?.n}, ${after.verifications.length} verifications, ${lost} lost writes, ${after.ioErrors.length} I/O errors`);
  code = lost === 0 && after.ioErrors.length === 0 ? 0 : 1;
} catch (error) {
  console.error(`demo failed: ${(error as Error).message} (daemon logs in ${dir})`);
  code = 1;
} finally {
  say('cleaning up');
  await pair.close();
  if (startedZfs) await stopZfsFuse();
  if (code === 0) await rm(dir, { recursive: true, force: true });
}
process.exitCode = code;
