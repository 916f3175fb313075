import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ApiError } from '../../src/cli/client.js';
import { run } from '../../src/exec/run.js';
import type { MigrationRecord } from '../../src/migration/engine.js';
import { startDaemonPair, type DaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { QEMU_BINARY } from '../../src/vm/launcher.js';
import { qemuCatalog } from '../../src/vm/qemu-catalog.js';
import { otherQemuBinary, qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('impossible-target');

async function refusedWith(pair: DaemonPair, vm: string): Promise<MigrationRecord> {
  const started = await pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm, target: 'dst' });
  const record = (await pair.source.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${started.id}/wait`)).metadata;
  expect(record.phase).toBe('failed');
  // Refused at `prepare`: no byte of a base crossed.
  expect(record.progress.baseSent).toBe(0);
  return record;
}

describe('definitions and targets that cannot be, over the real API', { timeout: 300_000 }, () => {
  it('refuses bad definitions naming the field, and migrations the target cannot host before anything moves', async () => {
    const pair = await startDaemonPair({ dir: scope().dir, bufferSize: 128 * MiB, linkRate: '200mbit' });
    try {
      const disk = scope().path('g1.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
      // A cdrom is never shipped: the target must hold the same image at the same path.
      const cdroms = scope().path('cdroms');
      await mkdir(cdroms);
      const [image, another] = [join(cdroms, 'cd.iso'), scope().path('another.iso')];
      await writeFile(image, randomBytes(MiB));
      await writeFile(another, randomBytes(MiB));
      const body = { ...guestVmBody('g1', disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 1, verifyEvery: 3 }, 128), cdroms: [{ id: 'cd0', file: image }] };
      const refused = (extra: Record<string, unknown>) => pair.source.api.call('POST', '/1.0/vms', { ...body, ...extra }).then(() => 'accepted', (error: ApiError) => `${error.status} ${error.message}`);
      expect(await refused({ machine: 'q35' })).toMatch(/^400 .*`machine`.*q35/);
      expect(await refused({ nics: [{ id: 'net0', mac: '01:00:5e:00:00:01', bridge: 'br0' }] })).toMatch(/^400 .*`nics\[0\]\.mac`/);
      expect(await refused({ cpu: { model: 'qemu64', sockets: 2 }, vcpus: 3 })).toMatch(/^400 .*vcpus/);

      // A bridge only the source has: the guest's network could not follow it.
      await run('ip', ['link', 'add', 'brx', 'type', 'bridge'], { netns: pair.hosts.src.ns });
      await pair.source.api.call('POST', '/1.0/vms', { ...body, nics: [{ id: 'net0', mac: '52:54:00:12:34:77', bridge: 'brx' }] });
      await waitForSerial(scope().path('source/vms/g1/serial.log'), (r) => r.heartbeats.length > 1, 'heartbeats on the source');
      expect((await refusedWith(pair, 'g1')).error).toMatch(/bridge brx .*no such bridge on this host/);

      // A target whose admin pinned the other accelerator: QEMU cannot load TCG's CPU state into KVM.
      await run('ip', ['link', 'add', 'brx', 'type', 'bridge'], { netns: pair.hosts.dst.ns });
      await pair.kill('target');
      await pair.restart('target', { accel: 'kvm' });
      expect((await refusedWith(pair, 'g1')).error).toMatch(/accelerator: the guest runs under TCG on the source and would run under KVM here/);

      // A target that lacks the cdrom image, then one that holds another image at its path (each
      // daemon in a mount namespace of its own, over the same filesystem as the source).
      await pair.kill('target');
      await pair.restart('target', {}, [{ target: cdroms }]);
      expect((await refusedWith(pair, 'g1')).error).toMatch(new RegExp(`cdrom cd0 ${image}: missing on this host`));
      await pair.kill('target');
      await pair.restart('target', {}, [{ target: image, source: another }]);
      expect((await refusedWith(pair, 'g1')).error).toMatch(new RegExp(`cdrom cd0 ${image}: differs from the source's \\(sha256 [0-9a-f]{12}… here, [0-9a-f]{12}… there`));
      await pair.kill('target');

      // A target running another QEMU (the other version's binary over its own, in its mount
      // namespace): a machine type only the source's QEMU knows (7.2's oldest i440fx types are
      // gone from 10.0; 10.0's newest are unknown to 7.2).
      const otherQemu = await otherQemuBinary();
      const [here, there] = await Promise.all([qemuCatalog(QEMU_BINARY), qemuCatalog(otherQemu)]);
      const onlyHere = [...here.machines].filter((machine) => /\d+\.\d+$/.test(machine) && !there.machines.has(machine)).sort();
      const machine = onlyHere.findLast((name) => name.startsWith('pc-q35-')) ?? onlyHere.at(-1);
      expect(machine, `a machine type ${QEMU_BINARY} knows and ${otherQemu} does not`).toBeDefined();
      const oldDisk = scope().path('g2.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', oldDisk, '64M');
      await pair.source.api.call('POST', '/1.0/vms', { ...guestVmBody('g2', oldDisk, { diskRateMiB: 0, diskSpanMiB: 8, dirtyRateMiB: 0, verifyEvery: 0 }, 64), machine });
      await pair.restart('target', {}, [{ target: '/usr/bin/qemu-system-x86_64', source: otherQemu }]);
      expect((await refusedWith(pair, 'g2')).error).toMatch(new RegExp(`machine type ${String(machine).replaceAll('.', '\\.')}: this host's QEMU does not know it`));
      await pair.kill('target');
      await pair.restart('target');

      // A VM of the same name on the target: an arrival must never overwrite it.
      const other = scope().path('other.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', other, '64M');
      await pair.target.api.call('POST', '/1.0/vms', guestVmBody('g1', other, { diskRateMiB: 0, diskSpanMiB: 8, dirtyRateMiB: 0, verifyEvery: 0 }, 64));
      expect((await refusedWith(pair, 'g1')).error).toMatch(/g1.*(already|taken|name)/i);

      // Whatever was refused, the guest writes on at the source.
      const serial = await waitForSerial(scope().path('source/vms/g1/serial.log'), (r) => r.verifications.length >= 2, 'two verifications at the source', { timeoutMs: 60_000 });
      expect(serial.verifications.every((v) => v.lost === 0)).toBe(true);
      expect((await readSerial(scope().path('source/vms/g1/serial.log'))).ioErrors).toEqual([]);
    } finally {
      await pair.close();
    }
  });
});
