/**
 * cowbuf's configuration file (YAML), validated on load: every bad value is reported with its
 * dotted path, unknown keys are refused (a typo must not fall back to a default silently).
 * See config/cowbuf.example.yaml for the documented defaults.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { parseDocument, stringify } from 'yaml';
import { CowbufError, ValidationError } from '../errors.js';
import { checkDataset } from '../storage/zfs/zfs-commands.js';
import type { VolumeConfig } from '../storage/registry.js';
import { throttlePolicy } from '../buffer/throttle/index.js';
import { checkName } from '../exec/run.js';
import { DEFAULT_CONVERGENCE, type ConvergenceConfig } from '../migration/convergence.js';
import { checkAddress } from '../peer/trust.js';
import { formatBytes, parsePositiveSize, parseRate } from '../units.js';
import { number, object, string } from '../validate.js';
import type { Accel } from '../vm/spec.js';

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

export interface DaemonConfig {
  /** The REST API's unix socket (mode 0660). */
  readonly socket: string;
  /** Group that owns the socket, so its members may use the API. */
  readonly socketGroup?: string;
  /** `host:port` the peer API listens on (mutual TLS). */
  readonly peerListen: string;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** The accelerator this host runs guests under, where detection would choose wrong; detected when absent. */
  readonly accel?: Accel;
}

export interface MigrationConfig {
  readonly policy: string;
  /** Apply the write throttle. `false` exists only to demonstrate what the throttle prevents. */
  readonly throttle: boolean;
  readonly controlPeriodMs: number;
  readonly hysteresis: number;
  /** bytes/s assumed for a peer until its link is measured. */
  readonly assumedLinkRate: number;
  readonly maxOutgoing: number;
  readonly maxIncoming: number;
  /** bytes: a migration is admitted only while the buffer has this much room left. */
  readonly minBin: number;
  readonly mirrorReadySeconds: number;
  /**
   * A migration rolls back once its link has acknowledged nothing this long with bytes waiting (a
   * cut link). A target gives an incoming one up after hearing nothing for longer than its
   * source can take to give up (source-silence.ts).
   */
  readonly linkLostSeconds: number;
  /** ZFS dataset under which arriving VMs' disks are received when the source ships them by `zfs send`. */
  readonly incomingDataset?: string;
  readonly convergence: ConvergenceConfig;
}

export interface Config {
  readonly stateDir: string;
  readonly buffer: BufferConfig;
  readonly daemon: DaemonConfig;
  readonly migration: MigrationConfig;
}

export class ConfigError extends CowbufError {
  override readonly name: string = 'ConfigError';
}

function absolutePath(field: string, value: unknown): string {
  const path = string(field, value);
  if (!isAbsolute(path)) throw new ValidationError(field, value, 'an absolute path');
  return path;
}

function parseDaemon(raw: unknown, stateDir: string): DaemonConfig {
  const daemon = raw === undefined ? {} : object('daemon', raw, [], ['socket', 'socketGroup', 'peerListen', 'logLevel', 'accel']);
  const logLevel = daemon.logLevel === undefined ? 'info' : string('daemon.logLevel', daemon.logLevel);
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) throw new ValidationError('daemon.logLevel', logLevel, '`debug`, `info`, `warn` or `error`');
  return {
    socket: daemon.socket === undefined ? join(stateDir, 'unix.socket') : absolutePath('daemon.socket', daemon.socket),
    ...(daemon.socketGroup !== undefined ? { socketGroup: checkName('daemon.socketGroup', string('daemon.socketGroup', daemon.socketGroup)) } : {}),
    peerListen: daemon.peerListen === undefined ? '0.0.0.0:8443' : checkAddress('daemon.peerListen', string('daemon.peerListen', daemon.peerListen)),
    logLevel: logLevel as DaemonConfig['logLevel'],
    ...(daemon.accel !== undefined ? { accel: parseAccel(daemon.accel) } : {}),
  };
}

function parseAccel(value: unknown): Accel {
  const accel = string('daemon.accel', value);
  if (accel !== 'kvm' && accel !== 'tcg') throw new ValidationError('daemon.accel', accel, '`kvm` or `tcg`');
  return accel;
}

const CONVERGENCE_NUMBERS = ['downtimeStartMs', 'downtimeStepMs', 'downtimeMaxMs', 'downtimeStepSeconds', 'cpuThrottleInitial', 'cpuThrottleIncrement', 'throttleTriggerPercent', 'xbzrleCacheFraction', 'multifdChannels', 'timeoutSecondsPerGiB', 'timeoutMinSeconds', 'stallSeconds'] as const;
const CONVERGENCE_FLAGS = ['autoConverge', 'xbzrle', 'postcopy'] as const;

function parseMigration(raw: unknown): MigrationConfig {
  const m = raw === undefined ? {} : object('migration', raw, [], ['policy', 'throttle', 'controlPeriodMs', 'hysteresis', 'assumedLinkRate', 'maxOutgoing', 'maxIncoming', 'minBin', 'mirrorReadySeconds', 'linkLostSeconds', 'incomingDataset', 'convergence']);
  const policy = m.policy === undefined ? 'deadline' : throttlePolicy(string('migration.policy', m.policy), 'migration.policy').name;
  if (m.throttle !== undefined && typeof m.throttle !== 'boolean') throw new ValidationError('migration.throttle', m.throttle, '`true` or `false`');
  return {
    policy,
    throttle: m.throttle !== false,
    controlPeriodMs: m.controlPeriodMs === undefined ? 500 : number('migration.controlPeriodMs', m.controlPeriodMs, { min: 50, max: 60_000, integer: true }),
    hysteresis: m.hysteresis === undefined ? 0.05 : number('migration.hysteresis', m.hysteresis, { min: 0, max: 1 }),
    assumedLinkRate: m.assumedLinkRate === undefined ? 12_500_000 : parseRate('migration.assumedLinkRate', m.assumedLinkRate),
    maxOutgoing: m.maxOutgoing === undefined ? 4 : number('migration.maxOutgoing', m.maxOutgoing, { min: 1, max: 1000, integer: true }),
    maxIncoming: m.maxIncoming === undefined ? 4 : number('migration.maxIncoming', m.maxIncoming, { min: 1, max: 1000, integer: true }),
    minBin: m.minBin === undefined ? 64 * 1024 ** 2 : parsePositiveSize('migration.minBin', m.minBin),
    mirrorReadySeconds: m.mirrorReadySeconds === undefined ? 60 : number('migration.mirrorReadySeconds', m.mirrorReadySeconds, { min: 1 }),
    linkLostSeconds: m.linkLostSeconds === undefined ? 30 : number('migration.linkLostSeconds', m.linkLostSeconds, { min: 2, max: 3600 }),
    ...(m.incomingDataset === undefined ? {} : { incomingDataset: checkDataset('migration.incomingDataset', string('migration.incomingDataset', m.incomingDataset)) }),
    convergence: parseConvergence('migration.convergence', m.convergence),
  };
}

/** The RAM convergence policy's settings over its defaults (also read by simulator scenarios). */
export function parseConvergence(field: string, raw: unknown): ConvergenceConfig {
  const c = raw === undefined ? {} : object(field, raw, [], [...CONVERGENCE_NUMBERS, ...CONVERGENCE_FLAGS, 'multifdAbove']);
  const convergence: Record<string, unknown> = { ...DEFAULT_CONVERGENCE };
  for (const key of CONVERGENCE_NUMBERS) if (c[key] !== undefined) convergence[key] = number(`${field}.${key}`, c[key], { min: 0 });
  for (const key of CONVERGENCE_FLAGS) {
    if (c[key] === undefined) continue;
    if (typeof c[key] !== 'boolean') throw new ValidationError(`${field}.${key}`, c[key], '`true` or `false`');
    convergence[key] = c[key];
  }
  if (c.multifdAbove !== undefined) convergence.multifdAboveBytesPerSecond = parseRate(`${field}.multifdAbove`, c.multifdAbove);
  return convergence as unknown as ConvergenceConfig;
}

/** @throws ValidationError naming the bad field */
export function parseConfig(raw: unknown): Config {
  const root = object('', raw, ['buffer'], ['stateDir', 'daemon', 'migration']);
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
    daemon: parseDaemon(root.daemon, stateDir),
    migration: parseMigration(root.migration),
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
  // Warnings (an unknown `!tag`) are refused like errors: a config is read exactly or not at all.
  const document = parseDocument(text);
  const problem = document.errors[0] ?? document.warnings[0];
  let raw: unknown;
  try {
    if (problem) throw problem;
    // toJS itself throws on an alias with no anchor.
    raw = document.toJS();
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

/** Written atomically (temp file + rename) so a crash never leaves half a config. Only the buffer
 * and the state dir are written: every other setting keeps its documented default unless the
 * admin sets it (see config/cowbuf.example.yaml). */
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

/**
 * Changes one setting in the file, keeping every other line (and comment) the admin wrote.
 * @throws ConfigError, ValidationError (the result must still be a valid config)
 */
export async function setConfigValue(path: string, keyPath: readonly string[], value: string): Promise<Config> {
  const document = parseDocument(await readFile(path, 'utf8'));
  document.setIn(keyPath, value);
  const updated = parseConfig(document.toJS());
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, document.toString(), { mode: 0o644 });
  await rename(temp, path);
  return updated;
}

export function volumeConfig(config: Config): VolumeConfig {
  return config.buffer.driver === 'zfs'
    ? { driver: 'zfs', pool: config.buffer.pool ?? '', mountpoint: config.buffer.path }
    : { driver: 'dir', path: config.buffer.path };
}
