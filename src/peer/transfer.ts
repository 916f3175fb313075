/**
 * Bytes between the daemons: the frozen bases of a VM's disks, as streams of extents (a disk's
 * data, a `zfs send`; framing and checksum in extents.ts) with an end-to-end SHA-256 the target
 * must agree with, and the NBD and RAM streams, spliced between QEMU's local unix sockets and
 * the peer channel so guest data is encrypted on the wire and every byte crosses sockets the
 * link tracker measures. Where a stream's bytes come from and land is storage's (shipping.ts).
 */
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { PeerError, TrustError, UnreachableError } from '../errors.js';
import type { Extent, ExtentSink } from '../storage/shipping.js';
import { ExtentDecoder, ExtentEncoder } from './extents.js';
import type { Identity } from './identity.js';
import { dialPeer, readLine, type PeerSocket } from './channel.js';
import type { Hello, StreamKind } from './protocol.js';
import type { TrustedPeer } from './trust.js';

export interface SendOptions {
  readonly signal?: AbortSignal;
  /** Called with the connection's TCP socket so the link tracker can count it. */
  readonly onSocket?: (socket: PeerSocket) => void;
}

export interface Shipped {
  /** Data bytes that crossed (a sparse disk's holes do not). */
  readonly bytes: number;
  /** The stream's whole length, holes included. */
  readonly size: number;
  readonly sha256: string;
}

type ShippingHello = Extract<Hello, { kind: 'base' | 'dataset' }>;

const label = (hello: ShippingHello) => (hello.kind === 'base' ? `base of ${hello.disk}` : `dataset of ${hello.migration}`);

/**
 * Ships `extents` on a connection opened with `hello` (a `base` of `hello.size` bytes, or a
 * `dataset` as long as its stream); resolves once the target confirmed the checksum.
 * @throws PeerError (the target refused, or disagreed on the checksum), the signal's reason
 */
export async function sendStream(peer: TrustedPeer, identity: Identity, hello: ShippingHello, extents: AsyncIterable<Extent>, options: SendOptions = {}): Promise<Shipped> {
  const connection = await dialThroughOutage(peer, identity, hello, options.signal);
  options.onSocket?.(connection);
  const shipment = new Shipment(connection.tls, label(hello), options.signal);
  const encoder = new ExtentEncoder();
  let bytes = 0;
  try {
    for await (const extent of extents) {
      await shipment.write(encoder.encode(extent));
      bytes += extent.data.length;
    }
    const { end, size, sha256 } = encoder.finish(hello.kind === 'base' ? hello.size : undefined);
    await shipment.write([end]);
    await shipment.finish(sha256);
    // The target answered, so all we sent was acknowledged. Ending (not destroying) lets the link
    // tracker read that at `finish`; reading on to the target's FIN lets the socket close itself.
    connection.tls.end();
    connection.tls.resume();
    return { bytes, size, sha256 };
  } catch (error) {
    connection.tls.destroy();
    throw error;
  } finally {
    shipment.close();
  }
}

/**
 * The sending half of a shipped stream: honours backpressure and the signal, and listens for
 * the target's verdict from the start, since a target that cannot take the stream (no space,
 * bad dataset) answers at once rather than at the end.
 */
class Shipment {
  private readonly answer: Promise<string>;
  private readonly stopped: Promise<never>;
  private readonly onAbort: () => void;

  constructor(
    private readonly tls: TLSSocket,
    private readonly what: string,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.answer = readLine(tls);
    this.answer.catch(() => undefined);
    const refused = this.answer.then((line) => {
      verdict(line, what);
      throw new PeerError(`target answered before the end of ${what}`);
    });
    let abort: (reason: unknown) => void = () => undefined;
    const aborted = new Promise<never>((_, reject) => (abort = reject));
    this.onAbort = () => abort(signal?.reason);
    if (signal?.aborted) this.onAbort();
    else signal?.addEventListener('abort', this.onAbort, { once: true });
    this.stopped = Promise.race([refused, aborted]);
    this.stopped.catch(() => undefined);
  }

  close(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
  }

  async write(parts: readonly Buffer[]): Promise<void> {
    let flushed = true;
    for (const part of parts) flushed = this.tls.write(part) && flushed;
    if (!flushed) await Promise.race([new Promise((resolve) => this.tls.once('drain', resolve)), this.stopped]);
  }

  /** Sends the checksum trailer and waits for the target to agree. @throws PeerError */
  async finish(sha256: string): Promise<void> {
    this.tls.write(`${JSON.stringify({ sha256 })}\n`);
    verdict(await Promise.race([this.answer, this.stopped]), this.what);
  }
}

/** The target's one-line verdict on a shipped stream. @throws PeerError with its reason */
function verdict(line: string, what: string): void {
  const answer = JSON.parse(line) as { ok?: boolean; error?: string };
  if (answer.ok !== true) throw new PeerError(`target refused ${what}: ${answer.error ?? 'no reason'}`);
}

/** Target side of `Shipment.finish`. @throws PeerError when the sender's checksum is not ours */
function checkTrailer(trailer: string, ours: string, what: string): void {
  let sent: unknown;
  try {
    sent = (JSON.parse(trailer) as { sha256?: unknown }).sha256;
  } catch {
    throw new PeerError(`bad checksum trailer for ${what}`);
  }
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

const TRAILER_MAX_BYTES = 4096;

export interface ReceiveOptions<T> {
  /** The announced size (a base's), which the stream must keep to. */
  readonly size?: number;
  /** After the stream landed and before the sender is told so (a failure here refuses it). */
  readonly onLanded?: (landed: T) => Promise<void> | void;
}

/**
 * Target side of `sendStream`: writes each extent into the sink `open` gives (one that cannot
 * be opened is a refusal too), checks the trailer, then answers. Whatever fails, the sink is
 * discarded and the sender told why.
 * @returns what the sink's `finish` gave
 */
export async function receiveStream<T>(socket: TLSSocket, what: string, open: () => Promise<ExtentSink<T>>, options: ReceiveOptions<T> = {}): Promise<T> {
  let sink: ExtentSink<T> | undefined;
  try {
    sink = await open();
    const decoder = new ExtentDecoder(options.size);
    let end: { readonly size: number; readonly sha256: string } | undefined;
    let tail = Buffer.alloc(0);
    let trailer: string | undefined;
    // Pulled, not pushed: the next bytes are read only once the sink took the last ones.
    for await (const data of socket.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      const decoded = decoder.push(data);
      for (const extent of decoded.extents) await sink.write(extent);
      end ??= decoded.end;
      if (!decoded.rest) continue;
      tail = Buffer.concat([tail, decoded.rest]);
      const newline = tail.indexOf(0x0a);
      if (newline >= 0) {
        trailer = tail.subarray(0, newline).toString('utf8');
        break;
      }
      if (tail.length > TRAILER_MAX_BYTES) throw new PeerError(`${what}: checksum trailer too long`);
    }
    if (!end || trailer === undefined) throw new PeerError(`${what} ended early`);
    checkTrailer(trailer, end.sha256, what);
    const landed = await sink.finish(end.size);
    await options.onLanded?.(landed);
    answer(socket);
    return landed;
  } catch (error) {
    await sink?.discard();
    answer(socket, error as Error);
    throw error;
  }
}

/**
 * Joins two duplex sockets. When one side closes cleanly the other still writes out what it was
 * given (destroying it would drop that, and the link tracker's last reading of it, taken at its
 * peer's FIN), but what it receives from then on has nowhere to go: it is destroyed on the first
 * byte, so its writer (a QEMU whose peer died) learns at once that the stream broke. One side
 * failing destroys both.
 */
export function splice(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  const fail = () => {
    a.destroy();
    b.destroy();
  };
  const closed = (other: Socket) => (hadError: boolean) => {
    if (hadError) return fail();
    other.end();
    other.on('data', () => other.destroy());
    other.resume();
  };
  a.once('close', closed(b));
  b.once('close', closed(a));
  a.on('error', fail);
  b.on('error', fail);
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

/** How long a dial may wait out a link that is down (cut, flapping) before the migration fails. */
const OUTAGE_DEADLINE_MS = 60_000;

/**
 * Whether a failed dial is worth trying again: a link that is down answers nothing, or answers
 * that there is no route for now. A refusal (nothing listens: the peer's daemon is gone, and a
 * restarted one discards what it had incoming), a refused stream or a wrong certificate is final.
 */
function outage(error: unknown): boolean {
  if (error instanceof UnreachableError) return error.code !== 'ECONNREFUSED';
  return !(error instanceof TrustError || error instanceof PeerError || (error as NodeJS.ErrnoException).code === 'ECONNREFUSED');
}

/**
 * Dials through an outage until the deadline: the caller's data waits meanwhile (QEMU on its
 * paused local socket, a base at its first byte), so a short cut costs time, not the migration.
 * `ready` is what makes the connection usable (a stream's acknowledgement), retried with it.
 */
async function dialThroughOutage(peer: TrustedPeer, identity: Identity, hello: Hello, signal: AbortSignal | undefined, ready: (socket: PeerSocket) => Promise<void> = () => Promise.resolve()): Promise<PeerSocket> {
  const deadline = Date.now() + OUTAGE_DEADLINE_MS;
  for (;;) {
    let remote: PeerSocket | undefined;
    try {
      remote = await dialPeer(peer, identity, hello, signal ? { signal } : {});
      await ready(remote);
      return remote;
    } catch (error) {
      remote?.tls.destroy();
      if (!outage(error) || signal?.aborted || Date.now() > deadline) throw error;
      await sleep(1000, undefined, signal ? { signal } : {});
    }
  }
}

function carry(peer: TrustedPeer, identity: Identity, hello: Extract<Hello, { kind: 'stream' }>): Promise<PeerSocket> {
  return dialThroughOutage(peer, identity, hello, undefined, async (remote) => verdict(await readLine(remote.tls), `${hello.stream} stream`));
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
