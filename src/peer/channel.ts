/**
 * The peer channel: TCP with mutual TLS 1.3 between two cowbufd. Both sides present their own
 * self-signed certificate and accept the other only if its fingerprint is pinned in the trust
 * store (CA chains play no part). Each connection starts with one `hello` line (protocol.ts);
 * control connections then carry JSON-lines requests, the others raw bytes.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { X509Certificate } from 'node:crypto';
import { connect as tlsConnect, createServer, type TLSSocket } from 'node:tls';
import { FrameDecoder, encodeLine, type JsonObject } from '../jsonl.js';
import { PeerError, PeerRequestError, TrustError, UnreachableError, ValidationError } from '../errors.js';
import { PendingCalls } from '../rpc/pending.js';
import { object, type Json } from '../validate.js';
import type { Identity } from './identity.js';
import { parseHello, parseRequest, parseResponse, type Hello, type PeerRequest, type PeerResponse } from './protocol.js';
import type { Token } from './tokens.js';
import { hostPort, type TrustStore, type TrustedPeer } from './trust.js';

const HELLO_MAX_BYTES = 4096;
const HELLO_TIMEOUT_MS = 10_000;

export interface PeerHandlers {
  control(peer: TrustedPeer, request: PeerRequest): Promise<Json | undefined>;
  /** Owns `socket` from here on; the base bytes follow the hello. */
  base(peer: TrustedPeer, hello: Extract<Hello, { kind: 'base' }>, socket: TLSSocket): void;
  stream(peer: TrustedPeer, hello: Extract<Hello, { kind: 'stream' }>, socket: TLSSocket): void;
  /** Owns `socket` from here on; the chunked `zfs send` stream follows the hello. */
  dataset(peer: TrustedPeer, hello: Extract<Hello, { kind: 'dataset' }>, socket: TLSSocket): void;
  /** A connection refused before any request (untrusted certificate, bad hello). */
  rejected(reason: string): void;
  /** Spends a trust token for a not-yet-trusted certificate; absent, nobody can join. @throws TrustError */
  join?(cert: X509Certificate, hello: Extract<Hello, { kind: 'join' }>, remoteAddress: string): Promise<void>;
}

function framingError(problem: string, line: string): Error {
  return new ValidationError('peer message', line.slice(0, 80), `a JSON object (${problem})`);
}

/** Reads the first line of `socket` (at most HELLO_MAX_BYTES) and puts back what followed it. */
export function readLine(socket: Socket, maxBytes = HELLO_MAX_BYTES): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const cleanup = () => {
      socket.removeListener('data', onData);
      socket.removeListener('error', onEnd);
      socket.removeListener('end', onEnd);
    };
    const onEnd = (error?: Error) => {
      cleanup();
      reject(error ?? new Error('connection closed before a complete line'));
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline < 0) {
        if (buffered.length > maxBytes) onEnd(new Error(`line longer than ${maxBytes} bytes`));
        return;
      }
      cleanup();
      socket.pause();
      const rest = buffered.subarray(newline + 1);
      if (rest.length > 0) socket.unshift(rest);
      resolve(buffered.subarray(0, newline).toString('utf8'));
    };
    socket.on('data', onData);
    socket.once('error', onEnd);
    socket.once('end', onEnd);
  });
}

export interface PeerListener {
  readonly port: number;
  close(): Promise<void>;
}

export async function listenPeer(identity: Identity, trust: TrustStore, host: string, port: number, handlers: PeerHandlers): Promise<PeerListener> {
  const server = createServer({ key: identity.key, cert: identity.cert, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (socket) => {
    socket.on('error', () => undefined);
    const cert = socket.getPeerX509Certificate();
    const peer = cert ? trust.verify(cert) : undefined;
    if (!cert || (!peer && !handlers.join)) {
      handlers.rejected(cert ? `untrusted or expired certificate ${cert.fingerprint256}` : 'no client certificate');
      socket.destroy();
      return;
    }
    // Nobody may hold a connection open without saying what it is for.
    socket.setTimeout(HELLO_TIMEOUT_MS, () => socket.destroy());
    void (async () => {
      let hello: Hello;
      try {
        hello = parseHello(JSON.parse(await readLine(socket)));
      } catch (error) {
        handlers.rejected(`bad hello from ${peer?.name ?? cert.fingerprint256}: ${(error as Error).message}`);
        socket.destroy();
        return;
      }
      socket.setTimeout(0);
      if (hello.kind === 'join') {
        await answerJoin(handlers, cert, hello, socket);
        return;
      }
      if (!peer) {
        handlers.rejected(`untrusted or expired certificate ${cert.fingerprint256}`);
        socket.destroy();
        return;
      }
      if (hello.kind === 'control') serveControl(peer, socket, handlers);
      else if (hello.kind === 'base') handlers.base(peer, hello, socket);
      else if (hello.kind === 'dataset') handlers.dataset(peer, hello, socket);
      else handlers.stream(peer, hello, socket);
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function answerJoin(handlers: PeerHandlers, cert: X509Certificate, hello: Extract<Hello, { kind: 'join' }>, socket: TLSSocket): Promise<void> {
  try {
    await handlers.join?.(cert, hello, socket.remoteAddress ?? '');
    socket.end(encodeLine({ ok: true }));
  } catch (error) {
    handlers.rejected(`join refused for ${cert.fingerprint256}: ${(error as Error).message}`);
    socket.end(encodeLine({ ok: false, error: (error as Error).message }));
  }
}

function serveControl(peer: TrustedPeer, socket: TLSSocket, handlers: PeerHandlers): void {
  const decoder = new FrameDecoder(framingError, 1024 * 1024);
  socket.resume();
  socket.on('data', (chunk: Buffer) => {
    let messages: JsonObject[];
    try {
      messages = decoder.push(chunk);
    } catch (error) {
      handlers.rejected(`bad control message from ${peer.name}: ${(error as Error).message}`);
      socket.destroy();
      return;
    }
    for (const message of messages) {
      void (async () => {
        const id = typeof message.id === 'number' ? message.id : -1;
        let response: PeerResponse;
        try {
          const result = await handlers.control(peer, parseRequest(message));
          response = result === undefined ? { id, ok: true } : { id, ok: true, result };
        } catch (error) {
          response = { id, ok: false, error: (error as Error).message };
        }
        if (!socket.destroyed) socket.write(encodeLine(response as unknown as JsonObject));
      })();
    }
  });
}

/** How long a peer request waits for its answer unless it says otherwise. */
export const REQUEST_TIMEOUT_MS = 120_000;

export interface DialOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface PeerSocket {
  readonly tls: TLSSocket;
  /** The TCP socket under the TLS one: what TCP_INFO is read from. */
  readonly raw: Socket;
  /** The server's certificate, checked against the pinned fingerprint. */
  readonly cert: X509Certificate;
}

/**
 * Opens a TLS connection to `address`, presenting our certificate, and accepts the server only
 * if its certificate has this fingerprint and has not expired.
 * @throws TrustError when the server's certificate is not the expected one
 */
export async function dialTls(label: string, address: string, fingerprint: string, identity: Identity, options: DialOptions = {}): Promise<PeerSocket> {
  const { host, port } = hostPort(address);
  const raw = netConnect({ host, port });
  const timeoutMs = options.timeoutMs ?? 10_000;
  const timer = setTimeout(() => raw.destroy(new Error(`no connection within ${timeoutMs / 1000} s`)), timeoutMs);
  const onAbort = () => raw.destroy(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      raw.once('connect', resolve);
      raw.once('error', reject);
    });
    const tls = tlsConnect({ socket: raw, key: identity.key, cert: identity.cert, rejectUnauthorized: false, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
    await new Promise<void>((resolve, reject) => {
      tls.once('secureConnect', resolve);
      tls.once('error', reject);
    });
    const cert = tls.getPeerX509Certificate();
    if (!cert || cert.fingerprint256 !== fingerprint || new Date(cert.validTo) < new Date()) {
      tls.destroy();
      throw new TrustError(`${label} (${address}) presented ${cert ? `certificate ${cert.fingerprint256}${new Date(cert.validTo) < new Date() ? ` (expired ${cert.validTo})` : ''}` : 'no certificate'}, not the pinned ${fingerprint}`);
    }
    return { tls, raw, cert };
  } catch (error) {
    raw.destroy();
    // The socket's own error names no peer ("connect ENETUNREACH 10.213.1.2:8443"): say which.
    if (error instanceof PeerError || options.signal?.aborted) throw error;
    throw new UnreachableError(label, address, (error as NodeJS.ErrnoException).code, (error as Error).message, { cause: error });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** Opens a connection to a trusted peer, pins its certificate and sends `hello`. @throws TrustError */
export async function dialPeer(peer: TrustedPeer, identity: Identity, hello: Hello, options: DialOptions = {}): Promise<PeerSocket> {
  const socket = await dialTls(`peer ${peer.name}`, peer.address, peer.fingerprint, identity, options);
  socket.tls.write(encodeLine(hello as unknown as JsonObject));
  return socket;
}

/**
 * Spends a trust token at the peer that issued it: tries its addresses in turn, pins its
 * certificate against the token's fingerprint and proves the secret.
 * @returns the issuer's certificate and the address that answered
 * @throws TrustError (wrong certificate, token refused), or the last connection error
 */
export async function joinPeer(token: Token, identity: Identity, ownPort: number, options: DialOptions = {}): Promise<{ cert: string; address: string }> {
  let lastError: Error = new TrustError('the token lists no address');
  for (const address of token.addresses) {
    let socket: PeerSocket;
    try {
      socket = await dialTls('token issuer', address, token.fingerprint, identity, options);
    } catch (error) {
      if (error instanceof TrustError) throw error;
      lastError = error as Error;
      continue;
    }
    try {
      const cert = socket.cert.toString();
      socket.tls.write(encodeLine({ type: 'hello', kind: 'join', secret: token.secret, port: ownPort }));
      const answer = object('join answer', JSON.parse(await readLine(socket.tls)), ['ok'], ['error']);
      if (answer.ok !== true) throw new TrustError(`${address} refused the token: ${String(answer.error)}`);
      return { cert, address };
    } finally {
      socket.tls.destroy();
    }
  }
  throw lastError;
}

/** `Omit` that keeps each member of a union apart. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

export interface RequestOptions {
  readonly timeoutMs?: number;
  /** A cancelled migration stops waiting at once; the target's answer, if it comes, is dropped. */
  readonly signal?: AbortSignal;
}

/** Requests over one control connection, answered in any order (the request core, rpc/pending.ts). */
export class ControlClient {
  private nextId = 0;
  private readonly pending = new PendingCalls<number, PeerResponse>();

  private constructor(
    readonly peer: TrustedPeer,
    private readonly socket: TLSSocket,
  ) {
    const decoder = new FrameDecoder(framingError, 1024 * 1024);
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const message of decoder.push(chunk)) {
          const response = parseResponse(message);
          this.pending.resolve(response.id, response);
        }
      } catch (error) {
        socket.destroy(error as Error);
      }
    });
    socket.on('close', () => this.pending.failAll(() => new PeerRequestError(peer.name, 'connection closed')));
    socket.on('error', () => undefined);
  }

  static async open(peer: TrustedPeer, identity: Identity, options: DialOptions = {}): Promise<ControlClient> {
    const { tls } = await dialPeer(peer, identity, { type: 'hello', kind: 'control' }, options);
    return new ControlClient(peer, tls);
  }

  /**
   * One request on a connection of its own (dialled within 10 s), closed after the answer.
   * @throws what `open` and `request` throw
   */
  static async once(peer: TrustedPeer, identity: Identity, request: WithoutId<PeerRequest>, options: RequestOptions = {}): Promise<Json | undefined> {
    const client = await ControlClient.open(peer, identity, { timeoutMs: 10_000, ...(options.signal ? { signal: options.signal } : {}) });
    try {
      return await client.request(request, options);
    } finally {
      client.close();
    }
  }

  /** @throws PeerRequestError (refused, timed out or disconnected), or the signal's reason */
  async request(request: WithoutId<PeerRequest>, options: RequestOptions = {}): Promise<Json | undefined> {
    const id = this.nextId++;
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    const send = () => {
      if (this.socket.destroyed) throw new PeerRequestError(this.peer.name, 'connection closed');
      this.socket.write(encodeLine({ ...request, id } as unknown as JsonObject));
    };
    const response = await this.pending.call(id, request.method, send, {
      timeoutMs,
      signal: options.signal,
      timedOut: () => new PeerRequestError(this.peer.name, `\`${request.method}\` got no answer within ${timeoutMs} ms`),
    });
    if (!response.ok) throw new PeerRequestError(this.peer.name, response.error, true);
    return response.result;
  }

  close(): void {
    this.socket.destroy();
  }
}
