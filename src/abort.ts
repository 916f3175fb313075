/** Waiting on work that cannot itself be cancelled, and deadlines shared by many calls. */
import { setMaxListeners } from 'node:events';

/** `work`, or the signal's reason once it aborts: work that cannot be cancelled (a stat on a hung filesystem, a library's subprocess) is only left behind. */
export function orAbort<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * `AbortSignal.timeout(ms)` for one tick's fan-out: every VM's QMP calls of a control tick share
 * it, several each, so a host with four migrations passes Node's default of ten listeners
 * without leaking any (each call removes its own on settling).
 */
export function tickDeadline(ms: number): AbortSignal {
  const signal = AbortSignal.timeout(ms);
  setMaxListeners(0, signal);
  return signal;
}
