/** Waiting on work that cannot itself be cancelled. */

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
