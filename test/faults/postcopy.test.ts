/**
 * Post-copy under a link cut. Once the target runs the guest part of its RAM is still at the
 * source, so the migration can neither fail nor roll back: the stream must carry on.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DaemonPair } from '../../src/testbed/daemons.js';
import { SerialClock } from '../../src/testbed/serial-clock.js';
import { report } from '../support/report.js';
import { busyGuestPair, expectGuestMovedToTarget, migrateWithFault, outcome, retryOnGuestPanic } from '../support/faults.js';
import { Scope } from '../support/testbed.js';

let scope: Scope;
let pair: DaemonPair;

/**
 * 16 MiB/s of dirtying never converges without auto-converge: the stall detector switches to
 * post-copy after 4 s. The link is narrowed to 12 Mbit/s for the RAM phase so that post-copy
 * lasts long enough (tens of seconds) to be cut while the target runs the guest.
 */
const postcopyPair = (s: Scope): Promise<DaemonPair> =>
  busyGuestPair(s, { migration: { convergence: { postcopy: true, autoConverge: false, stallSeconds: 4, multifdAbove: '1B' } }, baseMiB: 8, dirtyRateMiB: 16 });

beforeEach(async () => {
  scope = await Scope.create('postcopy');
  pair = await postcopyPair(scope);
}, 120_000);
afterEach(async () => {
  await pair?.hosts.restore();
  await pair?.close();
  await scope?.cleanup();
}, 120_000);

describe('post-copy under faults', { timeout: 400_000 }, () => {
  it('the link cut for 10 s while the target runs the guest: the RAM stream is paused and resumed on a new one, the migration completes, every write is kept', async () => {
    await retryOnGuestPanic(
      () => pair,
      async () => {
        let clock: SerialClock | undefined;
        const id = await migrateWithFault(pair, 'g1', 'ram', async (record) => {
          await pair.hosts.shape('12mbit');
          clock = new SerialClock([join(pair.target.stateDir, 'vms', record.id, 'serial.log')]);
        });
        for (const deadline = Date.now() + 180_000; clock?.lines(/^TICK /).length === 0; await sleep(20)) {
          if (Date.now() > deadline) throw new Error('the guest never ticked on the target');
        }
        await clock?.stop();
        const cutWhile = await pair.source.api.call<{ phase: string }>('GET', `/1.0/migrations/${id}`);
        await pair.hosts.cut();
        await sleep(10_000);
        await pair.hosts.restore();
        await pair.hosts.shape('100mbit');
        const done = await outcome(pair, id);
        // The cut came while the guest ran on the target and its RAM was still following.
        expect(cutWhile.phase).toBe('finishing');
        expect(done.phase, done.error).toBe('completed');
        expect(done.decisions).toContain('post-copy: the guest resumes on the target; the RAM it has not received yet follows as it faults');
        expect(done.decisions.some((d) => d.startsWith('post-copy moved nothing for 5 s: pausing its stream'))).toBe(true);
        expect(done.decisions).toContain('post-copy resumed on a new stream');
        expect(done.progress.ramStreams).toBeGreaterThanOrEqual(2);
        await expectGuestMovedToTarget(pair, 'g1');
        await report('postcopy-link-cut', { decisions: done.decisions, ramStreams: done.progress.ramStreams, postcopyRequests: done.progress.postcopyRequests });
      },
      async () => {
        await pair.close();
        pair = await postcopyPair(scope);
      },
    );
  });
});
