/**
 * A QMP client in the shape of QEMU's own (python/qemu/qmp): a run-state machine
 * (idle → connecting → running → disconnecting → idle), a greeting and capability negotiation,
 * message ids owned by the client (`cowbuf-N`), a timeout per command, and every pending call
 * rejected with `QmpDisconnectedError` when the connection goes away. Replies with unknown ids
 * (late replies to timed-out calls) are reported to `onUnexpected` and dropped.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
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

interface Pending {
  readonly command: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

export class QmpClient {
  private runState: RunState = 'idle';
  private socket: Socket | undefined;
  private socketPath = '';
  private nextId = 0;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<EventListener>();
  private greetingWaiter: ((greeting: QmpMessage) => void) | undefined;
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
  execute<T = unknown>(command: string, args?: Readonly<Record<string, unknown>>, options: ExecuteOptions = {}): Promise<T> {
    if (this.runState !== 'running') return Promise.reject(new QmpStateError(`execute \`${command}\``, this.runState, 'running'));
    const id = `cowbuf-${++this.nextId}`;
    const timeoutMs = options.timeoutMs ?? this.options.commandTimeoutMs ?? 30_000;
    return new Promise<T>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.pending.delete(id);
      };
      const onAbort = () => {
        done();
        reject(options.signal?.reason);
      };
      const timer = setTimeout(() => {
        done();
        reject(new QmpTimeoutError(`\`${command}\``, timeoutMs));
      }, timeoutMs);
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        command,
        resolve: (reply) => {
          done();
          const message = reply as QmpMessage;
          const error = message.error as { class?: string; desc?: string } | undefined;
          if (error) reject(new QmpCommandError(command, args, error.class ?? 'GenericError', error.desc ?? '', message));
          else resolve(message.return as T);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      });
      this.socket?.write(encode(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id }));
    });
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
    if ('QMP' in message && this.greetingWaiter) {
      this.greetingWaiter(message);
    } else if (typeof message.event === 'string') {
      const event = message as unknown as QmpEvent;
      for (const listener of this.listeners) listener.deliver(event);
    } else if (typeof message.id === 'string' && this.pending.has(message.id)) {
      this.pending.get(message.id)?.resolve(message);
    } else {
      this.options.onUnexpected?.(message);
    }
  }

  private waitGreeting(timeoutMs: number, signal: AbortSignal | undefined): Promise<Greeting> {
    return new Promise<Greeting>((resolve, reject) => {
      const timer = setTimeout(() => finish(new QmpTimeoutError('the QMP greeting', timeoutMs)), timeoutMs);
      const onAbort = () => finish(signal?.reason);
      const finish = (error: unknown, greeting?: Greeting) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.greetingWaiter = undefined;
        this.pending.delete('greeting');
        if (greeting) resolve(greeting);
        else reject(error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      // A close before the greeting rejects through the pending table like any call.
      this.pending.set('greeting', { command: 'greeting', resolve: () => undefined, reject: (error) => finish(error) });
      this.greetingWaiter = (message) => {
        const body = message.QMP as Greeting | undefined;
        if (!body || typeof body !== 'object' || !body.version) finish(new QmpProtocolError('malformed greeting', JSON.stringify(message)));
        else finish(undefined, body);
      };
    });
  }

  private teardown(cause: unknown): void {
    if (this.runState === 'idle' && !this.socket) return;
    for (const [, pending] of this.pending) pending.reject(new QmpDisconnectedError(pending.command, this.socketPath, cause ? { cause } : undefined));
    this.pending.clear();
    const gone = new QmpDisconnectedError(undefined, this.socketPath, cause ? { cause } : undefined);
    for (const listener of this.listeners) listener.fail(gone);
    this.listeners.clear();
    this.socket = undefined;
    this.runState = 'idle';
    for (const resolve of this.closedWaiters.splice(0)) resolve();
  }
}
