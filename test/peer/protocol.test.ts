import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { parseHello, parseRequest, parseResponse } from '../../src/peer/protocol.js';

const vm = { name: 'vm1', memoryMiB: 256, vcpus: 1, kernel: '/k', disks: [{ id: 'vdisk0', nodeName: 'disk0', format: 'qcow2', virtualSize: 67108864 }] };
/** The same VM with its whole device model, as a source of today sends it. */
const real = {
  ...vm,
  vcpus: 2,
  machine: 'pc-q35-7.2',
  cpu: { model: 'Skylake-Server-v4', cores: 2 },
  accel: 'kvm',
  firmware: { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', codeSize: 3653632, varsBase64: Buffer.alloc(8, 1).toString('base64') },
  disks: [...vm.disks, { id: 'sdisk1', nodeName: 'disk1', format: 'raw', virtualSize: 1024, bus: 'virtio-scsi', cache: 'none', aio: 'native', discard: 'unmap' }],
  cdroms: [{ id: 'cd0', file: '/iso/install.iso', bus: 'ide', size: 4096, sha256: 'b'.repeat(64) }],
  nics: [{ id: 'net0', mac: '52:54:00:12:34:56', bridge: 'br0' }],
};

describe('peer protocol validation', () => {
  it('accepts well-formed messages', () => {
    expect(parseHello({ type: 'hello', kind: 'stream', migration: 'm-1', stream: 'ram' })).toEqual({ type: 'hello', kind: 'stream', migration: 'm-1', stream: 'ram' });
    expect(parseHello({ type: 'hello', kind: 'dataset', migration: 'm-1', files: { d0: 'root.qcow2' } })).toEqual({ type: 'hello', kind: 'dataset', migration: 'm-1', files: { d0: 'root.qcow2' } });
    expect(parseRequest({ id: 3, method: 'prepare', migration: 'm1', vm }).method).toBe('prepare');
    expect(parseRequest({ id: 3, method: 'prepare', migration: 'm1', vm: real })).toEqual({ id: 3, method: 'prepare', migration: 'm1', vm: real });
    expect(parseRequest({ id: 4, method: 'headroom' })).toEqual({ id: 4, method: 'headroom' });
    expect(parseRequest({ id: 5, method: 'recover', migration: 'm1' })).toEqual({ id: 5, method: 'recover', migration: 'm1' });
    expect(parseResponse({ id: 3, ok: false, error: 'no' })).toEqual({ id: 3, ok: false, error: 'no' });
  });

  it.each([
    [{ type: 'hello', kind: 'stream', migration: '../etc', stream: 'ram' }, 'hello.migration'],
    [{ type: 'hello', kind: 'stream', migration: 'm', stream: 'disk' }, 'hello.stream'],
    [{ type: 'hello', kind: 'base', migration: 'm', disk: 'a/b', size: 1 }, 'hello.disk'],
    [{ type: 'hello', kind: 'base', migration: 'm', disk: 'd', size: -1 }, 'hello.size'],
    [{ type: 'hello', kind: 'shell' }, 'hello.kind'],
    [{ type: 'hello', kind: 'dataset', migration: 'm', files: { d0: '../root.qcow2' } }, 'hello.files.d0'],
    [{ type: 'hello', kind: 'dataset', migration: 'm', files: {} }, 'hello.files'],
    [{ type: 'hello', kind: 'dataset', migration: 'm', files: ['x'] }, 'hello.files'],
    [{ type: 'hello', kind: 'join', secret: 'short', port: 1 }, 'hello.secret'],
    [{ type: 'hello', kind: 'join', secret: 'a'.repeat(64), port: 70000 }, 'hello.port'],
  ])('refuses hello %j naming %s', (raw, field) => {
    expect(() => parseHello(raw)).toThrow(`Expected \`${field}\``);
  });

  it.each([
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...vm, kernel: 'relative' } }, 'vm.kernel'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...vm, disks: [] } }, 'vm.disks'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...vm, disks: [{ ...vm.disks[0], id: '-x' }] } }, 'vm.disks[0].id'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...vm, memoryMiB: 1e12 } }, 'vm.memoryMiB'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, machine: 'q35' } }, 'vm.machine'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, vcpus: 4 } }, 'vm.vcpus'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, cpu: { model: 'host', dies: 2 } } }, 'vm.cpu.dies'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, accel: 'hvf' } }, 'vm.accel'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, disks: [{ ...real.disks[1], bus: 'ide' }] } }, 'vm.disks[0].bus'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, disks: [{ ...real.disks[1], cache: 'fast' }] } }, 'vm.disks[0].cache'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, cdroms: [{ ...real.cdroms[0], sha256: 'B'.repeat(64) }] } }, 'vm.cdroms[0].sha256'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, cdroms: [{ ...real.cdroms[0], file: '../etc/shadow' }] } }, 'vm.cdroms[0].file'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, nics: [{ ...real.nics[0], mac: '33:33:00:00:00:01' }] } }, 'vm.nics[0].mac'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, nics: [{ ...real.nics[0], bridge: 'br0; reboot' }] } }, 'vm.nics[0].bridge'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, firmware: { ...real.firmware, varsBase64: 'not base64!' } } }, 'vm.firmware.varsBase64'],
    [{ id: 1, method: 'prepare', migration: 'm', vm: { ...real, firmware: { ...real.firmware, code: 'OVMF_CODE.fd' } } }, 'vm.firmware.code'],
    [{ id: 1, method: 'rm', migration: 'm' }, 'request.method'],
    [{ id: 1, method: 'headroom', migration: 'm' }, 'request.migration'],
    [{ id: 1, method: 'finish' }, 'request.migration'],
    [{ id: -1, method: 'abort', migration: 'm' }, 'request.id'],
    [{ id: 1, method: 'abort', migration: 'm', extra: 1 }, 'request.extra'],
    [{ id: 1, method: 'recover', migration: 'm', vm }, 'request.vm'],
  ])('refuses request %j naming %s', (raw, field) => {
    expect(() => parseRequest(raw)).toThrow(`Expected \`${field}\``);
  });

  it('refuses a variable store far larger than any OVMF has', () => {
    const huge = { ...real, firmware: { ...real.firmware, varsBase64: 'A'.repeat(6 * 1024 * 1024) } };
    expect(() => parseRequest({ id: 1, method: 'prepare', migration: 'm', vm: huge })).toThrow('Expected `vm.firmware.varsBase64` to be a variable store of at most 4194304 bytes, got `6291456 base64 characters`');
  });

  it('never crashes on arbitrary JSON: every refusal is a ValidationError', () => {
    const anything = fc.jsonValue({ maxDepth: 4 });
    const shaped = fc.record({ id: fc.jsonValue(), method: fc.constantFrom('prepare', 'abort', 'finish', 'x'), migration: fc.jsonValue(), vm: fc.jsonValue() }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.oneof(anything, shaped), (raw) => {
        for (const parse of [parseHello, parseRequest, parseResponse]) {
          try {
            parse(raw);
          } catch (error) {
            expect(error).toBeInstanceOf(ValidationError);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
