import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { checkMac, checkMachine, checkVmSpec } from '../../src/vm/check.js';
import type { DiskSpec, NicSpec, VmSpec } from '../../src/vm/spec.js';

const disk = (over: Partial<DiskSpec> = {}): DiskSpec => ({ id: 'vdisk0', nodeName: 'disk0', file: '/d/root.qcow2', format: 'qcow2', ...over });
const nic = (over: Partial<NicSpec> = {}): NicSpec => ({ id: 'net0', mac: '52:54:00:12:34:56', bridge: 'br0', ...over });
const spec = (over: Partial<VmSpec> = {}): VmSpec => ({ name: 'vm1', memoryMiB: 256, vcpus: 1, disks: [disk()], qmpSocket: '/run/q', serialLog: '/run/s', ...over });

describe('checkVmSpec', () => {
  it('accepts a definition of every kind of device', () => {
    const real = spec({
      machine: 'pc-q35-7.2',
      vcpus: 8,
      cpu: { model: 'host', sockets: 2, cores: 2, threads: 2 },
      firmware: { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/var/lib/vm1/vars.fd' },
      disks: [disk({ cache: 'none', aio: 'native' }), disk({ id: 'sdisk1', nodeName: 'disk1', file: '/d/data.raw', bus: 'virtio-scsi', aio: 'io_uring' })],
      cdroms: [{ id: 'cd0', file: '/iso/a.iso', bus: 'ide' }],
      nics: [nic(), nic({ id: 'net1', mac: '52:54:00:12:34:57', tap: 'tap1' })],
    });
    expect(checkVmSpec(real)).toBe(real);
  });

  it.each<[string, VmSpec, string, string]>([
    ['an alias machine type', spec({ machine: 'q35' }), 'vm.machine', 'an alias such as `q35` or `pc` stands for the newest type of each host'],
    ['the pc alias', spec({ machine: 'pc' }), 'vm.machine', 'a versioned machine type'],
    ['an unversioned machine type', spec({ machine: 'microvm' }), 'vm.machine', 'a versioned machine type'],
    ['a CPU model with a space', spec({ cpu: { model: 'Sky lake' } }), 'vm.cpu.model', 'a CPU model as `qemu-system-x86_64 -cpu help` names it'],
    ['vcpus other than the topology', spec({ vcpus: 3, cpu: { model: 'qemu64', cores: 2 } }), 'vm.vcpus', 'sockets × cores × threads of `cpu` (1 × 2 × 1 = 2; one left out counts as 1), got `3`'],
    ['no cores', spec({ cpu: { model: 'qemu64', cores: 0 } }), 'vm.cpu.cores', 'an integer ≥ 1 and ≤ 1024'],
    ['two disks of one id', spec({ disks: [disk(), disk({ nodeName: 'disk1', file: '/d/b' })] }), 'vm.disks[1].id', 'an id not already used (`vm.disks[0].id` has it), got `vdisk0`'],
    ['a NIC with a disk id', spec({ nics: [nic({ id: 'vdisk0' })] }), 'vm.nics[0].id', 'an id not already used (`vm.disks[0].id` has it)'],
    ['a cdrom with a disk id', spec({ cdroms: [{ id: 'vdisk0', file: '/iso', bus: 'ide' }] }), 'vm.cdroms[0].id', 'an id not already used'],
    ['two disks of one node name', spec({ disks: [disk(), disk({ id: 'vdisk1', file: '/d/b' })] }), 'vm.disks[1].nodeName', 'a node name not already used'],
    ['a node name QEMU cannot hold with its `-file` child', spec({ disks: [disk({ nodeName: 'a'.repeat(27) })] }), 'vm.disks[0].nodeName', '(at most 26)'],
    ['an id QEMU refuses (a digit first)', spec({ disks: [disk({ id: '0disk' })] }), 'vm.disks[0].id', 'an id of a letter then letters'],
    ["an id in cowbuf's own namespace", spec({ disks: [disk({ nodeName: 'cowbuf-ovl0' })] }), 'vm.disks[0].nodeName', 'an id not starting with `cowbuf-`'],
    ['two disks on one file', spec({ disks: [disk(), disk({ id: 'vdisk1', nodeName: 'disk1' })] }), 'vm.disks[1].file', 'a file not already used'],
    ['a disk on the variable store', spec({ firmware: { code: '/c.fd', vars: '/d/root.qcow2' } }), 'vm.disks[0].file', 'a file not already used (`vm.firmware.vars` has it)'],
    ['native AIO without O_DIRECT', spec({ disks: [disk({ aio: 'native', cache: 'writeback' })] }), 'vm.disks[0].aio', '`threads` or `io_uring` unless `cache` is `none` or `directsync`'],
    ['a multicast MAC', spec({ nics: [nic({ mac: '01:00:5e:00:00:01' })] }), 'vm.nics[0].mac', 'a unicast MAC address'],
    ['a malformed MAC', spec({ nics: [nic({ mac: '52:54:00:12:34' })] }), 'vm.nics[0].mac', 'a MAC address of six hex octets'],
    ['the zero MAC', spec({ nics: [nic({ mac: '00:00:00:00:00:00' })] }), 'vm.nics[0].mac', 'other than all zeros'],
    ['two NICs of one MAC', spec({ nics: [nic(), nic({ id: 'net1', mac: '52:54:00:12:34:56'.toUpperCase() })] }), 'vm.nics[1].mac', 'a MAC address not already used (`vm.nics[0].mac` has it)'],
    ['a bridge name longer than an interface name', spec({ nics: [nic({ bridge: 'bridge-of-sixteen' })] }), 'vm.nics[0].bridge', 'an interface name of at most 15'],
    ['two NICs on one tap', spec({ nics: [nic({ tap: 't0' }), nic({ id: 'net1', mac: '52:54:00:00:00:01', tap: 't0' })] }), 'vm.nics[1].tap', 'a tap interface not already used'],
    ['a relative cdrom', spec({ cdroms: [{ id: 'cd0', file: 'install.iso', bus: 'ide' }] }), 'vm.cdroms[0].file', 'an absolute path'],
    ['a relative kernel', spec({ kernel: 'vmlinuz' }), 'vm.kernel', 'an absolute path'],
    ['relative firmware', spec({ firmware: { code: 'OVMF_CODE.fd', vars: '/v.fd' } }), 'vm.firmware.code', 'an absolute path'],
  ])('refuses %s, naming the field', (_what, bad, field, expected) => {
    expect(() => checkVmSpec(bad)).toThrow(ValidationError);
    expect(() => checkVmSpec(bad)).toThrow(`Expected \`${field}\` to be `);
    expect(() => checkVmSpec(bad)).toThrow(expected);
  });

  it('names the fields of an API body without a prefix', () => {
    expect(() => checkVmSpec(spec({ machine: 'q35' }), '')).toThrow('Expected `machine` to be a versioned machine type');
    expect(() => checkVmSpec(spec({ nics: [nic({ mac: 'ff:ff:ff:ff:ff:ff' })] }), '')).toThrow('Expected `nics[0].mac` to be a unicast MAC address');
  });
});

describe('the field checks', () => {
  it.each(['pc-q35-7.2', 'pc-i440fx-10.0', 'pc-q35-rhel9.2.0', 'pc-i440fx-2.12'])('takes the versioned machine type %s', (machine) => {
    expect(checkMachine('machine', machine)).toBe(machine);
  });

  it('gives a MAC in lower case', () => {
    expect(checkMac('mac', '52:54:00:AB:CD:EF')).toBe('52:54:00:ab:cd:ef');
  });
});
