import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { run } from '../../src/exec/run.js';
import { openVolume } from '../../src/storage/registry.js';
import { freePort } from '../support/ports.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('socket');
let daemon: Daemon;

beforeAll(async () => {
  // Traversable by anyone, so only the socket's own mode and group decide.
  await chmod(tempDir(), 0o755);
  const stateDir = join(tempDir(), 'state');
  await openVolume({ driver: 'dir', path: join(stateDir, 'buffer') }).create(16 * 1024 ** 2);
  const config = join(tempDir(), 'cowbuf.yaml');
  await writeFile(config, `stateDir: ${stateDir}\nbuffer:\n  driver: dir\n  size: 16MiB\ndaemon:\n  socketGroup: adm\n  peerListen: 127.0.0.1:${await freePort()}\n`);
  daemon = await startDaemon(config, pino({ level: 'silent' }));
  await chmod(stateDir, 0o755);
});
afterAll(async () => {
  await daemon.close();
});

/** Connects to the API socket as uid/gid 65534 (nobody), with or without the socket's group. */
async function connectAsNobody(groups: string): Promise<string> {
  const script = `const s = require('net').connect(process.argv[1]);
s.on('connect', () => s.write('GET /1.0 HTTP/1.0\\r\\n\\r\\n'));
s.on('data', (d) => { console.log(d.toString().slice(0, 12)); process.exit(0); });
s.on('error', (e) => { console.log(e.code); process.exit(0); });`;
  const { stdout } = await run('setpriv', ['--reuid=65534', '--regid=65534', `--groups=${groups}`, process.execPath, '-e', script, daemon.config.daemon.socket]);
  return stdout.trim();
}

describe('the API socket', () => {
  it('is 0660 root:<socketGroup>: a member of the group gets in, anyone else is refused by the kernel', async () => {
    const { stdout } = await run('stat', ['-c', '%a %U %G', daemon.config.daemon.socket]);
    expect(stdout.trim()).toBe('660 root adm');
    expect(await connectAsNobody('4')).toBe('HTTP/1.1 200');
    expect(await connectAsNobody('65534')).toBe('EACCES');
  });
});
