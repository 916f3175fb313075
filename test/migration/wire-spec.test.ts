import { createHash } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { incomingSpec, VARS_FILE, wireVm } from '../../src/migration/wire-spec.js';
import { parseRequest } from '../../src/peer/protocol.js';
import type { VmSpec } from '../../src/vm/spec.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir('wire-spec');

describe('the device model across `prepare`', () => {
  it('rebuilds on the target the VM the source runs: same devices, its own paths, the same variable store', async () => {
    const source = join(dir(), 'source');
    const target = join(dir(), 'target');
    await mkdir(source);
    await mkdir(target);
    const vars = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));
    const iso = Buffer.alloc(10_000, 3);
    await writeFile(join(source, 'OVMF_CODE.fd'), Buffer.alloc(8192));
    await writeFile(join(source, 'vars.fd'), vars);
    await writeFile(join(source, 'install.iso'), iso);
    const spec: VmSpec = {
      name: 'web1',
      memoryMiB: 2048,
      vcpus: 4,
      machine: 'pc-q35-7.2',
      cpu: { model: 'Skylake-Server-v4', sockets: 1, cores: 2, threads: 2 },
      firmware: { code: join(source, 'OVMF_CODE.fd'), vars: join(source, 'vars.fd') },
      append: 'console=ttyS0',
      disks: [
        { id: 'vdisk0', nodeName: 'disk0', file: join(source, 'root.qcow2'), format: 'qcow2', werror: 'stop', cache: 'none', aio: 'native', discard: 'unmap' },
        { id: 'sdisk1', nodeName: 'disk1', file: join(source, 'data.raw'), format: 'raw', werror: 'stop', bus: 'virtio-scsi' },
      ],
      cdroms: [{ id: 'cd0', file: join(source, 'install.iso'), bus: 'virtio-scsi' }],
      nics: [{ id: 'net0', mac: '52:54:00:12:34:56', bridge: 'br0' }],
      qmpSocket: join(source, 'qmp.sock'),
      serialLog: join(source, 'serial.log'),
    };
    const sizes = new Map([
      ['disk0', 1 << 30],
      ['disk1', 1 << 20],
    ]);

    const wire = await wireVm(spec, 'kvm', sizes, new Map());
    expect(wire.cdroms).toEqual([{ id: 'cd0', file: join(source, 'install.iso'), bus: 'virtio-scsi', size: iso.length, sha256: createHash('sha256').update(iso).digest('hex') }]);
    expect(wire.firmware).toEqual({ code: join(source, 'OVMF_CODE.fd'), codeSize: 8192, varsBase64: vars.toString('base64') });
    const request = parseRequest(JSON.parse(JSON.stringify({ id: 1, method: 'prepare', migration: 'm1', vm: wire })));
    if (request.method !== 'prepare') throw new Error('not a prepare');
    expect(request.vm).toEqual(wire);

    const rebuilt = await incomingSpec(request.vm, target, (disk) => join(target, `${disk}.img`));
    expect(rebuilt).toEqual({
      ...spec,
      firmware: { code: spec.firmware?.code, vars: join(target, VARS_FILE) },
      disks: spec.disks.map((disk) => ({ ...disk, file: join(target, `${disk.id}.img`) })),
      qmpSocket: join(target, 'qmp.sock'),
      serialLog: join(target, 'serial.log'),
      incoming: true,
    });
    expect(await readFile(join(target, VARS_FILE))).toEqual(vars);
    expect((await stat(join(target, VARS_FILE))).mode & 0o777).toBe(0o600);
  });

  it('keeps a definition without a device model as it was (an older source)', async () => {
    const spec: VmSpec = { name: 'old', memoryMiB: 256, vcpus: 1, kernel: '/k', disks: [{ id: 'vdisk0', nodeName: 'disk0', file: '/d/a.qcow2', format: 'qcow2' }], qmpSocket: '/q', serialLog: '/s' };
    expect(await wireVm(spec, 'tcg', new Map([['disk0', 64]]), new Map())).toEqual({ name: 'old', memoryMiB: 256, vcpus: 1, kernel: '/k', accel: 'tcg', disks: [{ id: 'vdisk0', nodeName: 'disk0', format: 'qcow2', virtualSize: 64 }] });
  });
});
