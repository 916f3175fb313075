/**
 * One wrapper per `zfs`/`zpool` subcommand, all through the subprocess chokepoint and all asking
 * for script output (`-H`, `-p`) so nothing parses human tables. Dataset names are validated
 * before they become arguments.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, StorageError, ValidationError } from '../../errors.js';
import { run, streamCommand, type RunOptions, type StreamingChild } from '../../exec/run.js';
import type { CallOptions } from '../volume.js';

const COMPONENT = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/** `pool` or `pool/parent/...`: each component a plain ZFS name, no `..`, no leading `-`. */
export function checkDataset(field: string, name: string): string {
  const parts = typeof name === 'string' ? name.split('/') : [];
  if (parts.length === 0 || parts.some((part) => !COMPONENT.test(part) || part.includes('..'))) {
    throw new ValidationError(field, name, 'a ZFS dataset name (letters, digits, `_.:-`, components separated by `/`, no `..`, not starting with `-`)');
  }
  return name;
}

async function zfsRun(cmd: 'zfs' | 'zpool', args: readonly string[], options: CallOptions & Pick<RunOptions, 'okExitCodes'> = {}) {
  try {
    return await run(cmd, args, { timeoutMs: 30_000, ...options });
  } catch (error) {
    if (error instanceof CommandError && error.exitCode === undefined && !error.timedOut && !error.aborted) {
      throw new StorageError(`\`${cmd}\` is not installed or cannot run (${error.reason ?? 'unknown'})`, { cause: error });
    }
    throw error;
  }
}

/** Numeric-or-string values of `props`, or undefined when the dataset does not exist. */
export async function zfsGet(dataset: string, props: readonly string[], options: CallOptions = {}): Promise<Map<string, string> | undefined> {
  const result = await zfsRun('zfs', ['get', '-Hp', '-o', 'property,value', props.join(','), checkDataset('dataset', dataset)], { ...options, okExitCodes: [1] });
  if (result.exitCode !== 0) {
    if (/does not exist/.test(result.stderr)) return undefined;
    throw new CommandError({ cmd: 'zfs', args: ['get', props.join(','), dataset], exitCode: result.exitCode, stderr: result.stderr, timedOut: false, aborted: false, reason: undefined });
  }
  return new Map(result.stdout.split('\n').filter(Boolean).map((line) => line.split('\t') as [string, string]));
}

export async function zfsGetBytes(dataset: string, prop: string, options: CallOptions = {}): Promise<number> {
  const value = (await zfsGet(dataset, [prop], options))?.get(prop);
  const bytes = Number(value);
  if (value === undefined || !Number.isFinite(bytes)) throw new StorageError(`cannot read ${prop} of ${dataset} (got ${String(value)})`);
  return bytes;
}

export async function zfsCreate(dataset: string, props: Readonly<Record<string, string>>, options: CallOptions = {}): Promise<void> {
  const args = ['create', ...Object.entries(props).flatMap(([key, value]) => ['-o', `${key}=${value}`]), checkDataset('dataset', dataset)];
  await zfsRun('zfs', args, options);
}

export async function zfsSet(dataset: string, prop: string, value: string, options: CallOptions = {}): Promise<void> {
  await zfsRun('zfs', ['set', `${prop}=${value}`, checkDataset('dataset', dataset)], options);
}

/** `dataset@snapshot`, both parts checked. */
export function checkSnapshot(field: string, name: string): string {
  const [dataset = '', snapshot = '', ...rest] = typeof name === 'string' ? name.split('@') : [];
  if (rest.length > 0 || !COMPONENT.test(snapshot)) throw new ValidationError(field, name, 'a ZFS snapshot name (`dataset@name`)');
  checkDataset(field, dataset);
  return name;
}

/**
 * Destroys a dataset (with its snapshots and children when `recursive`) or a snapshot.
 * zfs-fuse sometimes answers "dataset is busy" right after a file was closed; a retry works.
 */
export async function zfsDestroy(dataset: string, options: CallOptions & { readonly recursive?: boolean } = {}): Promise<void> {
  const target = dataset.includes('@') ? checkSnapshot('snapshot', dataset) : checkDataset('dataset', dataset);
  for (let attempt = 0; ; attempt += 1) {
    try {
      await zfsRun('zfs', ['destroy', ...(options.recursive ? ['-r'] : []), target], options);
      return;
    } catch (error) {
      if (!(error instanceof CommandError) || !/busy/.test(error.stderr) || attempt >= 10) throw error;
      await sleep(500, undefined, options.signal ? { signal: options.signal } : {});
    }
  }
}

export async function zpoolNames(options: CallOptions = {}): Promise<string[]> {
  const { stdout } = await zfsRun('zpool', ['list', '-H', '-o', 'name'], options);
  return stdout.split('\n').filter(Boolean);
}

export async function zfsSnapshot(snapshot: string, options: CallOptions = {}): Promise<void> {
  await zfsRun('zfs', ['snapshot', checkSnapshot('snapshot', snapshot)], options);
}

/** Every snapshot on the host, `dataset@name`. */
export async function zfsSnapshots(options: CallOptions = {}): Promise<string[]> {
  const { stdout } = await zfsRun('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot'], options);
  return stdout.split('\n').filter(Boolean);
}

/** The filesystem dataset mounted exactly at `dir`, if any (no pool answering means none). */
export async function zfsDatasetMountedAt(dir: string, options: CallOptions = {}): Promise<string | undefined> {
  let stdout: string;
  try {
    ({ stdout } = await zfsRun('zfs', ['list', '-H', '-o', 'name,mountpoint', '-t', 'filesystem'], options));
  } catch {
    return undefined;
  }
  return stdout
    .split('\n')
    .map((line) => line.split('\t'))
    .find(([, mountpoint]) => mountpoint === dir)?.[0];
}

/** `zfs send` of a snapshot: the caller reads the stream. */
export function zfsSend(snapshot: string, options: CallOptions = {}): StreamingChild {
  return streamCommand('zfs', ['send', checkSnapshot('snapshot', snapshot)], options);
}

/** `zfs receive` into a new dataset: the caller writes the stream and ends stdin. */
export function zfsReceive(dataset: string, options: CallOptions = {}): StreamingChild {
  return streamCommand('zfs', ['receive', checkDataset('dataset', dataset)], options);
}
