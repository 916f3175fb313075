import { describe, expect, it } from 'vitest';
import { admit, emptyPartition, observe, type Partition } from '../../src/buffer/partition.js';
import { Admission } from '../../src/migration/admission.js';

const MiB = 1024 ** 2;

/** An admission over a real partition, starting each migration into it. */
function queue(options: { maxOutgoing: number; capacity: number; room?: () => Promise<void> }) {
  let partition: Partition = emptyPartition(options.capacity);
  const started: string[] = [];
  const paused: string[] = [];
  const admission = new Admission({
    maxOutgoing: options.maxOutgoing,
    minBinBytes: 8 * MiB,
    running: () => started.length,
    partition: () => partition,
    verifyRoom: options.room ?? (() => Promise.resolve()),
    start: (id) => {
      partition = admit(partition, id);
      started.push(id);
    },
    paused: (reason) => paused.push(reason),
  });
  const grow = (id: string, bytes: number) => (partition = observe(partition, [[id, bytes]]));
  return { admission, started, paused, grow };
}

describe('the outgoing queue', () => {
  it('starts in order while fewer than maxOutgoing run', async () => {
    const { admission, started } = queue({ maxOutgoing: 2, capacity: 256 * MiB });
    for (const id of ['a', 'b', 'c']) admission.push(id);
    await admission.admit();
    expect(started).toEqual(['a', 'b']);
  });

  it('waits while less than a bin floor of the buffer is left unused', async () => {
    const { admission, started, grow } = queue({ maxOutgoing: 8, capacity: 20 * MiB });
    admission.push('a');
    await admission.admit();
    grow('a', 15 * MiB);
    admission.push('b');
    await admission.admit();
    expect(started).toEqual(['a']);
  });

  it('pauses, saying why, while the volume cannot give what it promised; a removed one never starts', async () => {
    let full = true;
    const { admission, started, paused } = queue({ maxOutgoing: 4, capacity: 256 * MiB, room: () => (full ? Promise.reject(new Error('the pool is full')) : Promise.resolve()) });
    admission.push('a');
    admission.push('b');
    await admission.admit();
    expect(started).toEqual([]);
    expect(paused).toEqual(['the pool is full']);
    expect(admission.remove('a')).toBe(true);
    expect(admission.remove('a')).toBe(false);
    full = false;
    await admission.admit();
    expect(started).toEqual(['b']);
    expect(admission.drain()).toEqual([]);
  });

  it('runs one pass at a time: a request during a pass makes it go round again', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const { admission, started } = queue({ maxOutgoing: 4, capacity: 256 * MiB, room: () => (calls++ === 0 ? gate : Promise.resolve()) });
    admission.push('a');
    const first = admission.admit();
    admission.push('b');
    const second = admission.admit();
    expect(second).toBe(first);
    release();
    await first;
    expect(started).toEqual(['a', 'b']);
  });
});
