import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startDaemon } from '../../src/daemon/daemon.js';
import { AlreadyRunningError, lockStateDir } from '../../src/daemon/lock.js';
import { run, spawn } from '../../src/exec/run.js';
import { openVolume } from '../../src/storage/registry.js';
import { freePort } from '../support/ports.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('lock');
const ENTRY = fileURLToPath(new URL('../../src/daemon/entry.ts', import.meta.url));

describe('one cowbufd per state directory', () => {
  it('a second daemon process on the same state directory is refused, naming the first', async () => {
    const stateDir = join(tempDir(), 'state');
    await openVolume({ driver: 'dir', path: join(stateDir, 'buffer') }).create(16 * 1024 ** 2);
    const config = join(tempDir(), 'cowbuf.yaml');
    await writeFile(config, `stateDir: ${stateDir}\nbuffer:\n  driver: dir\n  size: 16MiB\ndaemon:\n  peerListen: 127.0.0.1:${await freePort()}\n`);
    const first = await startDaemon(config, pino({ level: 'silent' }));
    try {
      const second = await run(process.execPath, ['--import', 'tsx', ENTRY, '--config', config], { okExitCodes: [1], timeoutMs: 30_000 });
      expect(second.exitCode).toBe(1);
      expect(second.stderr).toContain(`another cowbufd (pid ${process.pid}) already runs on ${stateDir}`);
      // The refusal touched nothing of the first daemon's.
      expect((await readFile(join(stateDir, 'cowbufd.pid'), 'utf8')).trim()).toBe(String(process.pid));
    } finally {
      await first.close();
    }
  });

  it('a pid file left by a dead daemon is taken over; one held by a live process is not', async () => {
    const dir = join(tempDir(), 'stale');
    await run('mkdir', ['-p', dir]);
    const sleeper = spawn('sleep', ['30'], { logFile: join(dir, 'sleep.log') });
    try {
      await writeFile(join(dir, 'cowbufd.pid'), `${sleeper.pid ?? 0}\n`);
      await expect(lockStateDir(dir)).rejects.toThrow(new AlreadyRunningError(`another cowbufd (pid ${sleeper.pid ?? 0}) already runs on ${dir}`));
    } finally {
      sleeper.kill('SIGKILL');
      await sleeper.exited;
    }
    const release = await lockStateDir(dir);
    expect((await readFile(join(dir, 'cowbufd.pid'), 'utf8')).trim()).toBe(String(process.pid));
    await release();
  });
});
