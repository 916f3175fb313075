/**
 * Bytes between the daemons: the frozen base of a disk (with an end-to-end SHA-256: the target
 * hashes what it wrote and must agree with what the source read), and the NBD and RAM streams,
 * spliced between QEMU's local unix sockets and the peer channel so guest data is encrypted on
 * the wire and every byte crosses sockets the link tracker measures.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { PeerError } from '../errors.js';
import type { Identity } from './identity.js';
import { dialPeer, readLine, type PeerSocket } from './channel.js';
import type { Hello, StreamKind } from './protocol.js';
import type { TrustedPeer } from './trust.js';

export interface SendBaseOptions {
  readonly signal?: AbortSignal;
  /** Called with the connection's TCP socket so the link tracker can count it. */
  readonly onSocket?: (socket: PeerSocket) => void;
}

/** Ships `path` as disk `disk` of `migration`; resolves once the target confirmed the checksum. */
export async function sendBase(peer: TrustedPeer, identity: Identity, migration: string, disk: string, path: string, options: SendBaseOptions = {}): Promise<{ bytes: number; sha256: string }> {
  const size = (await stat(path)).size;
  const connection = await dialPeer(peer, identity, { type: 'hello', kind: 'base', migration, disk, size }, options.signal ? { signal: options.signal } : {});
  options.onSocket?.(connection);
  const { tls } = connection;
  const hash = createHash('sha256');
  try {
    const source = createReadStream(path);
    const abort = () => source.destroy(new PeerError('base shipping aborted'));
    options.signal?.addEventListener('abort', abort, { once: true });
    for await (const chunk of source) {
      hash.update(chunk as Buffer);
      if (!tls.write(chunk as Buffer)) await new Promise((resolve) => tls.once('drain', resolve));
    }
    options.signal?.removeEventListener('abort', abort);
    const sha256 = hash.digest('hex');
    tls.write(`${JSON.stringify({ sha256 })}\n`);
    const answer = JSON.parse(await readLine(tls)) as { ok?: boolean; error?: string };
    if (answer.ok !== true) throw new PeerError(`target refused base of ${disk}: ${answer.error ?? 'no reason'}`);
    return { bytes: size, sha256 };
  } finally {
    tls.destroy();
  }
}

/** Target side of `sendBase`: writes exactly `hello.size` bytes to `path`, then checks the trailer. */
export async function receiveBase(hello: Extract<Hello, { kind: 'base' }>, socket: TLSSocket, path: string): Promise<void> {
  const hash = createHash('sha256');
  const file = createWriteStream(path, { mode: 0o600 });
  try {
    const trailer = await new Promise<string>((resolve, reject) => {
      let left = hello.size;
      let tail = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        if (left > 0) {
          const part = chunk.subarray(0, Math.min(left, chunk.length));
          hash.update(part);
          left -= part.length;
          chunk = chunk.subarray(part.length);
          if (!file.write(part)) {
            socket.pause();
            file.once('drain', () => socket.resume());
          }
        }
        if (left === 0 && chunk.length > 0) {
          tail = Buffer.concat([tail, chunk]);
          const newline = tail.indexOf(0x0a);
          if (newline >= 0) resolve(tail.subarray(0, newline).toString('utf8'));
          else if (tail.length > 4096) reject(new PeerError('base trailer too long'));
        }
      });
      socket.once('end', () => reject(new PeerError(`base stream of ${hello.disk} ended early`)));
      socket.once('error', reject);
      socket.resume();
    });
    await new Promise<void>((resolve, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolve())));
    const sent = (JSON.parse(trailer) as { sha256?: unknown }).sha256;
    const ours = hash.digest('hex');
    if (sent !== ours) throw new PeerError(`checksum mismatch for ${hello.disk}: sent ${String(sent)}, received ${ours}`);
    socket.end(`${JSON.stringify({ ok: true })}\n`);
  } catch (error) {
    file.destroy();
    await rm(path, { force: true });
    if (!socket.destroyed) socket.end(`${JSON.stringify({ ok: false, error: (error as Error).message })}\n`);
    throw error;
  }
}

/** Joins two duplex sockets; either side closing or failing closes both. */
export function splice(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  const close = () => {
    a.destroy();
    b.destroy();
  };
  a.once('close', close);
  b.once('close', close);
  a.on('error', close);
  b.on('error', close);
}

/** Target side: connects a peer stream to QEMU's local unix socket. */
export function spliceToLocal(socket: TLSSocket, localPath: string): void {
  const local = netConnect(localPath);
  local.once('connect', () => socket.resume());
  splice(socket, local);
}

export interface LocalProxy {
  readonly path: string;
  /** Connections QEMU opened (a RAM migration with multifd opens one per channel, plus its main one). */
  readonly connections: () => number;
  close(): Promise<void>;
}

/**
 * Source side: a unix socket QEMU connects to (as its NBD server or migration URI); each
 * connection is carried to the target over its own peer stream.
 */
export async function proxyToPeer(path: string, peer: TrustedPeer, identity: Identity, migration: string, stream: StreamKind, onSocket: (socket: PeerSocket) => void): Promise<LocalProxy> {
  await rm(path, { force: true });
  let connections = 0;
  const server: Server = createServer((local) => {
    connections += 1;
    local.pause();
    local.on('error', () => undefined);
    dialPeer(peer, identity, { type: 'hello', kind: 'stream', migration, stream }).then(
      (remote) => {
        onSocket(remote);
        splice(local, remote.tls);
        local.resume();
      },
      () => local.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return { path, connections: () => connections, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
