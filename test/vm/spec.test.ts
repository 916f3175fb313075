import { describe, expect, it } from 'vitest';
import { detectAccel } from '../../src/vm/accel.js';
import { qemuArgv, tapName, throttleTarget, type VmSpec } from '../../src/vm/spec.js';
import { ValidationError } from '../../src/errors.js';

const spec: VmSpec = {
  name: 'vm1',
  memoryMiB: 256,
  vcpus: 1,
  kernel: '/k',
  append: 'console=ttyS0',
  disks: [{ id: 'vdisk0', nodeName: 'disk0', file: '/var/lib/a,b.qcow2', format: 'qcow2' }],
  qmpSocket: '/run/vm1.qmp',
  serialLog: '/run/vm1.serial',
};

describe('qemuArgv', () => {
  it('builds the block graph with werror=stop by default and escapes commas in paths', () => {
    expect(qemuArgv(spec, 'tcg')).toEqual([
      '-name', 'vm1', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-m', '256', '-smp', '1',
      '-kernel', '/k', '-append', 'console=ttyS0',
      '-blockdev', 'driver=file,filename=/var/lib/a,,b.qcow2,node-name=disk0-file',
      '-blockdev', 'driver=qcow2,file=disk0-file,node-name=disk0',
      '-device', 'virtio-blk-pci,drive=disk0,id=vdisk0,werror=stop',
      '-serial', 'file:/run/vm1.serial', '-qmp', 'unix:/run/vm1.qmp,server=on,wait=off',
    ]);
  });

  it('starts a receiving VM paused and waiting for migrate-incoming', () => {
    expect(qemuArgv({ ...spec, incoming: true }, 'kvm').slice(-3)).toEqual(['-S', '-incoming', 'defer']);
  });

  it.each([
    [{ ...spec, name: '-evil' }, 'vm.name'],
    [{ ...spec, name: 'a b' }, 'vm.name'],
    [{ ...spec, memoryMiB: 0 }, 'vm.memoryMiB'],
    [{ ...spec, disks: [{ ...spec.disks[0], id: 'x;rm' } as VmSpec['disks'][0]] }, 'vm.disks[0].id'],
  ])('rejects %j naming %s', (bad, field) => {
    expect(() => qemuArgv(bad, 'tcg')).toThrow(ValidationError);
    expect(() => qemuArgv(bad, 'tcg')).toThrow(`Expected \`${field}\``);
  });

  it('builds the device model of a real guest: machine with flash, CPU topology, both buses, cache modes, cdroms, NICs', () => {
    const real: VmSpec = {
      ...spec,
      machine: 'pc-q35-7.2',
      vcpus: 4,
      cpu: { model: 'Skylake-Server-v4', sockets: 2, cores: 2 },
      firmware: { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/var/lib/vm1/OVMF_VARS.fd' },
      disks: [
        { id: 'vdisk0', nodeName: 'disk0', file: '/d/root.qcow2', format: 'qcow2', cache: 'none', aio: 'native', discard: 'unmap' },
        { id: 'sdisk1', nodeName: 'disk1', file: '/d/data.raw', format: 'raw', bus: 'virtio-scsi', werror: 'enospc', cache: 'writethrough' },
      ],
      cdroms: [
        { id: 'cd0', file: '/iso/install.iso', bus: 'ide' },
        { id: 'cd1', file: '/iso/drivers.iso', bus: 'virtio-scsi' },
      ],
      nics: [{ id: 'net0', mac: '52:54:00:12:34:56', bridge: 'br0', tap: 'tap-vm1' }],
    };
    expect(qemuArgv(real, 'kvm')).toEqual([
      '-name', 'vm1', '-accel', 'kvm', '-machine', 'type=pc-q35-7.2,pflash0=cowbuf-fw-code,pflash1=cowbuf-fw-vars',
      '-nodefaults', '-display', 'none', '-m', '256', '-smp', '4,sockets=2,cores=2,threads=1', '-cpu', 'Skylake-Server-v4',
      '-kernel', '/k', '-append', 'console=ttyS0',
      '-blockdev', 'driver=file,filename=/usr/share/OVMF/OVMF_CODE_4M.fd,node-name=cowbuf-fw-code-file,read-only=on',
      '-blockdev', 'driver=raw,file=cowbuf-fw-code-file,node-name=cowbuf-fw-code,read-only=on',
      '-blockdev', 'driver=file,filename=/var/lib/vm1/OVMF_VARS.fd,node-name=cowbuf-fw-vars-file',
      '-blockdev', 'driver=raw,file=cowbuf-fw-vars-file,node-name=cowbuf-fw-vars',
      '-device', 'virtio-scsi-pci,id=cowbuf-scsi',
      '-blockdev', 'driver=file,filename=/d/root.qcow2,node-name=disk0-file,aio=native,cache.direct=on,cache.no-flush=off,discard=unmap',
      '-blockdev', 'driver=qcow2,file=disk0-file,node-name=disk0,cache.direct=on,cache.no-flush=off,discard=unmap',
      '-device', 'virtio-blk-pci,drive=disk0,id=vdisk0,werror=stop,write-cache=on',
      '-blockdev', 'driver=file,filename=/d/data.raw,node-name=disk1-file,cache.direct=off,cache.no-flush=off',
      '-blockdev', 'driver=raw,file=disk1-file,node-name=disk1,cache.direct=off,cache.no-flush=off',
      '-device', 'scsi-hd,bus=cowbuf-scsi.0,drive=disk1,id=sdisk1,werror=enospc,write-cache=off',
      '-blockdev', 'driver=file,filename=/iso/install.iso,node-name=cowbuf-cd0-file,read-only=on',
      '-blockdev', 'driver=raw,file=cowbuf-cd0-file,node-name=cowbuf-cd0,read-only=on',
      '-device', 'ide-cd,drive=cowbuf-cd0,id=cd0',
      '-blockdev', 'driver=file,filename=/iso/drivers.iso,node-name=cowbuf-cd1-file,read-only=on',
      '-blockdev', 'driver=raw,file=cowbuf-cd1-file,node-name=cowbuf-cd1,read-only=on',
      '-device', 'scsi-cd,bus=cowbuf-scsi.0,drive=cowbuf-cd1,id=cd1',
      '-netdev', 'tap,id=netdev-net0,ifname=tap-vm1,script=no,downscript=no',
      '-device', 'virtio-net-pci,netdev=netdev-net0,mac=52:54:00:12:34:56,id=net0',
      '-serial', 'file:/run/vm1.serial', '-qmp', 'unix:/run/vm1.qmp,server=on,wait=off',
    ]);
  });

  it('adds no controller, machine or CPU option a definition does not ask for', () => {
    const argv = qemuArgv({ ...spec, firmware: { code: '/c.fd', vars: '/v.fd' } }, 'tcg');
    expect(argv.slice(4, 6)).toEqual(['-machine', 'pflash0=cowbuf-fw-code,pflash1=cowbuf-fw-vars']);
    expect(argv).not.toContain('-cpu');
    expect(argv.join(' ')).not.toContain('virtio-scsi-pci');
  });

  it('derives the throttle target from the bus: the virtio-blk backend, or the scsi-hd device itself', () => {
    expect(throttleTarget({ id: 'vdisk0' })).toBe('vdisk0/virtio-backend');
    expect(throttleTarget({ id: 'vdisk0', bus: 'virtio-blk' })).toBe('vdisk0/virtio-backend');
    expect(throttleTarget({ id: 'sdisk1', bus: 'virtio-scsi' })).toBe('sdisk1');
  });

  it('names a NIC tap the same on every host, within 15 bytes, unless the spec names it', () => {
    const derived = tapName('a-vm-name-of-sixty-four-characters-which-no-interface-name-holds', { id: 'net0' });
    expect(derived).toMatch(/^cb-[0-9a-f]{12}$/);
    expect(tapName('a-vm-name-of-sixty-four-characters-which-no-interface-name-holds', { id: 'net0' })).toBe(derived);
    expect(tapName('a-vm-name-of-sixty-four-characters-which-no-interface-name-holds', { id: 'net1' })).not.toBe(derived);
    expect(tapName('vm1', { id: 'net0', tap: 'tap7' })).toBe('tap7');
  });
});

describe('detectAccel', () => {
  it('honours COWBUF_ACCEL and rejects anything else', async () => {
    expect(await detectAccel({ COWBUF_ACCEL: 'tcg' })).toBe('tcg');
    await expect(detectAccel({ COWBUF_ACCEL: 'hvf' })).rejects.toThrow('Expected `COWBUF_ACCEL` to be `kvm` or `tcg`, got `hvf`');
  });
});
