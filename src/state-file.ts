/**
 * Durable JSON state (trust store, tokens, journal): written to a temporary file, fsync'd,
 * renamed over the old one and the directory fsync'd, so a crash at any instant leaves either
 * the old document or the new one, never a torn one.
 */
import { open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CowbufError } from './errors.js';

/** The parsed document, or `fallback` when the file does not exist. @throws CowbufError naming the file */
export async function readState<T>(path: string, fallback: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw new CowbufError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new CowbufError(`${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

export async function writeState(path: string, value: unknown): Promise<void> {
  const temp = `${path}.tmp`;
  const file = await open(temp, 'w', 0o600);
  try {
    await file.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Writes to one file happen in order; the last one wins on disk as in memory. */
export class OrderedWrites {
  private readonly pending = new Map<string, Promise<void>>();

  write(path: string, value: unknown): Promise<void> {
    const next = (this.pending.get(path) ?? Promise.resolve()).catch(() => undefined).then(() => writeState(path, value));
    this.pending.set(path, next);
    return next;
  }

  /** Resolves once the last write queued for `path` ended. */
  settled(path: string): Promise<void> {
    return (this.pending.get(path) ?? Promise.resolve()).catch(() => undefined);
  }
}
