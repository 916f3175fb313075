import { describe, expect, it } from 'vitest';
import { BufferFullError, CancelledError, UnknownMigrationError, ValidationError } from '../../src/errors.js';
import { Ledger, type MigrationLog, type MigrationRecord } from '../../src/migration/ledger.js';
import type { MigrationHead } from '../../src/migration/record.js';
import type { TraceEntry } from '../../src/migration/tick-trace.js';

/** A ledger over a journal kept in memory, with what it announced. */
function ledger() {
  const journaled: MigrationHead[] = [];
  const changes: string[] = [];
  const logs: MigrationLog[] = [];
  const book = new Ledger({
    state: { outgoing: (entry) => (journaled.push(entry), Promise.resolve()) },
    changed: (record) => changes.push(`${record.id}:${record.phase}`),
    log: (entry) => logs.push(entry),
  });
  return { book, journaled, changes, logs };
}

function entry(id: string, cow: number): TraceEntry {
  return { id, bin: 64, cow, shards: [{ bin: 'x', bytes: 1, priority: 1 }], frozen: false, meanPriority: 1, linkShare: 10, remainingBytes: 0, uniqueFraction: 1, throttle: 5, applied: false };
}

describe('the ledger of outgoing migrations', () => {
  it('settles a migration: its phase and error journaled, announced and logged', () => {
    const { book, journaled, changes, logs } = ledger();
    const record = book.create('vm1', 'dst', 'deadline');
    expect(record).toMatchObject({ vm: 'vm1', peer: 'dst', policy: 'deadline', phase: 'queued', decisions: [] });
    book.settle(record.id, 'failed', 'the target refused');
    expect(journaled.at(-1)).toMatchObject({ id: record.id, phase: 'failed', error: 'the target refused' });
    expect(journaled.at(-1)).not.toHaveProperty('progress');
    expect(changes).toEqual([`${record.id}:failed`]);
    expect(logs).toEqual([{ level: 'warn', migration: record.id, message: 'migration failed: the target refused' }]);
    expect(() => book.get('nope')).toThrow(UnknownMigrationError);
  });

  it('aborts only migrations under way, with the reason and the decision given', () => {
    const { book } = ledger();
    const record = book.create('vm1', 'dst', 'deadline');
    const controller = book.begin(record.id);
    expect(book.running).toBe(1);
    book.abort(record.id, new CancelledError('by request'), 'rolling back');
    expect(controller.signal.reason).toBeInstanceOf(CancelledError);
    expect(record.decisions).toEqual(['rolling back']);
    book.end(record.id);
    expect([book.running, book.isRunning(record.id)]).toEqual([0, false]);
    expect(() => book.abort(record.id, new CancelledError('again'))).not.toThrow();
  });

  it('fails a migration the buffer cannot hold with a BufferFullError, and ignores an unknown one', () => {
    const { book, logs } = ledger();
    const record = book.create('vm1', 'dst', 'deadline');
    const controller = book.begin(record.id);
    book.fail('gone', 'over');
    book.fail(record.id, 'the buffer cannot hold its overlay (5 bytes over)');
    expect(controller.signal.reason).toBeInstanceOf(BufferFullError);
    expect(record.decisions).toEqual(['the buffer cannot hold its overlay (5 bytes over)']);
    expect(logs.map((log) => log.level)).toEqual(['error']);
  });

  it("passes an admin's side to a migration in doubt that waits for one, and refuses any other", async () => {
    const { book } = ledger();
    const record = book.create('vm1', 'dst', 'deadline');
    const decided = book.decision(record.id);
    expect(() => book.resolve(record.id, 'target')).toThrow(ValidationError);
    record.phase = 'in-doubt';
    book.resolve(record.id, 'source');
    await expect(decided).resolves.toBe('source');
    expect(record.decisions).toEqual(['an admin resolved it: resume on the source']);
    book.end(record.id);
    expect(() => book.resolve(record.id, 'source')).toThrow(ValidationError);
  });

  it("copies a tick's buffer figures into unsettled records only", () => {
    const { book } = ledger();
    const live = book.create('vm1', 'dst', 'deadline');
    const done: MigrationRecord = book.create('vm2', 'dst', 'deadline');
    done.phase = 'completed';
    book.observe({ t: 1, trigger: 'period', durationMs: 1, lagMs: 0, capacity: 128, links: [], migrations: [entry(live.id, 7), entry(done.id, 9), entry('unknown', 3)] });
    expect(live.buffer).toEqual({ bin: 64, cow: 7, shards: 1, frozen: false, throttle: 5, linkShare: 10 });
    expect(done.buffer).toBeUndefined();
  });
});
