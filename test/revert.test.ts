import { describe, expect, it } from 'vitest';
import { Revert } from '../src/revert.js';

describe('Revert', () => {
  it('undoes registered steps newest first when the work fails, and rethrows the original error', async () => {
    const log: string[] = [];
    const work = Revert.run(async (revert) => {
      log.push('a');
      revert.add(() => void log.push('undo a'));
      log.push('b');
      revert.add(async () => {
        log.push('undo b');
        throw new Error('undo b failed');
      });
      throw new Error('step c failed');
    });
    const error = (await work.catch((e: unknown) => e)) as Error;
    expect(error.message).toBe('step c failed');
    expect((error.cause as AggregateError).errors.map((e: Error) => e.message)).toEqual(['undo b failed']);
    expect(log).toEqual(['a', 'b', 'undo b', 'undo a']);
  });

  it('keeps everything on success', async () => {
    const log: string[] = [];
    expect(await Revert.run(async (revert) => (revert.add(() => void log.push('undo')), 42))).toBe(42);
    expect(log).toEqual([]);
  });
});
