/**
 * The handoff's fault cells: once the source's QEMU completed, the guest is the target's, and no
 * timer may resume the source's copy. Each cell ends with the guest running in exactly one place.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MigrationRecord } from '../../src/migration/engine.js';
import type { DaemonPair } from '../../src/testbed/daemons.js';
import { SerialClock } from '../../src/testbed/serial-clock.js';
import { busyGuestPair, expectGuestMovedToTarget, migrateWithFault, outcome, type VmView } from '../support/faults.js';
import { Scope } from '../support/testbed.js';

let scope: Scope;
let pair: DaemonPair;

beforeEach(async () => {
  scope = await Scope.create('handoff');
  pair = await busyGuestPair(scope);
}, 120_000);
afterEach(async () => {
  await pair?.hosts.acceptNew();
  await pair?.close();
  await scope?.cleanup();
}, 120_000);

/** The one migration the source has (the harness reports its id only after the fault). */
async function ramMigration(): Promise<string> {
  const [record] = await pair.source.api.call<MigrationRecord[]>('GET', '/1.0/migrations');
  return record?.id ?? '';
}

async function phaseOf(id: string): Promise<MigrationRecord> {
  return pair.source.api.call<MigrationRecord>('GET', `/1.0/migrations/${id}`);
}

async function untilPhase(id: string, phase: string, timeoutMs: number): Promise<MigrationRecord> {
  for (const deadline = Date.now() + timeoutMs; ; await sleep(200)) {
    const record = await phaseOf(id);
    if (record.phase === phase) return record;
    if (Date.now() > deadline) throw new Error(`${id} never reached ${phase}: it is ${record.phase} (${record.error ?? ''})`);
  }
}

/** The RAM stream is up once QEMU reports RAM bytes sent through it. */
async function untilRamFlows(id: string): Promise<void> {
  for (let i = 0; i < 600; i += 1) {
    if ((await phaseOf(id)).progress.ramTransferred > 0) return;
    await sleep(100);
  }
  throw new Error('the RAM stream never came up');
}

describe('the handoff under faults', { timeout: 400_000 }, () => {
  it('the target unreachable once RAM has crossed, for longer than a finish timeout: in doubt, paused on both sides, finished when it answers', async () => {
    const id = await migrateWithFault(pair, 'g1', 'ram', async () => {
      await untilRamFlows(await ramMigration());
      // The migration's streams carry on; the `finish` that follows `completed` cannot connect.
      await pair.hosts.refuseNew(8443);
    });
    const doubt = await untilPhase(id, 'in-doubt', 180_000);
    expect(doubt.decisions.some((d) => d.startsWith('in doubt: the target has not answered `finish`'))).toBe(true);
    await pair.hosts.cut();

    // Neither copy runs: no tick on either console for longer than the 30 s request timeout.
    const [source] = await pair.source.api.call<VmView[]>('GET', '/1.0/vms');
    const clock = new SerialClock([source?.serialLog ?? '', join(pair.target.stateDir, 'vms', id, 'serial.log')]);
    await sleep(1000);
    const quietFrom = Date.now();
    const cancel = await pair.source.api.call('DELETE', `/1.0/migrations/${id}`).catch((error: Error) => error);
    expect(String(cancel)).toMatch(/point of no return/);
    const badSide = await pair.source.api.call('POST', `/1.0/migrations/${id}/resolve`, { resume: 'both' }).catch((error: Error) => error);
    expect(String(badSide)).toMatch(/resume/);
    await sleep(40_000);
    expect(clock.lines(/^TICK /).filter((line) => line.at >= quietFrom)).toEqual([]);
    await clock.stop();
    expect((await phaseOf(id)).phase).toBe('in-doubt');
    expect(source).toMatchObject({ running: false });

    await pair.hosts.restore();
    await pair.hosts.acceptNew();
    const done = await outcome(pair, id);
    expect(done.phase, done.error).toBe('completed');
    await expectGuestMovedToTarget(pair, 'g1');
  });

  it('the source daemon SIGKILLed once RAM has crossed: the restarted daemon finishes it on the target', async () => {
    const id = await migrateWithFault(pair, 'g1', 'ram', async () => {
      await untilRamFlows(await ramMigration());
      await pair.hosts.refuseNew(8443);
    });
    await untilPhase(id, 'in-doubt', 180_000);
    await pair.kill('source');
    await pair.hosts.acceptNew();
    await pair.restart('source');
    const done = await outcome(pair, id);
    expect(done.phase, done.error).toBe('completed');
    await expectGuestMovedToTarget(pair, 'g1');
  });
});
