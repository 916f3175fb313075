import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { MigrationRecord } from '../../src/migration/engine.js';
import { startDaemonPair, type DaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { report } from '../support/report.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const BUFFER = 256 * MiB;
const scope = useScope('three');

/** Three guests whose bases already hold 192 MiB (so shipping takes ~45 s at 100 Mbit/s), each writing unique data as fast as it can. */
async function busyGuests(pair: DaemonPair): Promise<Array<{ name: string; serialLog: string }>> {
  const guests = [];
  for (const name of ['g1', 'g2', 'g3']) {
    const disk = scope().path(`${name}.qcow2`);
    await qemuImg('create', '-q', '-f', 'qcow2', disk, '512M');
    await import('../../src/exec/run.js').then(({ run }) => run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 7 256M 192M', disk]));
    const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', guestVmBody(name, disk, { diskRateMiB: 4, diskSpanMiB: 240, dirtyRateMiB: 1, verifyEvery: 0 }, 192));
    guests.push({ name, serialLog: vm.serialLog });
  }
  for (const guest of guests) await waitForSerial(guest.serialLog, (r) => r.heartbeats.length > 1, `heartbeats of ${guest.name}`);
  return guests;
}

/** Starts the three migrations at once; samples the buffer's real bytes in use until all ended. */
async function migrateAll(pair: DaemonPair): Promise<{ records: MigrationRecord[]; peakUsed: number }> {
  const operations = await Promise.all(['g1', 'g2', 'g3'].map((vm) => pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm, target: 'dst' })));
  let peakUsed = 0;
  let done = false;
  const sampling = (async () => {
    while (!done) {
      const buffer = await pair.source.api.call<{ used: number }>('GET', '/1.0/buffer');
      peakUsed = Math.max(peakUsed, buffer.used);
      await sleep(1000);
    }
  })();
  const ended = await Promise.all(operations.map((op) => pair.source.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${op.id}/wait`)));
  done = true;
  await sampling;
  return { records: ended.map((op) => op.metadata), peakUsed };
}

describe('three busy guests at once through a 256 MiB buffer on a 100 Mbit/s link', { timeout: 600_000 }, () => {
  it('all complete with the throttle: the buffer never overflows, no guest sees an I/O error, all keep writing on the target', async () => {
    const pair = await startDaemonPair({ dir: scope().dir, bufferSize: BUFFER, linkRate: '100mbit' });
    try {
      await busyGuests(pair);
      const began = Date.now();
      const { records, peakUsed } = await migrateAll(pair);
      expect(records.map((r) => [r.vm, r.phase, r.error])).toEqual([
        ['g1', 'completed', undefined],
        ['g2', 'completed', undefined],
        ['g3', 'completed', undefined],
      ]);
      expect(peakUsed).toBeLessThan(BUFFER);
      const arrived = await pair.target.api.call<Array<{ name: string; serialLog: string }>>('GET', '/1.0/vms');
      expect(arrived.map((vm) => vm.name).sort()).toEqual(['g1', 'g2', 'g3']);
      for (const vm of arrived) {
        const serial = await waitForSerial(vm.serialLog, (r) => r.heartbeats.length >= 2, `${vm.name} writing on the target`);
        expect(serial.ioErrors).toEqual([]);
      }
      await report('three-guests-throttled', { seconds: (Date.now() - began) / 1000, peakUsedMiB: Math.round(peakUsed / MiB), bufferMiB: BUFFER / MiB, decisions: records.flatMap((r) => r.decisions) });
    } finally {
      await pair.close();
    }
  });

  it('without the throttle the same migrations overflow the buffer, fail cleanly, and the guests write on at the source without an I/O error', async () => {
    const pair = await startDaemonPair({ dir: scope().dir, bufferSize: BUFFER, linkRate: '100mbit', migration: { throttle: false } });
    try {
      const guests = await busyGuests(pair);
      const { records, peakUsed } = await migrateAll(pair);
      const failed = records.filter((r) => r.phase !== 'completed');
      expect(failed.length).toBeGreaterThan(0);
      for (const record of failed) expect(record.error ?? '').toMatch(/the buffer (is full|cannot hold its overlay)/);
      expect(peakUsed).toBeGreaterThanOrEqual(BUFFER * 0.95);
      const still = await pair.source.api.call<Array<{ name: string; running: boolean }>>('GET', '/1.0/vms');
      expect(still.map((vm) => vm.name).sort()).toEqual(failed.map((r) => r.vm).sort());
      for (const guest of guests.filter((g) => failed.some((r) => r.vm === g.name))) {
        const before = (await readSerial(guest.serialLog)).heartbeats.length;
        const serial = await waitForSerial(guest.serialLog, (r) => r.heartbeats.length > before + 1, `${guest.name} writing again on the source`);
        expect(serial.ioErrors).toEqual([]);
      }
      await report('three-guests-unthrottled', { failed: failed.length, peakUsedMiB: Math.round(peakUsed / MiB), errors: failed.map((r) => r.error) });
    } finally {
      await pair.close();
    }
  });
});
