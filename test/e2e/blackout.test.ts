/**
 * The switchover as the guest feels it, measured from outside: the migration record's blackout
 * (source STOP → target RESUME, QMP event times) against the longest host-clock gap between the
 * guest's TICK lines across both hosts' serial consoles.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { MigrationRecord } from '../../src/migration/engine.js';
import { startDaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { longestGap, SerialClock } from '../../src/testbed/serial-clock.js';
import { report } from '../support/report.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('e2e-blackout');

describe('the blackout of a busy guest, through the daemons', { timeout: 300_000 }, () => {
  it('is reported with its parts, and the guest is silent for that long as the hosts see it', async () => {
    const pair = await startDaemonPair({ dir: scope().dir, bufferSize: 256 * MiB, linkRate: '100mbit' });
    try {
      const disk = scope().path('b1.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', disk, '128M');
      const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', guestVmBody('b1', disk, { diskRateMiB: 2, diskSpanMiB: 32, dirtyRateMiB: 8, verifyEvery: 3 }, 256));
      await waitForSerial(vm.serialLog, (r) => r.verifications.length > 0, 'a verification on the source', { timeoutMs: 120_000 });
      const clock = new SerialClock([vm.serialLog]);
      const began = Date.now();
      const op = await pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm: 'b1', target: 'dst' });
      const targetLog = join(pair.target.stateDir, 'vms', op.id, 'serial.log');
      clock.watch(targetLog);
      const done = (await pair.source.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${op.id}/wait`)).metadata;
      expect(done.phase, done.error).toBe('completed');
      await waitForSerial(targetLog, (r) => r.verifications.length >= 2, 'two verifications on the target', { timeoutMs: 90_000 });
      await clock.stop();

      const blackout = done.blackout;
      expect(blackout).toBeDefined();
      if (!blackout) return;
      const { mirrors, lastRamPass, handoff, cont } = blackout.parts;
      for (const part of [mirrors, lastRamPass, handoff, cont]) expect(part).toBeGreaterThanOrEqual(0);
      expect(mirrors + lastRamPass + handoff + cont).toBeCloseTo(blackout.ms, 0);
      expect(blackout.qemuDowntimeMs).toBeGreaterThan(0);
      expect(Date.parse(blackout.resumedAt) - Date.parse(blackout.stoppedAt)).toBeCloseTo(blackout.ms, -1);

      // The guest's last tick on the source and its first on the target bracket the longest
      // silence, which must contain the blackout and exceed it by no more than the guest's
      // tick period (100 ms), the clock's read period (20 ms) and scheduling on a TCG guest.
      const gap = longestGap(clock.lines(/^TICK /), began);
      expect(gap).toBeDefined();
      if (!gap) return;
      expect({ before: gap.before.file, after: gap.after.file }).toEqual({ before: vm.serialLog, after: targetLog });
      expect(gap.ms).toBeGreaterThanOrEqual(blackout.ms - 40);
      expect(gap.ms).toBeLessThanOrEqual(blackout.ms + 700);

      await report('blackout', { blackoutMs: blackout.ms, parts: blackout.parts, qemuDowntimeMs: blackout.qemuDowntimeMs, tickGapMs: gap.ms });
      const onTarget = await readSerial(targetLog);
      expect(onTarget.verifications.every((v) => v.lost === 0)).toBe(true);
      expect(onTarget.ioErrors).toEqual([]);

      let shown = '';
      const code = await main(['node', 'cowbuf', '--socket', join(pair.source.stateDir, 'unix.socket'), 'show', op.id, '--format', 'table'], { stdout: (t) => (shown += t), stderr: () => undefined });
      expect(code).toBe(0);
      expect(shown).toMatch(new RegExp(`^ {2}blackout ${Math.round(blackout.ms)} ms \\(mirrors \\d+, last RAM pass \\d+, handoff \\d+, cont \\d+; QEMU downtime \\d+ ms\\)$`, 'm'));
      expect(await readFile(pair.source.logFile, 'utf8')).toContain(`migration completed: blackout ${Math.round(blackout.ms)} ms`);
    } finally {
      await pair.close();
    }
  });
});
