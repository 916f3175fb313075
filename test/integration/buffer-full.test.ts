import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createOverlay } from '../../src/storage/overlays.js';
import { ZfsVolume } from '../../src/storage/zfs/driver-zfs.js';
import { readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { report } from '../support/report.js';
import { DISK, useScope, qemuImg } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('full');

describe('a full buffer pauses the guest instead of failing its writes', { timeout: 120_000 }, () => {
  it('stops the VM on EDQUOT (werror=stop), and after a resize `cont` resumes it with every write intact', async () => {
    const pool = await scope().pool(512 * MiB);
    const volume = new ZfsVolume({ pool: pool.name, mountpoint: join(scope().dir, 'buffer') });
    await volume.create(8 * MiB);
    const base = scope().path('base.qcow2');
    await qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
    const vm = await scope().bootGuest('full', base, { diskRateMiB: 2, diskSpanMiB: 32, dirtyRateMiB: 0, verifyEvery: 4 });
    const overlay = await createOverlay(volume.mountpoint, 'full-disk0', { path: base, format: 'qcow2', virtualSize: 64 * MiB });
    const events = vm.qmp.listen('STOP', 'BLOCK_IO_ERROR', 'RESUME');
    await vm.commands.blockdevAdd({ driver: 'qcow2', 'node-name': 'overlay0', file: { driver: 'file', filename: overlay }, backing: null });
    await vm.commands.blockdevSnapshot(DISK.nodeName, 'overlay0');

    const ioError = await events.waitFor((e) => e.event === 'BLOCK_IO_ERROR', { timeoutMs: 60_000 });
    expect(ioError.data).toMatchObject({ action: 'stop', nospace: false, operation: 'write' });
    await events.waitFor((e) => e.event === 'STOP', { timeoutMs: 10_000 });
    expect(await vm.commands.queryStatus()).toMatchObject({ status: 'io-error', running: false });
    const paused = await readSerial(vm.spec.serialLog);
    expect(paused.ioErrors).toEqual([]);

    await volume.resize(64 * MiB);
    await vm.commands.cont();
    const resumed = await waitForSerial(vm.spec.serialLog, (r) => r.verifications.length > paused.verifications.length + 1, 'two verifications after resuming');
    expect(resumed.verifications.every((v) => v.lost === 0)).toBe(true);
    expect(resumed.ioErrors).toEqual([]);
    expect(resumed.heartbeats.at(-1)?.seq).toBeGreaterThan(paused.heartbeats.at(-1)?.seq ?? 0);
    await report('buffer-full', { bufferMiB: 8, event: ioError.data, guestIoErrors: resumed.ioErrors.length, verificationsAfterResume: resumed.verifications.length - paused.verifications.length });
  });
});
