import { describe, expect, it } from 'vitest';
import { detectAccel } from '../../src/vm/accel.js';
import { qemuArgv, throttleTarget, type VmSpec } from '../../src/vm/spec.js';
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

  it('names the throttle target by qdev path', () => {
    expect(throttleTarget({ id: 'vdisk0' })).toBe('vdisk0/virtio-backend');
  });
});

describe('detectAccel', () => {
  it('honours COWBUF_ACCEL and rejects anything else', async () => {
    expect(await detectAccel({ COWBUF_ACCEL: 'tcg' })).toBe('tcg');
    await expect(detectAccel({ COWBUF_ACCEL: 'hvf' })).rejects.toThrow('Expected `COWBUF_ACCEL` to be `kvm` or `tcg`, got `hvf`');
  });
});
