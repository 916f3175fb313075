import { describe, expect, it } from 'vitest';
import { parseVmBody } from '../../src/daemon/api.js';
import { ValidationError } from '../../src/errors.js';

const body = (over: Record<string, unknown> = {}) => ({ name: 'web1', memoryMiB: 1024, disks: [{ id: 'vdisk0', file: '/d/root.qcow2' }], ...over });
const nic = (over: Record<string, unknown> = {}) => ({ id: 'net0', mac: '52:54:00:12:34:56', bridge: 'br0', ...over });

describe('the body of POST /1.0/vms', () => {
  it('takes a real guest: machine, CPU topology (vcpus follow it), firmware, both buses, a cdrom, a NIC', () => {
    const spec = parseVmBody(
      body({
        machine: 'pc-q35-7.2',
        cpu: { model: 'Skylake-Server-v4', sockets: 2, cores: 2 },
        firmware: { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/srv/vms/web1/vars.fd' },
        disks: [
          { id: 'vdisk0', file: '/d/root.qcow2', cache: 'none', aio: 'native', discard: 'unmap' },
          { id: 'sdisk1', file: '/d/data.raw', format: 'raw', bus: 'virtio-scsi' },
        ],
        cdroms: [{ id: 'cd0', file: '/iso/install.iso' }],
        nics: [nic({ mac: '52:54:00:AB:CD:EF' })],
      }),
      '/var/lib/cowbuf',
    );
    expect(spec).toEqual({
      name: 'web1',
      memoryMiB: 1024,
      vcpus: 4,
      machine: 'pc-q35-7.2',
      cpu: { model: 'Skylake-Server-v4', sockets: 2, cores: 2 },
      firmware: { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/srv/vms/web1/vars.fd' },
      disks: [
        { id: 'vdisk0', nodeName: 'disk0', file: '/d/root.qcow2', format: 'qcow2', werror: 'stop', cache: 'none', aio: 'native', discard: 'unmap' },
        { id: 'sdisk1', nodeName: 'disk1', file: '/d/data.raw', format: 'raw', werror: 'stop', bus: 'virtio-scsi' },
      ],
      cdroms: [{ id: 'cd0', file: '/iso/install.iso', bus: 'ide' }],
      nics: [{ id: 'net0', mac: '52:54:00:ab:cd:ef', bridge: 'br0' }],
      qmpSocket: '/var/lib/cowbuf/vms/web1/qmp.sock',
      serialLog: '/var/lib/cowbuf/vms/web1/serial.log',
    });
  });

  it('still takes an old definition as it was', () => {
    expect(parseVmBody(body(), '/s')).toEqual({ name: 'web1', memoryMiB: 1024, vcpus: 1, disks: [{ id: 'vdisk0', nodeName: 'disk0', file: '/d/root.qcow2', format: 'qcow2', werror: 'stop' }], qmpSocket: '/s/vms/web1/qmp.sock', serialLog: '/s/vms/web1/serial.log' });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['an unversioned machine alias', { machine: 'q35' }, 'Expected `machine` to be a versioned machine type such as `pc-q35-7.2` or `pc-i440fx-7.2` (an alias such as `q35` or `pc` stands for the newest type'],
    ['the default machine alias', { machine: 'pc' }, 'Expected `machine` to be a versioned machine type'],
    ['vcpus that are not the topology', { vcpus: 3, cpu: { model: 'qemu64', cores: 2 } }, 'Expected `vcpus` to be sockets × cores × threads of `cpu` (1 × 2 × 1 = 2; one left out counts as 1), got `3`'],
    ['a CPU without a model', { cpu: { cores: 2 } }, 'Expected `cpu.model` to be present (required field)'],
    ['a multicast MAC', { nics: [nic({ mac: '01:00:5e:00:00:01' })] }, 'Expected `nics[0].mac` to be a unicast MAC address'],
    ['a malformed MAC', { nics: [nic({ mac: '52-54-00-12-34-56' })] }, 'Expected `nics[0].mac` to be a MAC address of six hex octets such as `52:54:00:12:34:56`, got `52-54-00-12-34-56`'],
    ['two NICs of one id', { nics: [nic(), nic({ mac: '52:54:00:12:34:57' })] }, 'Expected `nics[1].id` to be an id not already used (`nics[0].id` has it), got `net0`'],
    ['two disks of one id', { disks: [{ id: 'vdisk0', file: '/d/a' }, { id: 'vdisk0', file: '/d/b' }] }, 'Expected `disks[1].id` to be an id not already used (`disks[0].id` has it), got `vdisk0`'],
    ['a bus no disk can be on', { disks: [{ id: 'vdisk0', file: '/d/a', bus: 'ide' }] }, 'Expected `disks[0].bus` to be one of virtio-blk, virtio-scsi, got `ide`'],
    ['a cdrom bus QEMU has no cdrom for', { cdroms: [{ id: 'cd0', file: '/iso', bus: 'sata' }] }, 'Expected `cdroms[0].bus` to be one of ide, virtio-scsi, got `sata`'],
    ['a relative cdrom', { cdroms: [{ id: 'cd0', file: 'install.iso' }] }, 'Expected `cdroms[0].file` to be an absolute path, got `install.iso`'],
    ['a writable cdrom', { cdroms: [{ id: 'cd0', file: '/iso', readOnly: false }] }, 'Expected `cdroms[0].readOnly` to be absent (unknown field; known: id, file, bus)'],
    ['a read-only disk (a cdrom is the read-only image)', { disks: [{ id: 'vdisk0', file: '/d/a', readOnly: true }] }, 'Expected `disks[0].readOnly` to be absent (unknown field'],
    ['relative firmware', { firmware: { code: '/c.fd', vars: 'vars.fd' } }, 'Expected `firmware.vars` to be an absolute path, got `vars.fd`'],
    ['firmware without its variable store', { firmware: { code: '/c.fd' } }, 'Expected `firmware.vars` to be present (required field)'],
    ['a bridge name no interface can have', { nics: [nic({ bridge: 'br0 br1' })] }, 'Expected `nics[0].bridge` to be an interface name of at most 15'],
    ['native AIO over the page cache', { disks: [{ id: 'vdisk0', file: '/d/a', aio: 'native' }] }, 'Expected `disks[0].aio` to be `threads` or `io_uring` unless `cache` is `none` or `directsync`'],
    ['a cache mode QEMU does not have', { disks: [{ id: 'vdisk0', file: '/d/a', cache: 'fast' }] }, 'Expected `disks[0].cache` to be one of none, writeback, writethrough, directsync, unsafe, got `fast`'],
  ])('refuses %s, naming the field and the value', (_what, over, message) => {
    expect(() => parseVmBody(body(over), '/s')).toThrow(ValidationError);
    expect(() => parseVmBody(body(over), '/s')).toThrow(message);
  });
});
