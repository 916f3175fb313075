import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import type { DaemonPair } from '../../src/testbed/daemons.js';
import { waitForSerial } from '../../src/testbed/guest.js';
import { busyGuestPair, expectGuestKeptAtSource, migrateWithFault, outcome, qemuProcesses, type VmView } from '../support/faults.js';
import { Scope } from '../support/testbed.js';

let scope: Scope;
let pair: DaemonPair;

// One pair and one busy guest for the whole matrix: every cell must leave the guest at the
// source, able to migrate again, which the next cell relies on (and the last one proves).
beforeAll(async () => {
  scope = await Scope.create('daemon-killed');
  pair = await busyGuestPair(scope);
}, 120_000);
afterAll(async () => {
  await pair?.close();
  await scope?.cleanup();
}, 120_000);

describe('the source daemon SIGKILLed mid-migration and restarted', { timeout: 240_000 }, () => {
  it.each(['base', 'mirror', 'ram'])('in %s: the restarted daemon rolls back from its journal; the guest runs on at the source with every write', async (phase) => {
    const id = await migrateWithFault(pair, 'g1', phase, () => pair.kill('source'));
    // The guest outlives its daemon, and keeps writing meanwhile.
    expect(await qemuProcesses(`${pair.source.stateDir}/vms/g1/`)).toBe(1);
    await pair.restart('source');
    const record = await outcome(pair, id);
    expect(record.phase).toBe('failed');
    // The journal may still hold the phase before (the kill can beat its fsync by a moment).
    expect(record.error).toMatch(/^cowbufd restarted during phase \w+: rolled back, the VM runs here$/);
    await expectGuestKeptAtSource(pair, 'g1');
  });
});

describe('the target daemon SIGKILLed mid-migration', { timeout: 240_000 }, () => {
  it.each(['base', 'mirror', 'ram', 'switchover'])('in %s: the source rolls back; the restarted target removes the paused VM it left', async (phase) => {
    const id = await migrateWithFault(pair, 'g1', phase, () => pair.kill('target'));
    const record = await outcome(pair, id);
    expect(record.phase).toBe('failed');
    expect(record.error).toMatch(new RegExp(`^migration ${id} failed in phase \\w+: .+`));
    await pair.restart('target');
    await expectGuestKeptAtSource(pair, 'g1');
  });
});

describe('after every fault', { timeout: 240_000 }, () => {
  it('the same guest still migrates, and writes on at the target with no write lost; QEMU opens no TCP socket', async () => {
    // Sampled mid-RAM: every TCP socket on either host belongs to a daemon (TLS), none to QEMU,
    // whose NBD and migration traffic only reach local unix sockets.
    const sockets: string[] = [];
    const id = await migrateWithFault(pair, 'g1', 'ram', async () => {
      for (const ns of [pair.hosts.src.ns, pair.hosts.dst.ns]) sockets.push(...(await run('ip', ['netns', 'exec', ns, 'ss', '-tnpH'])).stdout.split('\n').filter(Boolean));
    });
    expect(sockets.filter((line) => line.includes('ESTAB')).length).toBeGreaterThan(0);
    expect(sockets.filter((line) => line.includes('qemu'))).toEqual([]);
    expect(sockets.filter((line) => line.includes('ESTAB')).every((line) => line.includes('"node"'))).toBe(true);
    const record = await outcome(pair, id);
    expect(record.phase, record.error).toBe('completed');
    const [arrived] = await pair.target.api.call<VmView[]>('GET', '/1.0/vms');
    expect(arrived).toMatchObject({ name: 'g1', running: true, throttled: false });
    const onTarget = await waitForSerial(arrived?.serialLog ?? '', (r) => r.verifications.length >= 2, 'two verifications on the target', { timeoutMs: 60_000 });
    expect(onTarget.verifications.every((v) => v.lost === 0)).toBe(true);
    expect(onTarget.ioErrors).toEqual([]);
    expect(await qemuProcesses(`${pair.source.stateDir}/vms/g1/`)).toBe(0);
  });
});
