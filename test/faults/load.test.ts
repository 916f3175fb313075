import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemonPair, type DaemonPair } from '../../src/testbed/daemons.js';
import { datasetCount, migrateAll, resources, startGuests, verifyGuests } from '../../src/testbed/soak.js';
import { report } from '../support/report.js';
import { Scope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const GUESTS = ['g1', 'g2', 'g3', 'g4', 'g5', 'g6'];
let scope: Scope;
let pair: DaemonPair;

beforeAll(async () => {
  scope = await Scope.create('load');
  pair = await startDaemonPair({ dir: scope.dir, bufferSize: 192 * MiB, linkRate: '200mbit', migration: { maxOutgoing: 3, maxIncoming: 3, minBin: '16MiB' } });
}, 120_000);
afterAll(async () => {
  await pair?.close();
  await scope?.cleanup();
}, 120_000);

const snapshot = async () => ({ source: await resources(pair.source), target: await resources(pair.target), datasets: await datasetCount(pair) });

describe('six busy guests through one 192 MiB buffer, there and back', { timeout: 900_000 }, () => {
  it('all migrate both ways with no write lost, and nothing leaks', async () => {
    // 160 MiB each: with 96 MiB the guest's own workload ran its kernel out of memory.
    await startGuests(pair, scope.dir, GUESTS, 160);
    const before = await snapshot();
    const started = Date.now();
    const there = await migrateAll(pair.source, 'dst', GUESTS);
    expect(there.map((m) => [m.vm, m.phase, m.error])).toEqual(GUESTS.map((vm) => [vm, 'completed', undefined]));
    const back = await migrateAll(pair.target, 'src', GUESTS);
    expect(back.map((m) => [m.vm, m.phase, m.error])).toEqual(GUESTS.map((vm) => [vm, 'completed', undefined]));
    const seconds = (Date.now() - started) / 1000;

    const guests = await verifyGuests(pair.source);
    expect(guests.map((g) => [g.name, g.running, g.throttled]).sort()).toEqual(GUESTS.map((name) => [name, true, false]));
    for (const { report: serial } of guests) {
      expect(serial.verifications.every((v) => v.lost === 0)).toBe(true);
      expect(serial.ioErrors).toEqual([]);
    }
    // A socket closed a moment ago may still hold its fd for a few ms: a leak is what stays.
    let after = await snapshot();
    for (let i = 0; i < 20 && !isDeepStrictEqual(after, before); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      after = await snapshot();
    }
    await report('load', { guests: GUESTS.length, migrations: there.length + back.length, seconds, verifications: guests.reduce((n, g) => n + g.report.verifications.length, 0), before, after });
    expect(after).toEqual(before);
    expect(after.target).toMatchObject({ qemus: 0, overlays: 0, incomingJournal: 0, vmDirs: 0 });
    expect(JSON.parse(await readFile(join(pair.source.stateDir, 'journal', 'vms.json'), 'utf8'))).toHaveLength(GUESTS.length);
  });
});
