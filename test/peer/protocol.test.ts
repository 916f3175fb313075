import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { parseHello, parseRequest, parseResponse } from '../../src/peer/protocol.js';

const vm = { name: 'vm1', memoryMiB: 256, vcpus: 1, kernel: '/k', disks: [{ id: 'vdisk0', nodeName: 'disk0', format: 'qcow2', virtualSize: 67108864 }] };

describe('peer protocol validation', () => {
  it('accepts well-formed messages', () => {
    expect(parseHello({ type: 'hello', kind: 'stream', migration: 'm-1', stream: 'ram' })).toEqual({ type: 'hello', kind: 'stream', migration: 'm-1', stream: 'ram' });
    expect(parseHello({ type: 'hello', kind: 'dataset', migration: 'm-1', files: { d0: 'root.qcow2' } })).toEqual({ type: 'hello', kind: 'dataset', migration: 'm-1', files: { d0: 'root.qcow2' } });
    expect(parseRequest({ id: 3, method: 'prepare', migration: 'm1', vm }).method).toBe('prepare');
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
    [{ id: 1, method: 'rm', migration: 'm' }, 'request.method'],
    [{ id: -1, method: 'abort', migration: 'm' }, 'request.id'],
    [{ id: 1, method: 'abort', migration: 'm', extra: 1 }, 'request.extra'],
  ])('refuses request %j naming %s', (raw, field) => {
    expect(() => parseRequest(raw)).toThrow(`Expected \`${field}\``);
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
