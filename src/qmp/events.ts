/**
 * Scoped, filtered QMP event listeners. Each listener has its own queue, so two waiters never
 * steal each other's events; a listener only sees events that arrive after it was created
 * (create it *before* issuing the command whose event you wait for), and when the connection
 * drops every waiter is rejected instead of hanging.
 */
import { QmpTimeoutError } from './errors.js';

export interface QmpEvent {
  readonly event: string;
  readonly data: Readonly<Record<string, unknown>>;
  readonly timestamp?: { readonly seconds: number; readonly microseconds: number };
}

export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export const DEFAULT_EVENT_TIMEOUT_MS = 60_000;

interface Waiter {
  readonly resolve: (event: QmpEvent) => void;
  readonly reject: (error: unknown) => void;
}

export class EventListener {
  private readonly queue: QmpEvent[] = [];
  private readonly waiters = new Set<Waiter>();
  private failure: unknown;

  constructor(
    readonly names: ReadonlySet<string>,
    private readonly detach: (listener: EventListener) => void,
  ) {}

  /** Internal: called by the client for every event. */
  deliver(event: QmpEvent): void {
    if (this.names.size > 0 && !this.names.has(event.event)) return;
    const [waiter] = this.waiters;
    if (waiter) {
      this.waiters.delete(waiter);
      waiter.resolve(event);
    } else {
      this.queue.push(event);
    }
  }

  /** Internal: the connection is gone; current and future waits reject with `error`. */
  fail(error: unknown): void {
    this.failure = error;
    for (const waiter of this.waiters) waiter.reject(error);
    this.waiters.clear();
  }

  /**
   * The next queued or arriving event.
   * @throws QmpTimeoutError, QmpDisconnectedError, the signal's reason
   */
  next(options: WaitOptions = {}): Promise<QmpEvent> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const timeoutMs = options.timeoutMs ?? DEFAULT_EVENT_TIMEOUT_MS;
    return new Promise<QmpEvent>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(waiter);
      };
      const waiter: Waiter = {
        resolve: (event) => {
          cleanup();
          resolve(event);
        },
        reject: (error) => {
          cleanup();
          reject(error);
        },
      };
      const onAbort = () => waiter.reject(options.signal?.reason);
      const timer = setTimeout(() => waiter.reject(new QmpTimeoutError(`waiting for ${[...this.names].join('|') || 'any event'}`, timeoutMs)), timeoutMs);
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }

  /** The next event satisfying `predicate`; others are dropped from this listener's queue. */
  async waitFor(predicate: (event: QmpEvent) => boolean, options: WaitOptions = {}): Promise<QmpEvent> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_EVENT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new QmpTimeoutError(`waiting for a matching ${[...this.names].join('|') || 'event'}`, timeoutMs);
      const event = await this.next({ timeoutMs: left, ...(options.signal ? { signal: options.signal } : {}) });
      if (predicate(event)) return event;
    }
  }

  /** Everything queued so far, without waiting. */
  drain(): QmpEvent[] {
    return this.queue.splice(0);
  }

  close(): void {
    this.detach(this);
    this.fail(new Error('listener closed'));
  }
}
