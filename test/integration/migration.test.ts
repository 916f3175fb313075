import { copyFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { QmpCommandError } from '../../src/qmp/errors.js';
import { guestVm, readSerial, waitForSerial, type GuestWorkload } from '../../src/testbed/guest.js';
import { report } from '../support/report.js';
import { DISK, useScope, qemuImg, putOverlay } from '../support/testbed.js';

const scope = useScope('migration');

const workload: GuestWorkload = { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 4, verifyEvery: 3 };

describe('local storage + RAM migration between two namespaced hosts', { timeout: 180_000 }, () => {
  it('mirrors the overlay over NBD, switches over, and the guest keeps writing on the target with no write lost', async () => {
    const hosts = await scope().twoHosts();
    await hosts.shape('200mbit');
    const base = scope().path('base.qcow2');
    const overlay = scope().path('overlay.qcow2');
    const target = scope().path('target.qcow2');
    await qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
    const src = await scope().bootGuest('src', base, workload, { netns: hosts.src.ns });

    // 1. From now on every guest write lands in the overlay; the base is frozen.
    await putOverlay(src, base, overlay);
    await sleep(2000);

    // 2. Ship the frozen base (the daemons will stream it; a copy stands in here).
    await copyFile(base, target);

    // 3. Target: paused, waiting for RAM, its disk exported writable over NBD.
    const dst = await scope().launch(guestVm({ name: 'dst', dir: scope().dir, disk: { file: target, format: 'qcow2' }, workload, incoming: true, netns: hosts.dst.ns }));
    await dst.commands.nbdServerStart({ type: 'inet', data: { host: hosts.dst.ip, port: '10809' } });
    await dst.commands.blockExportAdd({ id: 'exp0', nodeName: DISK.nodeName, name: 'vdisk0', writable: true });

    // 4. Mirror the overlay (sync=top) onto the export, write-blocking so it converges.
    await src.commands.blockdevAdd({ driver: 'nbd', 'node-name': 'nbd0', server: { type: 'inet', host: hosts.dst.ip, port: '10809' }, export: 'vdisk0' });
    const jobs = src.qmp.listen('BLOCK_JOB_READY', 'BLOCK_JOB_COMPLETED', 'BLOCK_JOB_ERROR');
    const mirrorStarted = Date.now();
    await src.commands.blockdevMirror({ jobId: 'm0', device: 'overlay0', target: 'nbd0', sync: 'top', copyMode: 'write-blocking' });
    await jobs.waitFor((e) => e.event === 'BLOCK_JOB_READY', { timeoutMs: 60_000 });
    const mirrorReadySeconds = (Date.now() - mirrorStarted) / 1000;

    // 5. RAM, pausing before switchover so the mirror can be finished while the guest is stopped.
    await src.commands.migrateSetCapabilities({ events: true, 'pause-before-switchover': true });
    await src.commands.migrateSetParameters({ 'max-bandwidth': 1024 ** 3 });
    await dst.commands.migrateIncoming(`tcp:${hosts.dst.ip}:4444`);
    const migration = src.qmp.listen('MIGRATION');
    await src.commands.migrate(`tcp:${hosts.dst.ip}:4444`);
    const paused = await migration.waitFor((e) => ['pre-switchover', 'failed', 'cancelled'].includes(String(e.data.status)), { timeoutMs: 120_000 });
    expect(paused.data.status).toBe('pre-switchover');
    await src.commands.blockJobCancel('m0');
    await jobs.waitFor((e) => e.event === 'BLOCK_JOB_COMPLETED', { timeoutMs: 60_000 });
    await src.commands.jobDismiss('m0');
    await src.commands.migrateContinue('pre-switchover');
    const done = await migration.waitFor((e) => ['completed', 'failed', 'cancelled'].includes(String(e.data.status)), { timeoutMs: 60_000 });
    expect(done.data.status).toBe('completed');
    const info = await src.commands.queryMigrate();

    // 6. Tear the NBD path down: client first, then the export (it may still be busy once).
    await src.commands.blockdevDel('nbd0');
    for (let attempt = 0; ; attempt += 1) {
      try {
        await dst.commands.blockExportDel('exp0');
        break;
      } catch (error) {
        if (!(error instanceof QmpCommandError) || attempt >= 50) throw error;
        await sleep(100);
      }
    }
    await dst.commands.nbdServerStop();

    // 7. Before the target runs: its disk equals the source's whole chain, byte for byte.
    expect(await qemuImg('compare', '-U', overlay, target)).toContain('Images are identical');

    // 8. The guest runs on, on the target: heartbeats continue and its own read-back finds every write.
    const lastOnSource = (await readSerial(src.spec.serialLog)).heartbeats.at(-1)?.n ?? 0;
    await dst.commands.cont();
    const onTarget = await waitForSerial(dst.spec.serialLog, (r) => r.verifications.length >= 2, 'two verifications on the target', { timeoutMs: 90_000 });
    expect(onTarget.heartbeats[0]?.n).toBeGreaterThan(lastOnSource - 2);
    expect(onTarget.verifications.every((v) => v.lost === 0 && v.blocks > 0)).toBe(true);
    expect(onTarget.ioErrors).toEqual([]);
    expect((await readSerial(src.spec.serialLog)).ioErrors).toEqual([]);
    expect((await src.commands.queryStatus()).status).toBe('postmigrate');
    expect((await dst.commands.queryStatus()).status).toBe('running');
    await report('migration', {
      link: '200mbit',
      mirrorReadySeconds,
      migrationTotalMs: info['total-time'],
      downtimeMs: info.downtime,
      ramTransferredMiB: Math.round((info.ram?.transferred ?? 0) / 2 ** 20),
      heartbeatsOnTarget: onTarget.heartbeats.length,
      verificationsOnTarget: onTarget.verifications.length,
    });
  });
});
