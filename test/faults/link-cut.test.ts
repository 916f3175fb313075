import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MigrationRecord } from '../../src/migration/engine.js';
import type { DaemonPair } from '../../src/testbed/daemons.js';
import { busyGuestPair, expectGuestKeptAtSource, expectGuestMovedToTarget, migrateWithFault, outcome, retryOnGuestPanic } from '../support/faults.js';
import { Scope } from '../support/testbed.js';

let scope: Scope;
let pair: DaemonPair;

beforeEach(async () => {
  scope = await Scope.create('link-cut');
  pair = await busyGuestPair(scope);
}, 120_000);
afterEach(async () => {
  await pair?.close();
  await scope?.cleanup();
}, 120_000);

/** Either way a cut ends, the guest is whole and in exactly one place. */
async function expectWhole(id: string): Promise<MigrationRecord> {
  const record = await outcome(pair, id);
  expect(['completed', 'failed']).toContain(record.phase);
  if (record.phase === 'completed') await expectGuestMovedToTarget(pair, 'g1');
  else await expectGuestKeptAtSource(pair, 'g1');
  return record;
}

/** A fresh pair for a cell run again (retryOnGuestPanic). */
async function reset(): Promise<void> {
  await pair.close();
  pair = await busyGuestPair(scope);
}

// Under TCG on QEMU 7.2 a destination guest occasionally panics in its virtio-blk completion
// interrupt right after a correct migration (TESTBED.md; seen once in CI, in the mirror cell):
// a crash cowbuf cannot undo after switchover, reported in docs/guarantees.md. Only that failure,
// recognised on the guest's console, runs a cell again; any other fails it.
describe('the link cut (ip link down) and brought back', { timeout: 400_000 }, () => {
  it.each(['base', 'mirror', 'ram', 'switchover'])('for 6 s in %s: TCP rides it out, the migration completes, every write is kept', async (phase) => {
    await retryOnGuestPanic(
      () => pair,
      async () => {
        const id = await migrateWithFault(pair, 'g1', phase, async () => {
          await pair.hosts.cut();
          await sleep(6000);
          await pair.hosts.restore();
        });
        const record = await expectWhole(id);
        expect(record.phase, record.error).toBe('completed');
      },
      reset,
    );
  });

  it('flapping (five 1 s cuts a second apart) through mirror and RAM: the guest ends whole in one place', async () => {
    await retryOnGuestPanic(
      () => pair,
      async () => {
        const id = await migrateWithFault(pair, 'g1', 'mirror', async () => {
          for (let i = 0; i < 5; i += 1) {
            await pair.hosts.cut();
            await sleep(1000);
            await pair.hosts.restore();
            await sleep(1000);
          }
        });
        await expectWhole(id);
      },
      reset,
    );
  });
});
