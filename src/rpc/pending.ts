/**
 * The one request/response core under QMP and the peer control channel (DESIGN §9): calls
 * waiting for their reply by id, each bounded by a timeout and by the caller's `AbortSignal`,
 * and all of them failed at once when the connection goes away, so none is left hanging.
 * Transports, message shapes and ids stay with the clients (QMP's `cowbuf-N`, the peer's
 * numbers): a reply that finds no caller (a late answer to a call given up on) is theirs to report.
 */

export interface CallOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
  /** The error of a call that got no reply within `timeoutMs`. */
  readonly timedOut: () => Error;
}

interface Waiter<Reply> {
  readonly what: string;
  readonly settle: (reply: Reply) => void;
  readonly fail: (error: unknown) => void;
}

export class PendingCalls<Id, Reply> {
  private readonly waiters = new Map<Id, Waiter<Reply>>();

  /**
   * Registers `id`, then runs `send`; resolves with the reply routed to `id`.
   * @throws what `send` threw, `timedOut()`, the signal's reason, or the error of `failAll`
   */
  call(id: Id, what: string, send: () => void, options: CallOptions): Promise<Reply> {
    const { signal } = options;
    return new Promise<Reply>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(id);
      };
      const onAbort = () => {
        done();
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        done();
        reject(options.timedOut());
      }, options.timeoutMs);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const waiter: Waiter<Reply> = {
        what,
        settle: (reply) => (done(), resolve(reply)),
        fail: (error) => (done(), reject(error)),
      };
      this.waiters.set(id, waiter);
      try {
        send();
      } catch (error) {
        waiter.fail(error);
      }
    });
  }

  has(id: Id): boolean {
    return this.waiters.has(id);
  }

  /** Hands `reply` to the call waiting for `id`. @returns false when none waits for it */
  resolve(id: Id, reply: Reply): boolean {
    const waiter = this.waiters.get(id);
    waiter?.settle(reply);
    return waiter !== undefined;
  }

  /** The connection went away: every waiting call fails, each with the error made for it. */
  failAll(error: (what: string) => Error): void {
    for (const waiter of [...this.waiters.values()]) waiter.fail(error(waiter.what));
  }
}
