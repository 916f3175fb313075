/**
 * Bytes between the daemons: the frozen base of a disk (with an end-to-end SHA-256: the target
 * hashes what it wrote and must agree with what the source read), and the NBD and RAM streams,
 * spliced between QEMU's local unix sockets and the peer channel so guest data is encrypted on
 * the wire and every byte crosses sockets the link tracker measures.
 */
import { createHash, type Hash } from 'node:crypto';
import { constants } from 'node:os';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { PeerError, TrustError } from '../errors.js';
import { zfsDestroy, zfsReceive, zfsSend } from '../storage/zfs/zfs-commands.js';
import { ChunkDecoder, chunkHeader, END_OF_CHUNKS, MAX_CHUNK } from './chunks.js';
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
  const shipment = new Shipment(connection.tls, `base of ${disk}`);
  try {
    const source = createReadStream(path);
    const abort = () => source.destroy(new PeerError('base shipping aborted'));
    options.signal?.addEventListener('abort', abort, { once: true });
    for await (const chunk of source) {
      shipment.update(chunk as Buffer);
      await shipment.write(chunk as Buffer);
    }
    options.signal?.removeEventListener('abort', abort);
    return { bytes: size, sha256: await shipment.finish() };
  } finally {
    connection.tls.destroy();
  }
}

/**
 * The sending half of a shipped stream: hashes what it writes, honours backpressure, and
 * listens for the target's verdict from the start, since a target that cannot take the stream
 * (no space, bad dataset) answers at once rather than at the end.
 */
class Shipment {
  private readonly hash = createHash('sha256');
  private readonly answer: Promise<string>;
  private readonly refused: Promise<never>;

  constructor(
    private readonly tls: TLSSocket,
    private readonly what: string,
  ) {
    this.answer = readLine(tls);
    this.answer.catch(() => undefined);
    this.refused = this.answer.then((line) => {
      verdict(line, what);
      throw new PeerError(`target answered before the end of ${what}`);
    });
    this.refused.catch(() => undefined);
  }

  async write(...parts: Buffer[]): Promise<void> {
    let flushed = true;
    for (const part of parts) flushed = this.tls.write(part) && flushed;
    if (!flushed) await Promise.race([new Promise((resolve) => this.tls.once('drain', resolve)), this.refused]);
  }

  /** Hashes only the payload: framing passed to write() beside it is not part of the data. */
  update(payload: Buffer): void {
    this.hash.update(payload);
  }

  /** Sends the checksum trailer and waits for the target to agree. @throws PeerError */
  async finish(): Promise<string> {
    const sha256 = this.hash.digest('hex');
    this.tls.write(`${JSON.stringify({ sha256 })}\n`);
    verdict(await this.answer, this.what);
    return sha256;
  }
}

/** The target's one-line verdict on a shipped stream. @throws PeerError with its reason */
function verdict(line: string, what: string): void {
  const answer = JSON.parse(line) as { ok?: boolean; error?: string };
  if (answer.ok !== true) throw new PeerError(`target refused ${what}: ${answer.error ?? 'no reason'}`);
}

/** Target side of `Shipment.finish`. @throws PeerError when the sender's checksum is not ours */
function checkTrailer(trailer: string, hash: Hash, what: string): void {
  let sent: unknown;
  try {
    sent = (JSON.parse(trailer) as { sha256?: unknown }).sha256;
  } catch {
    throw new PeerError(`bad checksum trailer for ${what}`);
  }
  const ours = hash.digest('hex');
  if (sent !== ours) throw new PeerError(`checksum mismatch for ${what}: sent ${String(sent)}, received ${ours}`);
}

function answer(socket: TLSSocket, error?: Error): void {
  if (!socket.destroyed) socket.end(`${JSON.stringify(error ? { ok: false, error: error.message } : { ok: true })}\n`);
  if (!error) return;
  // The socket may be paused waiting for a dead writer: read on, ignoring, to the sender's close
  // (a paused socket never sees its end, and would hold the listener open).
  socket.removeAllListeners('data');
  socket.resume();
}

/** The snapshot a migration ships its disks' dataset as (the same name arrives on the target). */
export const shippedSnapshot = (migration: string) => `cowbuf-${migration}`;

/**
 * Ships a ZFS snapshot holding the VM's disks (`files`: disk id → file name in the dataset) as
 * a `zfs send` stream in chunks, with the same end-to-end SHA-256 as a base file.
 */
export async function sendDataset(peer: TrustedPeer, identity: Identity, migration: string, snapshot: string, files: Readonly<Record<string, string>>, options: SendBaseOptions = {}): Promise<{ bytes: number; sha256: string }> {
  const connection = await dialPeer(peer, identity, { type: 'hello', kind: 'dataset', migration, files }, options.signal ? { signal: options.signal } : {});
  options.onSocket?.(connection);
  const send = zfsSend(snapshot, options.signal ? { signal: options.signal } : {});
  const shipment = new Shipment(connection.tls, `dataset ${snapshot}`);
  let bytes = 0;
  try {
    for await (const data of send.stdout) {
      for (let offset = 0; offset < (data as Buffer).length; offset += MAX_CHUNK) {
        const chunk = (data as Buffer).subarray(offset, offset + MAX_CHUNK);
        shipment.update(chunk);
        bytes += chunk.length;
        await shipment.write(chunkHeader(chunk.length), chunk);
      }
    }
    await send.done;
    await shipment.write(END_OF_CHUNKS);
    return { bytes, sha256: await shipment.finish() };
  } finally {
    send.stdout.destroy();
    await send.done.catch(() => undefined);
    connection.tls.destroy();
  }
}

/**
 * Target side of `sendDataset`: `zfs receive` into `dataset`, then `onReceived` before the
 * sender is told it arrived; the dataset is destroyed again on any failure.
 */
export async function receiveDataset(socket: TLSSocket, dataset: string, onReceived: () => Promise<void>): Promise<void> {
  const hash = createHash('sha256');
  const receive = zfsReceive(dataset);
  const decoder = new ChunkDecoder();
  try {
    const trailer = new Promise<string>((resolve, reject) => {
      let tail: Buffer | undefined;
      socket.on('data', (data: Buffer) => {
        let decoded: ReturnType<ChunkDecoder['push']>;
        try {
          decoded = tail ? { payload: [], rest: data } : decoder.push(data);
        } catch (error) {
          reject(error as Error);
          return;
        }
        for (const part of decoded.payload) {
          hash.update(part);
          if (!receive.stdin.write(part)) {
            socket.pause();
            receive.stdin.once('drain', () => socket.resume());
          }
        }
        if (!decoded.rest) return;
        tail = Buffer.concat([tail ?? Buffer.alloc(0), decoded.rest]);
        const newline = tail.indexOf(0x0a);
        if (newline >= 0) resolve(tail.subarray(0, newline).toString('utf8'));
        else if (tail.length > 4096) reject(new PeerError('dataset trailer too long'));
      });
      socket.once('end', () => reject(new PeerError(`dataset stream for ${dataset} ended early`)));
      socket.once('error', reject);
      socket.resume();
    });
    // zfs receive failing (no such parent, no space) must end the wait too.
    const line = await Promise.race([trailer, receive.done.then(() => new Promise<string>(() => undefined))]);
    receive.stdin.end();
    await receive.done;
    checkTrailer(line, hash, `dataset ${dataset}`);
    await onReceived();
    answer(socket);
  } catch (error) {
    receive.stdin.destroy();
    await receive.done.catch(() => undefined);
    await zfsDestroy(dataset, { recursive: true }).catch(() => undefined);
    answer(socket, error as Error);
    throw error;
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
        if (file.errored) return;
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
      // Out of space or quota on the target: refuse now, naming the errno (Node has no name for EDQUOT).
      file.on('error', (error: NodeJS.ErrnoException) => reject(new PeerError(`cannot write ${path}: ${errnoName(error)}`)));
      socket.resume();
    });
    await new Promise<void>((resolve, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolve())));
    checkTrailer(trailer, hash, hello.disk);
    answer(socket);
  } catch (error) {
    file.destroy();
    await rm(path, { force: true });
    answer(socket, error as Error);
    throw error;
  }
}

function errnoName(error: NodeJS.ErrnoException): string {
  const name = Object.entries(constants.errno).find(([, value]) => value === -(error.errno ?? 0))?.[0];
  return name ? `${name} (${error.syscall ?? 'write'})` : error.message;
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
  local.once('error', (error) => answer(socket, new PeerError(`cannot reach ${localPath}: ${error.message}`)));
  local.once('connect', () => {
    // Told only once QEMU has this connection: the source then opens the next one (ordering).
    socket.write(`${JSON.stringify({ ok: true })}\n`);
    splice(socket, local);
    socket.resume();
  });
}

const CARRY_DEADLINE_MS = 60_000;

/**
 * Dials a stream and waits for the target's acknowledgement. A dial that fails for want of a
 * link (cut, flapping) is retried until the deadline: QEMU waits on its paused local socket
 * meanwhile, so a short outage costs time, not the migration. A refusal (of the connection or of
 * the stream) or a wrong certificate is final.
 */
/**
 * The peer's host answered that nothing listens: its daemon is gone (a restarted one discards
 * what it had incoming), unlike a cut link, which answers nothing and is worth waiting out.
 */
function refused(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
}

async function carry(peer: TrustedPeer, identity: Identity, hello: Extract<Hello, { kind: 'stream' }>): Promise<PeerSocket> {
  const deadline = Date.now() + CARRY_DEADLINE_MS;
  for (;;) {
    let remote: PeerSocket | undefined;
    try {
      remote = await dialPeer(peer, identity, hello);
      verdict(await readLine(remote.tls), `${hello.stream} stream`);
      return remote;
    } catch (error) {
      remote?.tls.destroy();
      if (error instanceof TrustError || error instanceof PeerError || refused(error) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

export interface LocalProxy {
  readonly path: string;
  /** Connections QEMU opened (a RAM migration with multifd opens one per channel, plus its main one). */
  readonly connections: () => number;
  close(): Promise<void>;
}

/**
 * Source side: a unix socket QEMU connects to (as its NBD server or migration URI); each
 * connection is carried to the target over its own peer stream. Connections are carried one at
 * a time, each only once the target's QEMU has the previous one: QEMU 7.2's destination takes
 * the first connection of a multifd migration for the main channel, and TLS handshakes racing
 * in parallel reordered them ("Unable to write to socket: Broken pipe").
 */
export async function proxyToPeer(path: string, peer: TrustedPeer, identity: Identity, migration: string, stream: StreamKind, onSocket: (socket: PeerSocket) => void): Promise<LocalProxy> {
  await rm(path, { force: true });
  let connections = 0;
  let previous = Promise.resolve();
  const server: Server = createServer((local) => {
    connections += 1;
    local.pause();
    local.on('error', () => undefined);
    previous = previous.then(async () => {
      const remote = await carry(peer, identity, { type: 'hello', kind: 'stream', migration, stream }).catch(() => undefined);
      if (!remote || local.destroyed) {
        remote?.tls.destroy();
        local.destroy();
        return;
      }
      onSocket(remote);
      splice(local, remote.tls);
      local.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return { path, connections: () => connections, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
