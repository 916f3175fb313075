/**
 * A QMP client in the shape of QEMU's own (python/qemu/qmp): a run-state machine
 * (idle → connecting → running → disconnecting → idle), a greeting and capability negotiation,
 * message ids owned by the client (`cowbuf-N`), a timeout and an `AbortSignal` per command, and
 * every pending call rejected with `QmpDisconnectedError` when the connection goes away (the
 * request core, rpc/pending.ts, which the peer channel shares). Replies with unknown ids
 * (late replies to timed-out calls) are reported to `onUnexpected` and dropped.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { PendingCalls } from '../rpc/pending.js';
import { QmpCommandError, QmpDisconnectedError, QmpProtocolError, QmpStateError, QmpTimeoutError } from './errors.js';
import { EventListener, type QmpEvent } from './events.js';
import { FrameDecoder, encode, type QmpMessage } from './protocol.js';

export type RunState = 'idle' | 'connecting' | 'running' | 'disconnecting';

export interface QmpClientOptions {
  readonly commandTimeoutMs?: number;
  /** Messages that fit nowhere: late replies, replies without id, greetings out of turn. */
  readonly onUnexpected?: (message: QmpMessage) => void;
}

export interface ConnectOptions {
  /** How long to keep retrying a socket that does not exist yet, plus the greeting. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface ExecuteOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface Greeting {
  readonly version: { readonly qemu: { readonly major: number; readonly minor: number; readonly micro: number } };
  readonly capabilities: readonly string[];
}

/** The greeting waits in the pending table like a call, so a close before it fails it the same way. */
const GREETING = Symbol('greeting');

const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

export class QmpClient {
  private runState: RunState = 'idle';
  private socket: Socket | undefined;
  private socketPath = '';
  private nextId = 0;
  private readonly pending = new PendingCalls<string | typeof GREETING, QmpMessage>();
  private readonly listeners = new Set<EventListener>();
  private closedWaiters: Array<() => void> = [];
  greeting: Greeting | undefined;

  constructor(private readonly options: QmpClientOptions = {}) {}

  get state(): RunState {
    return this.runState;
  }

  /**
   * Connects to a QMP unix socket, reads the greeting and negotiates capabilities.
   * A failed connect always returns the client to `idle`.
   * @throws QmpStateError, QmpTimeoutError, QmpProtocolError, QmpDisconnectedError
   */
  async connect(path: string, options: ConnectOptions = {}): Promise<Greeting> {
    this.require('connect', 'idle');
    this.runState = 'connecting';
    this.socketPath = path;
    const timeoutMs = options.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    try {
      const socket = await this.open(path, deadline, timeoutMs, options.signal);
      this.attach(socket);
      const greeting = await this.waitGreeting(Math.max(1, deadline - Date.now()), options.signal);
      this.runState = 'running';
      await this.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1000, deadline - Date.now()) });
      this.greeting = greeting;
      return greeting;
    } catch (error) {
      this.socket?.destroy();
      this.socket = undefined;
      this.runState = 'idle';
      throw error;
    }
  }

  /**
   * Runs one command and resolves to its `return` value.
   * @throws QmpCommandError (QEMU said no), QmpTimeoutError, QmpDisconnectedError, QmpStateError
   */
  async execute<T = unknown>(command: string, args?: Readonly<Record<string, unknown>>, options: ExecuteOptions = {}): Promise<T> {
    if (this.runState !== 'running') throw new QmpStateError(`execute \`${command}\``, this.runState, 'running');
    const id = `cowbuf-${++this.nextId}`;
    const timeoutMs = options.timeoutMs ?? this.options.commandTimeoutMs ?? 30_000;
    const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    const reply = await this.pending.call(id, command, () => this.socket?.write(encode(message)), {
      timeoutMs,
      signal: options.signal,
      timedOut: () => new QmpTimeoutError(`\`${command}\``, timeoutMs),
    });
    const error = reply.error as { class?: string; desc?: string } | undefined;
    if (error) throw new QmpCommandError(command, args, error.class ?? 'GenericError', error.desc ?? '', reply);
    return reply.return as T;
  }

  /** A listener for the named events (all events if none). Close it when done. */
  listen(...names: string[]): EventListener {
    const listener = new EventListener(new Set(names), (gone) => this.listeners.delete(gone));
    if (this.runState === 'idle') listener.fail(new QmpDisconnectedError(undefined, this.socketPath));
    else this.listeners.add(listener);
    return listener;
  }

  /** Closes the connection; pending calls are rejected. Safe to call in any state. */
  async disconnect(): Promise<void> {
    if (this.runState === 'idle' || !this.socket) return;
    this.runState = 'disconnecting';
    const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    this.socket.end();
    const timer = setTimeout(() => this.socket?.destroy(), 2000);
    await closed;
    clearTimeout(timer);
  }

  /** Resolves when the current connection is closed (by either side). */
  closed(): Promise<void> {
    if (this.runState === 'idle') return Promise.resolve();
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }

  private require(action: string, state: RunState): void {
    if (this.runState !== state) throw new QmpStateError(action, this.runState, state);
  }

  private async open(path: string, deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<Socket> {
    for (;;) {
      signal?.throwIfAborted();
      try {
        return await new Promise<Socket>((resolve, reject) => {
          const socket = netConnect(path);
          socket.once('connect', () => {
            socket.removeListener('error', reject);
            resolve(socket);
          });
          socket.once('error', reject);
        });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        if (!RETRYABLE.has(code)) throw new QmpDisconnectedError(undefined, path, { cause: error });
        if (Date.now() >= deadline) throw new QmpTimeoutError(`connecting to ${path} (${code})`, timeoutMs);
        await sleep(50, undefined, signal ? { signal } : {});
      }
    }
  }

  private attach(socket: Socket): void {
    this.socket = socket;
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      let messages: QmpMessage[];
      try {
        messages = decoder.push(chunk);
      } catch (error) {
        this.teardown(error);
        socket.destroy();
        return;
      }
      for (const message of messages) this.dispatch(message);
    });
    socket.on('error', (error) => this.teardown(error));
    socket.on('close', () => this.teardown(undefined));
  }

  private dispatch(message: QmpMessage): void {
    if ('QMP' in message) {
      if (!this.pending.resolve(GREETING, message)) this.options.onUnexpected?.(message);
    } else if (typeof message.event === 'string') {
      const event = message as unknown as QmpEvent;
      for (const listener of this.listeners) listener.deliver(event);
    } else if (typeof message.id !== 'string' || !this.pending.resolve(message.id, message)) {
      this.options.onUnexpected?.(message);
    }
  }

  private async waitGreeting(timeoutMs: number, signal: AbortSignal | undefined): Promise<Greeting> {
    const message = await this.pending.call(GREETING, 'greeting', () => undefined, { timeoutMs, signal, timedOut: () => new QmpTimeoutError('the QMP greeting', timeoutMs) });
    const body = message.QMP as Greeting | undefined;
    if (!body || typeof body !== 'object' || !body.version) throw new QmpProtocolError('malformed greeting', JSON.stringify(message));
    return body;
  }

  private teardown(cause: unknown): void {
    if (this.runState === 'idle' && !this.socket) return;
    this.pending.failAll((command) => new QmpDisconnectedError(command, this.socketPath, cause ? { cause } : undefined));
    const gone = new QmpDisconnectedError(undefined, this.socketPath, cause ? { cause } : undefined);
    for (const listener of this.listeners) listener.fail(gone);
    this.listeners.clear();
    this.socket = undefined;
    this.runState = 'idle';
    for (const resolve of this.closedWaiters.splice(0)) resolve();
  }
}
