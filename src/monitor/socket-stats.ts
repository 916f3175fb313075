/**
 * `getsockopt(TCP_INFO)` and `ioctl(SIOCOUTQ / SIOCOUTQNSD)` on the daemon's own TCP sockets,
 * through the native-call module (native/libc.ts).
 * `struct tcp_info` is read from a raw buffer by offset (Linux uapi layout, stable and only ever
 * appended to), 64-bit counters as BigInt so nothing loses precision.
 */
import type { Socket } from 'node:net';
import { CowbufError } from '../errors.js';
import { errno, libc, type Libc } from '../native/libc.js';

export class SocketStatsError extends CowbufError {
  override readonly name: string = 'SocketStatsError';
}

export interface TcpInfo {
  readonly state: number;
  /** Smoothed RTT and its variance, µs. */
  readonly rttUs: number;
  readonly rttVarUs: number;
  readonly minRttUs: number;
  readonly sndCwnd: number;
  readonly totalRetrans: number;
  readonly bytesAcked: bigint;
  readonly bytesSent: bigint;
  readonly bytesReceived: bigint;
  readonly bytesRetrans: bigint;
  /** Bytes/s the kernel measured on the last delivered round trip. */
  readonly deliveryRate: bigint;
  readonly deliveryRateAppLimited: boolean;
  readonly notSentBytes: number;
  readonly pacingRate: bigint;
}

export interface SendQueue {
  /** SIOCOUTQ: bytes in the send queue, sent but unacknowledged or not yet sent. */
  readonly queued: number;
  /** SIOCOUTQNSD: bytes not yet sent. */
  readonly notSent: number;
}

const SOL_TCP = 6;
const TCP_INFO = 11;
const SIOCOUTQ = 0x5411;
const SIOCOUTQNSD = 0x894b;
/** Size of struct tcp_info up to `tcpi_snd_wnd` (Linux ≥ 5.4); older kernels return less. */
const TCP_INFO_SIZE = 232;
/** Everything read below lies within the first 216 bytes (up to tcpi_bytes_retrans). */
const TCP_INFO_NEEDED = 216;

function load(): Libc {
  if (process.platform !== 'linux') throw new SocketStatsError(`socket statistics need Linux (TCP_INFO, SIOCOUTQ); this is ${process.platform}`);
  return libc();
}

/** The kernel descriptor behind a connected Node TCP socket. */
export function socketFd(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0 || socket.destroyed) throw new SocketStatsError('socket is closed (no file descriptor)');
  return fd;
}

/** @throws SocketStatsError on a closed socket, a non-Linux host or a failing call */
export function tcpInfo(socket: Socket): TcpInfo {
  const { getsockopt } = load();
  const buffer = Buffer.alloc(TCP_INFO_SIZE);
  const length = [TCP_INFO_SIZE];
  if (getsockopt(socketFd(socket), SOL_TCP, TCP_INFO, buffer, length) !== 0) throw new SocketStatsError(`getsockopt(TCP_INFO) failed: errno ${errno()}`);
  if ((length[0] ?? 0) < TCP_INFO_NEEDED) throw new SocketStatsError(`kernel returned a ${length[0]}-byte tcp_info, need ${TCP_INFO_NEEDED}`);
  return {
    state: buffer.readUInt8(0),
    deliveryRateAppLimited: (buffer.readUInt8(7) & 1) === 1,
    rttUs: buffer.readUInt32LE(68),
    rttVarUs: buffer.readUInt32LE(72),
    sndCwnd: buffer.readUInt32LE(80),
    totalRetrans: buffer.readUInt32LE(100),
    pacingRate: buffer.readBigUInt64LE(104),
    bytesAcked: buffer.readBigUInt64LE(120),
    bytesReceived: buffer.readBigUInt64LE(128),
    notSentBytes: buffer.readUInt32LE(144),
    minRttUs: buffer.readUInt32LE(148),
    deliveryRate: buffer.readBigUInt64LE(160),
    bytesSent: buffer.readBigUInt64LE(200),
    bytesRetrans: buffer.readBigUInt64LE(208),
  };
}

/** @throws SocketStatsError */
export function sendQueue(socket: Socket): SendQueue {
  const { ioctl } = load();
  const fd = socketFd(socket);
  const read = (request: number, name: string) => {
    const value = Buffer.alloc(4);
    if (ioctl(fd, request, 'void *', value) !== 0) throw new SocketStatsError(`ioctl(${name}) failed: errno ${errno()}`);
    return value.readInt32LE(0);
  };
  return { queued: read(SIOCOUTQ, 'SIOCOUTQ'), notSent: read(SIOCOUTQNSD, 'SIOCOUTQNSD') };
}
