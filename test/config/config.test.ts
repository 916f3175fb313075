import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, saveConfig, setConfigValue } from '../../src/config/config.js';
import { ValidationError } from '../../src/errors.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('config');

describe('config', () => {
  it('fills documented defaults and keeps exact sizes through a save/load round trip', async () => {
    const config = parseConfig({ buffer: { driver: 'zfs', pool: 'tank/vm', size: '10GiB' } });
    expect(config).toMatchObject({ stateDir: '/var/lib/cowbuf', buffer: { driver: 'zfs', pool: 'tank/vm', size: 10 * 1024 ** 3, path: '/var/lib/cowbuf/buffer' } });
    expect(config.daemon).toEqual({ socket: '/var/lib/cowbuf/unix.socket', peerListen: '0.0.0.0:8443', logLevel: 'info' });
    expect(parseConfig({ buffer: { driver: 'dir', size: '1GiB' }, daemon: { accel: 'tcg' } }).daemon.accel).toBe('tcg');
    expect(config.migration).toMatchObject({ policy: 'deadline', controlPeriodMs: 500, maxOutgoing: 4, assumedLinkRate: 12_500_000 });
    const odd = parseConfig({ stateDir: '/srv/cb', buffer: { driver: 'dir', size: 1234567 } });
    await saveConfig(join(tempDir(), 'a.yaml'), odd);
    expect(await loadConfig(join(tempDir(), 'a.yaml'))).toEqual(odd);
    await saveConfig(join(tempDir(), 'b.yaml'), config);
    expect(await readFile(join(tempDir(), 'b.yaml'), 'utf8')).toContain('size: 10.0GiB');
    expect(await loadConfig(join(tempDir(), 'b.yaml'))).toEqual(config);
  });

  it('parses the documented example file as it stands', async () => {
    const example = await loadConfig(new URL('../../config/cowbuf.example.yaml', import.meta.url).pathname);
    expect(example?.migration.convergence.multifdAboveBytesPerSecond).toBe(1.25e9);
    expect(example?.migration.minBin).toBe(64 * 1024 ** 2);
  });

  it('changes one setting in place, keeping what the admin wrote', async () => {
    const path = join(tempDir(), 'edit.yaml');
    await writeFile(path, '# mine\nbuffer:\n  driver: dir\n  size: 1GiB # keep\nmigration:\n  maxOutgoing: 2\n');
    const updated = await setConfigValue(path, ['buffer', 'size'], '2GiB');
    expect(updated.buffer.size).toBe(2 * 1024 ** 3);
    expect(updated.migration.maxOutgoing).toBe(2);
    expect(await readFile(path, 'utf8')).toContain('# mine');
  });

  it.each([
    [{ buffer: { driver: 'dir', size: '1GiB' }, migration: { policy: 'fast' } }, 'Expected `migration.policy` to be one of lx066, deadline, got `fast`'],
    [{ buffer: { driver: 'dir', size: '1GiB' }, migration: { convergence: { postcopy: 'yes' } } }, 'Expected `migration.convergence.postcopy` to be `true` or `false`'],
    [{ buffer: { driver: 'dir', size: '1GiB' }, migration: { maxOutgoing: 0 } }, 'Expected `migration.maxOutgoing` to be an integer ≥ 1'],
    [{ buffer: { driver: 'dir', size: '1GiB' }, daemon: { peerListen: 'everywhere' } }, 'Expected `daemon.peerListen` to be a `host:port` address'],
    [{ buffer: { driver: 'dir', size: '1GiB' }, daemon: { accel: 'hvf' } }, 'Expected `daemon.accel` to be `kvm` or `tcg`, got `hvf`'],
    [{ buffer: { driver: 'lvm', size: '1GiB' } }, 'Expected `buffer.driver` to be `zfs` or `dir`, got `lvm`'],
    [{ buffer: { driver: 'dir', size: '-1GiB' } }, 'Expected `buffer.size` to be a size'],
    [{ buffer: { driver: 'dir', size: 0 } }, 'Expected `buffer.size` to be a positive size'],
    [{ buffer: { driver: 'zfs', size: '1GiB' } }, 'Expected `buffer.pool` to be present (the zfs driver needs a pool)'],
    [{ buffer: { driver: 'zfs', size: '1GiB', pool: 'tank/../x' } }, 'Expected `buffer.pool` to be a ZFS dataset name'],
    [{ buffer: { driver: 'dir', size: '1GiB', sise: 1 } }, 'Expected `buffer.sise` to be absent (unknown field'],
    [{ stateDir: 'relative', buffer: { driver: 'dir', size: '1GiB' } }, 'Expected `stateDir` to be an absolute path, got `relative`'],
  ])('rejects %j naming the field', (raw, message) => {
    expect(() => parseConfig(raw)).toThrow(ValidationError);
    expect(() => parseConfig(raw)).toThrow(message);
  });

  it('reports a file that is not YAML, prefixes field errors with the file, and treats a missing file as none', async () => {
    await writeFile(join(tempDir(), 'bad.yaml'), 'buffer: [unclosed\n');
    await expect(loadConfig(join(tempDir(), 'bad.yaml'))).rejects.toBeInstanceOf(ConfigError);
    await writeFile(join(tempDir(), 'field.yaml'), 'buffer:\n  driver: dir\n  size: 10XB\n');
    await expect(loadConfig(join(tempDir(), 'field.yaml'))).rejects.toThrow(`Expected \`${join(tempDir(), 'field.yaml')}: buffer.size\` to be a size`);
    expect(await loadConfig(join(tempDir(), 'none.yaml'))).toBeUndefined();
  });
});

describe('config fuzzing', () => {
  // Documents shaped like a config (the real keys, any values) reach deep into the parser.
  const section = (keys: readonly string[]) => fc.dictionary(fc.constantFrom(...keys), fc.jsonValue(), { maxKeys: keys.length });
  const shaped = fc.record(
    {
      stateDir: fc.jsonValue(),
      buffer: fc.oneof(section(['driver', 'pool', 'size', 'path']), fc.jsonValue()),
      daemon: fc.oneof(section(['socket', 'socketGroup', 'peerListen', 'logLevel', 'accel']), fc.jsonValue()),
      migration: fc.oneof(section(['policy', 'throttle', 'controlPeriodMs', 'hysteresis', 'assumedLinkRate', 'maxOutgoing', 'maxIncoming', 'minBin', 'mirrorReadySeconds', 'incomingDataset', 'convergence']), fc.jsonValue()),
    },
    { requiredKeys: [] },
  );

  it('never crashes: any document parses or is refused with a ValidationError naming a field', () => {
    fc.assert(
      fc.property(fc.oneof(shaped, fc.jsonValue()), (raw) => {
        try {
          parseConfig(raw);
        } catch (error) {
          expect(error).toBeInstanceOf(ValidationError);
          expect((error as Error).message).toMatch(/^Expected `.*` to be /s);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('never crashes on arbitrary YAML text: refused with a ConfigError', async () => {
    const path = join(tempDir(), 'fuzz.yaml');
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200 }), async (text) => {
        await writeFile(path, text);
        try {
          await loadConfig(path);
        } catch (error) {
          expect(error instanceof ConfigError || error instanceof ValidationError).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
