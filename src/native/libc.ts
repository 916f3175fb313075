/**
 * The one module that owns native calls (koffi; ffi-napi no longer installs on Node 20): the
 * libc functions Node has no binding for, loaded on first use. The calls are synchronous, so
 * `errno()` right after one reads that call's error; each is a single cheap syscall
 * (`getsockopt`, `ioctl`, `lseek`), never one that waits on I/O.
 */
import koffi from 'koffi';

export interface Libc {
  getsockopt(fd: number, level: number, name: number, value: Buffer, length: number[]): number;
  ioctl(fd: number, request: number, type: string, value: Buffer): number;
  /** `off_t lseek(int, off_t, int)`: off_t is 64 bits on every Linux cowbuf runs on. */
  lseek(fd: number, offset: number, whence: number): number;
}

let loaded: Libc | undefined;

/** @throws when libc cannot be loaded (not Linux) */
export function libc(): Libc {
  if (!loaded) {
    const lib = koffi.load('libc.so.6');
    loaded = {
      getsockopt: lib.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *length)') as Libc['getsockopt'],
      ioctl: lib.func('int ioctl(int fd, unsigned long request, ...)') as Libc['ioctl'],
      lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)') as Libc['lseek'],
    };
  }
  return loaded;
}

/** The error of the last native call on this thread. */
export function errno(): number {
  return koffi.errno();
}
