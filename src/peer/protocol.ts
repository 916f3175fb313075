/**
 * The peer protocol between two cowbufd, validated at the boundary: a peer is trusted, not
 * believed. Every connection opens with one `hello` line saying what it carries:
 * - `control`: JSON-lines requests (`prepare`, `start-target`, `finish`, `abort`) and responses;
 * - `base`: the frozen base of one disk, `size` raw bytes then a `{"sha256": ...}` line, answered
 *   with `{"ok": true}` once the target's own checksum matches (end to end);
 * - `stream`: an NBD or RAM byte stream the target daemon splices onto QEMU's local socket.
 */
import { isAbsolute } from 'node:path';
import { ValidationError } from '../errors.js';
import { checkName } from '../exec/run.js';
import { array, number, object, record, string, type Json } from '../validate.js';
import type { Accel, DiskSpec, VmSpec } from '../vm/spec.js';

export type StreamKind = 'ram' | 'nbd';

export type Hello =
  | { readonly type: 'hello'; readonly kind: 'control' }
  | { readonly type: 'hello'; readonly kind: 'base'; readonly migration: string; readonly disk: string; readonly size: number }
  | { readonly type: 'hello'; readonly kind: 'stream'; readonly migration: string; readonly stream: StreamKind }
  /** A `zfs send` stream of the dataset holding the VM's disks (`files`: disk id → file name in it). */
  | { readonly type: 'hello'; readonly kind: 'dataset'; readonly migration: string; readonly files: Readonly<Record<string, string>> }
  /** From a not-yet-trusted peer spending a trust token; `port` is where its own peer API listens. */
  | { readonly type: 'hello'; readonly kind: 'join'; readonly secret: string; readonly port: number };

/** A disk as the target needs it: the source's spec without its local file, plus its size. */
export type WireDisk = Pick<DiskSpec, 'id' | 'nodeName' | 'format'> & { readonly virtualSize: number };

/**
 * The VM as the target must start it: the source's spec without its local sockets and files,
 * and the accelerator it runs under there (a KVM guest's state cannot be loaded into TCG).
 */
export type WireVm = Pick<VmSpec, 'name' | 'memoryMiB' | 'vcpus' | 'kernel' | 'initrd' | 'append'> & { readonly disks: readonly WireDisk[]; readonly accel?: Accel };

/** Migration capabilities the target must share with the source. */
export interface TargetCapabilities {
  readonly 'postcopy-ram': boolean;
  readonly multifd: boolean;
}

export type PeerRequest =
  | { readonly id: number; readonly method: 'prepare'; readonly migration: string; readonly vm: WireVm }
  | { readonly id: number; readonly method: 'start-target'; readonly migration: string; readonly capabilities: TargetCapabilities; readonly multifdChannels?: number }
  | { readonly id: number; readonly method: 'finish' | 'abort'; readonly migration: string };

export type PeerResponse = { readonly id: number; readonly ok: true; readonly result?: Json } | { readonly id: number; readonly ok: false; readonly error: string };

const MIGRATION_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function migrationId(field: string, value: unknown): string {
  return string(field, value, MIGRATION_ID, 'a migration id (letters, digits, `_.-`)');
}

function absolute(field: string, value: unknown): string {
  const path = string(field, value);
  if (!isAbsolute(path) || path.includes('\0')) throw new ValidationError(field, value, 'an absolute path');
  return path;
}

/** @throws ValidationError naming the bad field */
export function parseHello(raw: unknown): Hello {
  const kind = object('hello', raw, ['type', 'kind'], ['migration', 'disk', 'size', 'stream', 'secret', 'port', 'files']).kind;
  if (kind === 'control') {
    object('hello', raw, ['type', 'kind']);
    return { type: 'hello', kind };
  }
  if (kind === 'base') {
    const hello = object('hello', raw, ['type', 'kind', 'migration', 'disk', 'size']);
    return {
      type: 'hello',
      kind,
      migration: migrationId('hello.migration', hello.migration),
      disk: checkName('hello.disk', string('hello.disk', hello.disk)),
      size: number('hello.size', hello.size, { min: 0, integer: true }),
    };
  }
  if (kind === 'stream') {
    const hello = object('hello', raw, ['type', 'kind', 'migration', 'stream']);
    const stream = hello.stream;
    if (stream !== 'ram' && stream !== 'nbd') throw new ValidationError('hello.stream', stream, '`ram` or `nbd`');
    return { type: 'hello', kind, migration: migrationId('hello.migration', hello.migration), stream };
  }
  if (kind === 'dataset') {
    const hello = object('hello', raw, ['type', 'kind', 'migration', 'files']);
    const files = record('hello.files', hello.files);
    if (Object.keys(files).length === 0) throw new ValidationError('hello.files', files, 'at least one disk');
    return {
      type: 'hello',
      kind,
      migration: migrationId('hello.migration', hello.migration),
      files: Object.fromEntries(Object.entries(files).map(([disk, file]) => [checkName('hello.files', disk), checkName(`hello.files.${disk}`, string(`hello.files.${disk}`, file))])),
    };
  }
  if (kind === 'join') {
    const hello = object('hello', raw, ['type', 'kind', 'secret', 'port']);
    return { type: 'hello', kind, secret: string('hello.secret', hello.secret, /^[0-9a-f]{64}$/, '64 hex digits'), port: number('hello.port', hello.port, { min: 1, max: 65535, integer: true }) };
  }
  throw new ValidationError('hello.kind', kind, '`control`, `base`, `dataset`, `stream` or `join`');
}

function parseVm(raw: unknown): WireVm {
  const vm = object('vm', raw, ['name', 'memoryMiB', 'vcpus', 'disks'], ['kernel', 'initrd', 'append', 'accel']);
  if (vm.accel !== undefined && vm.accel !== 'kvm' && vm.accel !== 'tcg') throw new ValidationError('vm.accel', vm.accel, '`kvm` or `tcg`');
  return {
    name: checkName('vm.name', string('vm.name', vm.name)),
    memoryMiB: number('vm.memoryMiB', vm.memoryMiB, { min: 16, max: 1 << 22, integer: true }),
    vcpus: number('vm.vcpus', vm.vcpus, { min: 1, max: 1024, integer: true }),
    ...(vm.kernel !== undefined ? { kernel: absolute('vm.kernel', vm.kernel) } : {}),
    ...(vm.initrd !== undefined ? { initrd: absolute('vm.initrd', vm.initrd) } : {}),
    ...(vm.append !== undefined ? { append: string('vm.append', vm.append) } : {}),
    ...(vm.accel !== undefined ? { accel: vm.accel } : {}),
    disks: array('vm.disks', vm.disks, 1).map((entry, index) => {
      const field = `vm.disks[${index}]`;
      const disk = object(field, entry, ['id', 'nodeName', 'format', 'virtualSize']);
      if (disk.format !== 'qcow2' && disk.format !== 'raw') throw new ValidationError(`${field}.format`, disk.format, '`qcow2` or `raw`');
      return {
        id: checkName(`${field}.id`, string(`${field}.id`, disk.id)),
        nodeName: checkName(`${field}.nodeName`, string(`${field}.nodeName`, disk.nodeName)),
        format: disk.format,
        virtualSize: number(`${field}.virtualSize`, disk.virtualSize, { min: 1, integer: true }),
      };
    }),
  };
}

/** @throws ValidationError naming the bad field */
export function parseRequest(raw: unknown): PeerRequest {
  const head = object('request', raw, ['id', 'method', 'migration'], ['vm', 'capabilities', 'multifdChannels']);
  const id = number('request.id', head.id, { min: 0, integer: true });
  const migration = migrationId('request.migration', head.migration);
  switch (head.method) {
    case 'prepare':
      return { id, method: 'prepare', migration, vm: parseVm(head.vm) };
    case 'start-target': {
      const caps = object('request.capabilities', head.capabilities, ['postcopy-ram', 'multifd']);
      for (const key of ['postcopy-ram', 'multifd'] as const) {
        if (typeof caps[key] !== 'boolean') throw new ValidationError(`request.capabilities.${key}`, caps[key], 'a boolean');
      }
      object('request', raw, ['id', 'method', 'migration', 'capabilities'], ['multifdChannels']);
      return {
        id,
        method: 'start-target',
        migration,
        capabilities: { 'postcopy-ram': caps['postcopy-ram'] as boolean, multifd: caps.multifd as boolean },
        ...(head.multifdChannels !== undefined ? { multifdChannels: number('request.multifdChannels', head.multifdChannels, { min: 1, max: 64, integer: true }) } : {}),
      };
    }
    case 'finish':
    case 'abort':
      object('request', raw, ['id', 'method', 'migration']);
      return { id, method: head.method, migration };
    default:
      throw new ValidationError('request.method', head.method, '`prepare`, `start-target`, `finish` or `abort`');
  }
}

/** @throws ValidationError naming the bad field */
export function parseResponse(raw: unknown): PeerResponse {
  const head = object('response', raw, ['id', 'ok'], ['result', 'error']);
  const id = number('response.id', head.id, { min: 0, integer: true });
  if (head.ok === true) return head.result === undefined ? { id, ok: true } : { id, ok: true, result: record('response.result', head.result) };
  if (head.ok === false) return { id, ok: false, error: string('response.error', head.error) };
  throw new ValidationError('response.ok', head.ok, '`true` or `false`');
}

/**
 * The target's answer to `finish`. `running`: the guest runs there (times in ms on the target's
 * clock: `cont` sent, QEMU's RESUME event). `not-run`: its copy did not run and never will (it was
 * discarded), so the source may resume its own. No answer at all means neither.
 */
export type FinishAnswer =
  | { readonly outcome: 'running'; readonly contAt: number; readonly resumedAt: number }
  | { readonly outcome: 'not-run'; readonly reason: string };

/** @throws ValidationError naming the bad field */
export function parseFinish(raw: unknown): FinishAnswer {
  const head = object('finish', raw, ['outcome'], ['contAt', 'resumedAt', 'reason']);
  if (head.outcome === 'running') {
    object('finish', raw, ['outcome', 'contAt', 'resumedAt']);
    return { outcome: 'running', contAt: number('finish.contAt', head.contAt, { min: 0 }), resumedAt: number('finish.resumedAt', head.resumedAt, { min: 0 }) };
  }
  if (head.outcome === 'not-run') {
    object('finish', raw, ['outcome', 'reason']);
    return { outcome: 'not-run', reason: string('finish.reason', head.reason) };
  }
  throw new ValidationError('finish.outcome', head.outcome, '`running` or `not-run`');
}
