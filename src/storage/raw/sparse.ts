/**
 * Sparse files, both ways: the data extents of a file (`lseek` SEEK_DATA/SEEK_HOLE, which Node
 * has no binding for), and a file that takes extents at their offsets and keeps the rest as
 * holes. A thin 32 GiB raw disk holding 1 GiB is read, shipped and written as 1 GiB. The same
 * holds for a qcow2 file: it is shipped as the file it is, byte for byte, holes included.
 */
import { constants } from 'node:os';
import { open, rm } from 'node:fs/promises';
import { StorageError } from '../../errors.js';
import { errno, libc } from '../../native/libc.js';
import type { Extent, ExtentSink } from '../shipping.js';

const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const { ENXIO, EINVAL } = constants.errno;
/** Bytes read at once: a stream holds at most this much of a file in memory. */
const READ_BYTES = 1 << 20;

/**
 * `lseek(fd, from, whence)`, or undefined for ENXIO (no data at or after `from`). A filesystem
 * that knows no holes (EINVAL) is all data: `from` is data, the end is the only hole.
 */
function seek(fd: number, from: number, whence: typeof SEEK_DATA | typeof SEEK_HOLE, size: number, path: string): number | undefined {
  const at = Number(libc().lseek(fd, from, whence));
  if (at >= 0) return at;
  const code = errno();
  if (code === ENXIO) return undefined;
  if (code === EINVAL) return whence === SEEK_DATA ? from : size;
  throw new StorageError(`lseek(${path}, ${from}, ${whence === SEEK_DATA ? 'SEEK_DATA' : 'SEEK_HOLE'}) failed: ${errnoName(code)}`);
}

/** The data of the first `size` bytes of `path`, in order, in pieces of at most READ_BYTES. @throws StorageError */
export async function* dataExtents(path: string, size: number): AsyncGenerator<Extent> {
  const handle = await open(path, 'r');
  try {
    for (let position = 0; position < size; ) {
      const start = seek(handle.fd, position, SEEK_DATA, size, path);
      if (start === undefined || start >= size) return;
      const end = Math.min(seek(handle.fd, start, SEEK_HOLE, size, path) ?? size, size);
      for (let offset = start; offset < end; ) {
        const data = Buffer.allocUnsafe(Math.min(READ_BYTES, end - offset));
        const { bytesRead } = await handle.read(data, 0, data.length, offset);
        if (bytesRead === 0) throw new StorageError(`${path} ended at ${offset} bytes while being shipped (expected ${size})`);
        yield { offset, data: data.subarray(0, bytesRead) };
        offset += bytesRead;
      }
      position = end;
    }
  } finally {
    await handle.close();
  }
}

/**
 * A new file of `size` bytes at `path`, all hole until extents are written into it; a failed
 * one is removed. Writes that run out of room fail naming the errno (Node has no name for EDQUOT).
 */
export async function sparseFile(path: string, size: number): Promise<ExtentSink> {
  const handle = await open(path, 'w', 0o600).catch((error: NodeJS.ErrnoException) => {
    throw new StorageError(`cannot create ${path}: ${nodeErrno(error)}`, { cause: error });
  });
  const fail = (error: NodeJS.ErrnoException) => new StorageError(`cannot write ${path}: ${nodeErrno(error)}`, { cause: error });
  try {
    await handle.truncate(size);
  } catch (error) {
    await handle.close();
    await rm(path, { force: true });
    throw fail(error as NodeJS.ErrnoException);
  }
  return {
    write: async ({ offset, data }) => {
      for (let written = 0; written < data.length; ) {
        const { bytesWritten } = await handle.write(data, written, data.length - written, offset + written).catch((error: NodeJS.ErrnoException) => {
          throw fail(error);
        });
        written += bytesWritten;
      }
    },
    finish: () => handle.close(),
    discard: async () => {
      await handle.close().catch(() => undefined);
      await rm(path, { force: true });
    },
  };
}

/** `EDQUOT (write)`: by name, which Node has none for (its message says "Unknown system error -122"). */
function errnoName(code: number, syscall?: string): string {
  const name = Object.entries(constants.errno).find(([, value]) => value === code)?.[0] ?? `errno ${code}`;
  return syscall ? `${name} (${syscall})` : name;
}

const nodeErrno = (error: NodeJS.ErrnoException) => errnoName(-(error.errno ?? 0), error.syscall);
