/**
 * `cowbuf init`: choose the buffer's backend, pool and size (LXD-style questions in a terminal,
 * `--auto` for the defaults, or flags), create the volume and write the config. It runs on the
 * host itself, before any daemon exists. Re-running it on an initialised host changes nothing
 * unless `--force` is given (and even then never while overlays are in the buffer).
 */
import { Command } from 'commander';
import { loadConfig, parseConfig, saveConfig, volumeConfig, DEFAULT_BUFFER_SIZE, DEFAULT_STATE_DIR, type Config } from '../../config/config.js';
import { StorageError, ValidationError } from '../../errors.js';
import { Revert } from '../../revert.js';
import { openVolume } from '../../storage/registry.js';
import { checkDataset, zpoolNames } from '../../storage/zfs/zfs-commands.js';
import { formatBytes, parsePositiveSize } from '../../units.js';
import { configPath, type Io } from '../io.js';

interface InitFlags {
  readonly auto?: boolean;
  readonly driver?: string;
  readonly pool?: string;
  readonly size?: string;
  readonly path?: string;
  readonly stateDir?: string;
  readonly force?: boolean;
}

export class AlreadyInitialisedError extends StorageError {
  override readonly name: string = 'AlreadyInitialisedError';
}

async function firstPool(): Promise<string | undefined> {
  return (await zpoolNames().catch(() => []))[0];
}

function checkDriver(field: string, value: string): 'zfs' | 'dir' {
  if (value !== 'zfs' && value !== 'dir') throw new ValidationError(field, value, '`zfs` or `dir`');
  return value;
}

/** Asks until the answer validates (three tries), LXD-style `[default=...]`. */
async function ask<T>(io: Io, question: string, fallback: string, check: (answer: string) => T): Promise<T> {
  const prompt = io.prompt;
  if (!prompt) throw new Error('ask() without a terminal');
  for (let attempt = 1; ; attempt += 1) {
    const answer = (await prompt(`${question} [default=${fallback}]: `)).trim() || fallback;
    try {
      return check(answer);
    } catch (error) {
      if (!(error instanceof ValidationError) || attempt >= 3) throw error;
      io.stderr(`Invalid input: ${error.message}\n`);
    }
  }
}

async function choose(flags: InitFlags, io: Io): Promise<Config> {
  const stateDir = flags.stateDir ?? DEFAULT_STATE_DIR;
  const pool = flags.pool === undefined ? await firstPool() : checkDataset('--pool', flags.pool);
  let driver = flags.driver === undefined ? undefined : checkDriver('--driver', flags.driver);
  let size = flags.size === undefined ? undefined : parsePositiveSize('--size', flags.size);
  let chosenPool = pool;
  if (!flags.auto && io.prompt) {
    driver ??= await ask(io, 'Name of the storage backend for the migration buffer (zfs, dir)', pool ? 'zfs' : 'dir', (a) => checkDriver('backend', a));
    if (driver === 'zfs' && flags.pool === undefined) {
      chosenPool = await ask(io, 'Name of the ZFS pool (or dataset) to hold migration-cow-buffer', pool ?? 'tank', (a) => checkDataset('pool', a));
    }
    size ??= await ask(io, 'Size of the migration buffer', formatBytes(DEFAULT_BUFFER_SIZE).replace(' ', ''), (a) => parsePositiveSize('size', a));
  } else if (!flags.auto && (driver === undefined || size === undefined)) {
    throw new ValidationError('init', 'no terminal', 'run in a terminal, or given --auto, or both --driver and --size');
  }
  driver ??= pool ? 'zfs' : 'dir';
  if (driver === 'zfs' && !chosenPool) throw new ValidationError('--pool', undefined, 'the name of a ZFS pool (none was found)');
  return parseConfig({
    stateDir,
    buffer: { driver, size: size ?? DEFAULT_BUFFER_SIZE, ...(driver === 'zfs' ? { pool: chosenPool } : {}), ...(flags.path ? { path: flags.path } : {}) },
  });
}

export function initCommand(io: Io): Command {
  return new Command('init')
    .description('create the migration buffer and write the configuration (asks in a terminal; --auto takes the defaults)')
    .option('--auto', 'no questions: zfs on the first pool if one is usable, else dir; 10GiB')
    .option('--driver <name>', 'buffer backend: zfs or dir')
    .option('--pool <name>', 'zfs pool (or parent dataset) for migration-cow-buffer')
    .option('--size <size>', 'buffer size, e.g. 10GiB')
    .option('--path <dir>', 'where overlays live (default <state-dir>/buffer)')
    .option('--state-dir <dir>', `daemon state directory (default ${DEFAULT_STATE_DIR})`)
    .option('--force', 're-initialise an initialised host (refused while overlays exist)')
    .action(async (flags: InitFlags, command: Command) => {
      const path = configPath(command);
      const existing = await loadConfig(path);
      if (existing) {
        const volume = openVolume(volumeConfig(existing));
        if (await volume.exists()) {
          const status = await volume.status();
          if (!flags.force) {
            throw new AlreadyInitialisedError(
              `cowbuf is already initialised: ${status.driver} buffer ${status.source} of ${formatBytes(status.size)} (config ${path}); nothing changed (use --force to re-initialise)`,
            );
          }
          await volume.destroy();
        }
      }
      const config = await choose(flags, io);
      const volume = openVolume(volumeConfig(config));
      await Revert.run(async (revert) => {
        await volume.create(config.buffer.size);
        revert.add(() => volume.destroy());
        await saveConfig(path, config);
      });
      const status = await volume.status();
      io.stdout(`cowbuf initialised: ${status.driver} buffer ${status.source}, ${formatBytes(status.size)}, overlays in ${status.mountpoint}; config written to ${path}\n`);
    });
}
