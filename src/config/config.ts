/**
 * cowbuf's configuration file (YAML), validated on load: every bad value is reported with its
 * dotted path, unknown keys are refused (a typo must not fall back to a default silently).
 * See config/cowbuf.example.yaml for the documented defaults.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { CowbufError, ValidationError } from '../errors.js';
import { checkDataset } from '../storage/zfs/zfs-commands.js';
import type { VolumeConfig } from '../storage/registry.js';
import { formatBytes, parsePositiveSize } from '../units.js';
import { object, string } from '../validate.js';

export const DEFAULT_CONFIG_PATH = '/etc/cowbuf/cowbuf.yaml';
export const DEFAULT_STATE_DIR = '/var/lib/cowbuf';
export const DEFAULT_BUFFER_SIZE = 10 * 1024 ** 3;

export interface BufferConfig {
  readonly driver: 'zfs' | 'dir';
  /** Bytes. */
  readonly size: number;
  /** zfs: the pool (or parent dataset) that holds `migration-cow-buffer`. */
  readonly pool?: string;
  /** Where overlays live: the zfs mountpoint, or the dir backend's directory. */
  readonly path: string;
}

export interface Config {
  readonly stateDir: string;
  readonly buffer: BufferConfig;
}

export class ConfigError extends CowbufError {
  override readonly name: string = 'ConfigError';
}

function absolutePath(field: string, value: unknown): string {
  const path = string(field, value);
  if (!isAbsolute(path)) throw new ValidationError(field, value, 'an absolute path');
  return path;
}

/** @throws ValidationError naming the bad field */
export function parseConfig(raw: unknown): Config {
  const root = object('', raw, ['buffer'], ['stateDir']);
  const stateDir = root.stateDir === undefined ? DEFAULT_STATE_DIR : absolutePath('stateDir', root.stateDir);
  const buffer = object('buffer', root.buffer, ['driver', 'size'], ['pool', 'path']);
  const driver = string('buffer.driver', buffer.driver);
  if (driver !== 'zfs' && driver !== 'dir') throw new ValidationError('buffer.driver', driver, '`zfs` or `dir`');
  if (driver === 'zfs' && buffer.pool === undefined) throw new ValidationError('buffer.pool', undefined, 'present (the zfs driver needs a pool)');
  return {
    stateDir,
    buffer: {
      driver,
      size: parsePositiveSize('buffer.size', buffer.size),
      ...(buffer.pool !== undefined ? { pool: checkDataset('buffer.pool', string('buffer.pool', buffer.pool)) } : {}),
      path: buffer.path === undefined ? join(stateDir, 'buffer') : absolutePath('buffer.path', buffer.path),
    },
  };
}

/** @returns undefined when there is no file. @throws ConfigError (unreadable or not YAML), ValidationError */
export async function loadConfig(path: string): Promise<Config | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (error) {
    throw new ConfigError(`${path} is not valid YAML: ${(error as Error).message.split('\n')[0] ?? ''}`, { cause: error });
  }
  try {
    return parseConfig(raw);
  } catch (error) {
    if (error instanceof ValidationError) throw new ValidationError(`${path}: ${error.field}`, error.value, error.expected, { cause: error });
    throw error;
  }
}

/** Written atomically (temp file + rename) so a crash never leaves half a config. */
export async function saveConfig(path: string, config: Config): Promise<void> {
  const body = {
    stateDir: config.stateDir,
    buffer: { driver: config.buffer.driver, size: formatBytes(config.buffer.size).replace(' ', ''), ...(config.buffer.pool ? { pool: config.buffer.pool } : {}), path: config.buffer.path },
  };
  // formatBytes rounds; keep the exact byte count when it would not survive the round trip.
  if (parsePositiveSize('size', body.buffer.size) !== config.buffer.size) body.buffer.size = String(config.buffer.size);
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, `# cowbuf configuration (written by cowbuf init; see config/cowbuf.example.yaml)\n${stringify(body)}`, { mode: 0o644 });
  await rename(temp, path);
}

export function volumeConfig(config: Config): VolumeConfig {
  return config.buffer.driver === 'zfs'
    ? { driver: 'zfs', pool: config.buffer.pool ?? '', mountpoint: config.buffer.path }
    : { driver: 'dir', path: config.buffer.path };
}
