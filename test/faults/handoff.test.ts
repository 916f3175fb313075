/**
 * The handoff's fault cells: once the source's QEMU completed, the guest is the target's, and no
 * timer may resume the source's copy. Each cell ends with the guest running in exactly one place.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
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

/** The source's local ports of its established connections to the target's peer port. */
async function peerConnections(): Promise<number[]> {
  const { stdout } = await run('ip', ['netns', 'exec', pair.hosts.src.ns, 'ss', '-Htn', 'state', 'established', '( dport = :8443 )']);
  return stdout.split('\n').filter(Boolean).map((line) => Number(/:(\d+)\s+\S+:8443/.exec(line)?.[1]));
}

/**
 * Partitions the handoff only: from the RAM phase on, the migration's open control connection
 * (the only one right after `prepare`) is dropped and no new connection gets through, while the
 * NBD and RAM streams carry on, so RAM completes and the `finish` that follows cannot arrive.
 */
async function migrateWithHandoffCut(): Promise<string> {
  let control: number[] = [];
  const id = await migrateWithFault(pair, 'g1', 'overlay', async () => {
    control = await peerConnections();
  });
  expect(control).toHaveLength(1);
  for (const deadline = Date.now() + 120_000; ; await sleep(100)) {
    const record = await phaseOf(id);
    if (record.phase === 'ram' && record.progress.ramTransferred > 0) break;
    if (Date.now() > deadline) throw new Error(`${id} never moved RAM: it is ${record.phase}`);
  }
  await pair.hosts.refuseNew(8443, control);
  return id;
}

describe('the handoff under faults', { timeout: 400_000 }, () => {
  it('the target unreachable once RAM has crossed, for longer than a finish timeout: in doubt, paused on both sides, finished when it answers', async () => {
    const id = await migrateWithHandoffCut();
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
    expect(source).toMatchObject({ running: true, status: 'postmigrate' });

    await pair.hosts.restore();
    await pair.hosts.acceptNew();
    const done = await outcome(pair, id);
    expect(done.phase, done.error).toBe('completed');
    await expectGuestMovedToTarget(pair, 'g1');
  });

  it('the target daemon SIGKILLed right after `cont`: its guest runs on, the restarted target owns it, the source completes', async () => {
    let clock: SerialClock | undefined;
    let firstTick: number | undefined;
    const id = await migrateWithFault(pair, 'g1', 'finishing', async (record) => {
      // The guest's first heartbeat on the target's console is the earliest outside proof of `cont`.
      clock = new SerialClock([join(pair.target.stateDir, 'vms', record.id, 'serial.log')]);
      for (const deadline = Date.now() + 30_000; firstTick === undefined; await sleep(20)) {
        firstTick = clock.lines(/^TICK /)[0]?.at;
        if (Date.now() > deadline) throw new Error('the guest never ticked on the target');
      }
      await pair.kill('target');
    });
    const killedAfterMs = Date.now() - (firstTick ?? 0);
    await clock?.stop();
    expect(killedAfterMs).toBeLessThan(2000);
    await pair.restart('target');
    const done = await outcome(pair, id);
    expect(done.phase, done.error).toBe('completed');
    await expectGuestMovedToTarget(pair, 'g1');
  });

  it('the source daemon SIGKILLed once RAM has crossed: the restarted daemon finishes it on the target', async () => {
    const id = await migrateWithHandoffCut();
    await untilPhase(id, 'in-doubt', 180_000);
    await pair.kill('source');
    await pair.hosts.acceptNew();
    await pair.restart('source');
    const done = await outcome(pair, id);
    expect(done.phase, done.error).toBe('completed');
    await expectGuestMovedToTarget(pair, 'g1');
  });
});
