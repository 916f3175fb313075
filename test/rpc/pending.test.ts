import { describe, expect, it } from 'vitest';
import { PendingCalls } from '../../src/rpc/pending.js';

const timedOut = () => new Error('no answer');

describe('the request core', () => {
  it('routes each reply to its call, in any order, and reports replies nobody waits for', async () => {
    const calls = new PendingCalls<number, string>();
    const sent: number[] = [];
    const a = calls.call(1, 'a', () => sent.push(1), { timeoutMs: 1000, timedOut });
    const b = calls.call(2, 'b', () => sent.push(2), { timeoutMs: 1000, timedOut });
    expect(sent).toEqual([1, 2]);
    expect(calls.resolve(2, 'two')).toBe(true);
    expect(calls.resolve(1, 'one')).toBe(true);
    expect(await Promise.all([a, b])).toEqual(['one', 'two']);
    expect(calls.resolve(1, 'late')).toBe(false);
    expect(calls.has(1)).toBe(false);
  });

  it('fails a call on its timeout and on its signal, at once, and forgets it', async () => {
    const calls = new PendingCalls<number, string>();
    await expect(calls.call(1, 'slow', () => undefined, { timeoutMs: 20, timedOut })).rejects.toThrow('no answer');
    const controller = new AbortController();
    const started = Date.now();
    const cancelled = calls.call(2, 'cancelled', () => undefined, { timeoutMs: 120_000, signal: controller.signal, timedOut });
    controller.abort(new Error('migration cancelled'));
    await expect(cancelled).rejects.toThrow('migration cancelled');
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(calls.call(3, 'never sent', () => expect.unreachable(), { timeoutMs: 1000, signal: controller.signal, timedOut })).rejects.toThrow('migration cancelled');
    expect([calls.has(1), calls.has(2), calls.has(3)]).toEqual([false, false, false]);
  });

  it('fails every waiting call with its own error when the connection goes, and a send that throws fails its call', async () => {
    const calls = new PendingCalls<string, string>();
    const a = calls.call('x', 'query-status', () => undefined, { timeoutMs: 1000, timedOut });
    const b = calls.call('y', 'cont', () => undefined, { timeoutMs: 1000, timedOut });
    calls.failAll((what) => new Error(`${what} interrupted`));
    await expect(a).rejects.toThrow('query-status interrupted');
    await expect(b).rejects.toThrow('cont interrupted');
    await expect(
      calls.call('z', 'write', () => {
        throw new Error('socket closed');
      }, { timeoutMs: 1000, timedOut }),
    ).rejects.toThrow('socket closed');
    expect(calls.has('z')).toBe(false);
  });
});
