/**
 * The SHA-256 of a whole file, remembered while the file stays the same (inode, size, mtime and
 * ctime): a cdrom image is hashed by the source for every `prepare` and by the target's preflight,
 * and reading gigabytes each time would hold every migration of that VM for seconds.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

export interface FileDigest {
  readonly size: number;
  readonly sha256: string;
}

const known = new Map<string, { readonly version: string; readonly digest: FileDigest }>();

async function version(path: string): Promise<string> {
  const info = await stat(path, { bigint: true });
  return `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
}

/** @throws the file system's error (ENOENT for a missing file), or the signal's reason */
export async function fileDigest(path: string, signal?: AbortSignal): Promise<FileDigest> {
  const before = await version(path);
  const cached = known.get(path);
  if (cached?.version === before) return cached.digest;
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, signal ? { signal } : {})) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  const digest = { size, sha256: hash.digest('hex') };
  // A file written while it was read has no one digest: it is hashed again next time.
  if ((await version(path)) === before) known.set(path, { version: before, digest });
  return digest;
}
