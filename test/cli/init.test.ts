import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { loadConfig } from '../../src/config/config.js';
import { createTestPool, type TestPool } from '../../src/testbed/zfs.js';

const ROOT = new URL('../../build/test-runs/', import.meta.url).pathname;
let dir: string;
let pool: TestPool;
beforeAll(async () => {
  await mkdir(ROOT, { recursive: true });
  dir = await mkdtemp(join(ROOT, 'init-'));
  pool = await createTestPool(dir, 256 * 1024 ** 2);
});
afterAll(async () => {
  await pool.destroy();
  await rm(dir, { recursive: true, force: true });
});

async function cli(args: readonly string[], answers?: string[]): Promise<{ code: number; stdout: string; stderr: string; asked: string[] }> {
  let stdout = '';
  let stderr = '';
  const asked: string[] = [];
  const prompt = answers ? async (question: string) => (asked.push(question), answers.shift() ?? '') : undefined;
  const code = await main(['node', 'cowbuf', ...args], { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), ...(prompt ? { prompt } : {}) });
  return { code, stdout, stderr, asked };
}

let n = 0;
/** A fresh config path and state dir for one test. */
function host(): string[] {
  n += 1;
  return ['--config', join(dir, `h${n}`, 'cowbuf.yaml')];
}
const stateDir = () => join(dir, `h${n}`, 'state');

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

describe('cowbuf init', { timeout: 60_000 }, () => {
  it('--auto without a usable pool takes the dir backend and 10 GiB, writes the config, and a second init changes nothing', async () => {
    const config = host();
    const path = process.env.PATH;
    process.env.PATH = '/usr/bin:/bin';
    try {
      const first = await cli([...config, 'init', '--auto', '--state-dir', stateDir()]);
      expect(first).toMatchObject({ code: 0, stderr: '' });
      expect(first.stdout).toMatch(/^cowbuf initialised: dir buffer .*\/state\/buffer, 10\.0 GiB/);
      const written = await loadConfig(config[1] ?? '');
      expect(written?.buffer).toMatchObject({ driver: 'dir', size: 10 * 1024 ** 3 });
      const before = await readFile(config[1] ?? '', 'utf8');
      const again = await cli([...config, 'init', '--auto', '--size', '1GiB']);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/^Error: cowbuf is already initialised: dir buffer .* of 10\.0 GiB .*nothing changed \(use --force to re-initialise\)\n$/);
      expect(await readFile(config[1] ?? '', 'utf8')).toBe(before);
      const forced = await cli([...config, 'init', '--auto', '--force', '--size', '1GiB', '--state-dir', stateDir()]);
      expect(forced.code).toBe(0);
      expect((await loadConfig(config[1] ?? ''))?.buffer.size).toBe(1024 ** 3);
    } finally {
      process.env.PATH = path;
    }
  });

  it('uses the zfs pool given, and `buffer show` / `buffer set` work on it', async () => {
    const config = host();
    const result = await cli([...config, 'init', '--auto', '--pool', pool.name, '--size', '64MiB', '--state-dir', stateDir()]);
    expect(result.stdout).toContain(`zfs buffer ${pool.name}/migration-cow-buffer, 64.0 MiB`);
    const shown = await cli([...config, 'buffer', 'show', '--format', 'json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ driver: 'zfs', size: 64 * 1024 ** 2, capabilities: { hardLimit: true, fullErrno: 'EDQUOT' } });
    expect((await cli([...config, 'buffer', 'set', 'size=96MiB'])).stdout).toBe('buffer size set to 96.0 MiB\n');
    expect((await loadConfig(config[1] ?? ''))?.buffer.size).toBe(96 * 1024 ** 2);
    const table = await cli([...config, 'buffer', 'show']);
    expect(table.stdout.split('\n')[0]).toMatch(/^DRIVER\s+SOURCE\s+SIZE\s+USED\s+AVAILABLE\s+HARD LIMIT$/);
    const bad = await cli([...config, 'buffer', 'set', 'colour=blue']);
    expect(bad).toMatchObject({ code: 2, stderr: 'Error: Expected `buffer setting` to be `size=SIZE` (the only setting), got `colour=blue`\n' });
    await cli([...config, 'init', '--force', '--auto', '--driver', 'dir', '--size', '1MiB', '--state-dir', stateDir()]);
  });

  it('asks LXD-style questions in a terminal, re-asking after a bad answer', async () => {
    const config = host();
    const result = await cli([...config, 'init', '--state-dir', stateDir()], ['dir', '12 parsecs', '2GiB']);
    expect(result.code).toBe(0);
    expect(result.asked).toEqual([
      expect.stringMatching(/^Name of the storage backend for the migration buffer \(zfs, dir\) \[default=(zfs|dir)\]: $/),
      'Size of the migration buffer [default=10.0GiB]: ',
      'Size of the migration buffer [default=10.0GiB]: ',
    ]);
    expect(result.stderr).toContain('Invalid input: Expected `size` to be a size');
    expect((await loadConfig(config[1] ?? ''))?.buffer).toMatchObject({ driver: 'dir', size: 2 * 1024 ** 3 });
  });

  it.each([
    [['--size', '10XB'], 'Expected `--size` to be a size such as `10GiB`'],
    [['--size', '-1'], 'Expected `--size` to be a size such as `10GiB`'],
    [['--size', '0'], 'Expected `--size` to be a positive size'],
    [['--driver', 'lvm'], 'Expected `--driver` to be `zfs` or `dir`, got `lvm`'],
    [['--pool', 'tank/..'], 'Expected `--pool` to be a ZFS dataset name'],
    [['--pool', 'my pool'], 'Expected `--pool` to be a ZFS dataset name'],
    [['--pool', 'a;b'], 'Expected `--pool` to be a ZFS dataset name'],
    [['--pool', '-x'], 'Expected `--pool` to be a ZFS dataset name'],
  ])('rejects %j with one clear line and creates nothing', async (flags, message) => {
    const config = host();
    const result = await cli([...config, 'init', '--auto', '--state-dir', stateDir(), ...flags]);
    expect(result.code).toBe(2);
    expect(result.stderr.startsWith(`Error: ${message}`)).toBe(true);
    expect(result.stderr.split('\n')).toHaveLength(2);
    expect(await exists(config[1] ?? '')).toBe(false);
    expect(await exists(join(stateDir(), 'buffer'))).toBe(false);
  });

  it('refuses a size larger than the pool, naming both numbers, and creates nothing', async () => {
    const config = host();
    const result = await cli([...config, 'init', '--auto', '--pool', pool.name, '--size', '4GiB', '--state-dir', stateDir()]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^Error: pool ${pool.name} cannot hold 4294967296 bytes: only \\d+ bytes are available\\n$`));
    expect(await exists(config[1] ?? '')).toBe(false);
  });

  it('names a missing pool', async () => {
    const result = await cli([...host(), 'init', '--auto', '--pool', 'cowbufnosuchpool', '--state-dir', stateDir()]);
    expect(result).toMatchObject({ code: 1, stderr: 'Error: ZFS pool or dataset cowbufnosuchpool not found\n' });
  });

  it('needs a terminal, --auto, or both --driver and --size', async () => {
    const result = await cli([...host(), 'init', '--driver', 'dir']);
    expect(result).toMatchObject({ code: 2, stderr: 'Error: Expected `init` to be run in a terminal, or given --auto, or both --driver and --size, got `no terminal`\n' });
  });
});
