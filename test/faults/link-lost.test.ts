import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import { sourceGivesUpSeconds } from '../../src/migration/source-silence.js';
import type { DaemonPair } from '../../src/testbed/daemons.js';
import { readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { busyGuestPair, expectGuestKeptAtSource, migrateWithFault, outcome, qemuProcesses, type VmView } from '../support/faults.js';
import { report } from '../support/report.js';
import { Scope, until } from '../support/testbed.js';

let scope: Scope;
let pair: DaemonPair;

/** Short, so the cell is too; the product's default is 30 s. */
const LINK_LOST_SECONDS = 8;

beforeEach(async () => {
  scope = await Scope.create('link-lost');
  pair = await busyGuestPair(scope, { migration: { linkLostSeconds: LINK_LOST_SECONDS } });
}, 120_000);
afterEach(async () => {
  await pair?.close();
  await scope?.cleanup();
}, 120_000);

// TCP retransmits into a cut link for many minutes without an error; before the link watch, a
// migration to a target cut off for good waited that long with its guest throttled to ε.
// The mirror phase has no cell: it passed on QEMU 7.2 (failed 90 s after the cut, target
// cleaned) but hung past 300 s on 10.0.2, not yet understood (docs/guarantees.md).
describe('the link cut for good', { timeout: 300_000 }, () => {
  it.each(['base', 'ram'])('in %s: the migration gives up after linkLostSeconds, the guest writes on at the source, and the target is cleaned once it is back', async (phase) => {
    let cutAt = 0;
    const id = await migrateWithFault(pair, 'g1', phase, async () => {
      await pair.hosts.cut();
      cutAt = Date.now();
    });
    const record = await outcome(pair, id);
    const seconds = (Date.now() - cutAt) / 1000;
    expect(record.phase).toBe('failed');
    // A stream already open sees the cut only as silence (the link watch names it); one dialled
    // after it finds no route, which fails at once.
    expect(record.error).toMatch(/the link to dst acknowledged nothing for \d+ s with bytes waiting to go|RAM moved nothing for \d+ s: the link looks cut|ENETUNREACH|NBD export of vdisk0 on dst could not be reached/);
    // While the target is still unreachable: the guest runs here, unthrottled, and writes on.
    const [guest] = await pair.source.api.call<VmView[]>('GET', '/1.0/vms');
    expect(guest).toMatchObject({ name: 'g1', running: true, throttled: false });
    const before = (await readSerial(guest?.serialLog ?? '')).heartbeats.length;
    await waitForSerial(guest?.serialLog ?? '', (r) => r.heartbeats.length >= before + 3, 'heartbeats at the source with the link still cut', { timeoutMs: 30_000 });

    await pair.hosts.restore();
    await until('the target drops what it had incoming', async () => (await pair.target.api.call<unknown[]>('GET', '/1.0/vms')).length === 0 && (await qemuProcesses(pair.target.stateDir)) === 0, 90_000);
    await expectGuestKeptAtSource(pair, 'g1');
    await report(`link-lost-${phase}`, { secondsFromCutToFailed: Number(seconds.toFixed(1)), decisions: record.decisions.slice(-3) });
  });
});

// The source host gone for good, as far as the target can tell: nobody is left to say `abort`.
describe('the link cut for good and never back', { timeout: 420_000 }, () => {
  it('in ram: the target gives the migration up on its own, after its source did, and the guest writes on at the source', async () => {
    let cutAt = 0;
    const id = await migrateWithFault(pair, 'g1', 'ram', async () => {
      await pair.hosts.cut();
      cutAt = Date.now();
    });
    const record = await outcome(pair, id);
    const failedAfter = (Date.now() - cutAt) / 1000;
    expect(record.phase).toBe('failed');
    const incoming = join(pair.target.stateDir, 'vms', id);
    const gone = () => access(incoming).then(() => false, () => true);
    // The source gave up first: the target still held its copy then.
    expect(await gone()).toBe(false);
    const bound = sourceGivesUpSeconds(LINK_LOST_SECONDS);
    await until('the target drops what it had incoming, the link still cut', async () => (await qemuProcesses(pair.target.stateDir)) === 0 && (await gone()), (bound + 30) * 1000);
    const cleanAfter = (Date.now() - cutAt) / 1000;
    expect(await readFile(pair.target.logFile, 'utf8')).toMatch(new RegExp(`${id}: nothing heard from src for \\d+ s, past the ${bound} s its source takes to give up; aborted here`));
    // The target's bases land as files in `incoming` here; none may have come as a dataset either.
    expect((await run('zfs', ['list', '-H', '-o', 'name', '-r', pair.pool.name])).stdout).not.toContain(id);
    await expectGuestKeptAtSource(pair, 'g1');
    await report('link-lost-never-back-ram', { secondsFromCutToFailed: Number(failedAfter.toFixed(1)), secondsFromCutToTargetClean: Number(cleanAfter.toFixed(1)), targetBoundSeconds: bound });
  });
});
