/** In-process cowbufd with a small dir buffer on 127.0.0.1 (no QEMU, no namespaces), and the CLI against it. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { main } from '../../src/cli/main.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { openVolume } from '../../src/storage/registry.js';
import { freePort } from './ports.js';

/** A daemon whose state lives in `dir/name`, its config beside it. */
export async function dirDaemon(dir: string, name: string): Promise<Daemon> {
  const stateDir = join(dir, name);
  await openVolume({ driver: 'dir', path: join(stateDir, 'buffer') }).create(16 * 1024 ** 2);
  const config = join(dir, `${name}.yaml`);
  await writeFile(config, `stateDir: ${stateDir}\nbuffer:\n  driver: dir\n  size: 16MiB\ndaemon:\n  peerListen: 127.0.0.1:${await freePort()}\n`);
  return startDaemon(config, pino({ level: 'silent' }));
}

/** Runs `cowbuf <args>` against `on`'s API socket. */
export async function cli(on: Daemon, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'cowbuf', '--socket', on.config.daemon.socket, ...args], { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}
