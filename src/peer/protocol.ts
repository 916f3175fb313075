/**
 * The peer protocol between two cowbufd, validated at the boundary: a peer is trusted, not
 * believed. Every connection opens with one `hello` line saying what it carries:
 * - `control`: JSON-lines requests (`prepare`, `start-target`, `finish`, `abort`, `recover`, `headroom`) and
 *   responses;
 * - `base`: the frozen base of one disk, `size` raw bytes then a `{"sha256": ...}` line, answered
 *   with `{"ok": true}` once the target's own checksum matches (end to end);
 * - `stream`: an NBD or RAM byte stream the target daemon splices onto QEMU's local socket.
 */
import { ValidationError } from '../errors.js';
import { checkName } from '../exec/run.js';
import { number, object, record, string, type Json } from '../validate.js';
import { parseVm, type WireVm } from './wire-vm.js';

export type { WireCdrom, WireDisk, WireFirmware, WireVm } from './wire-vm.js';

export type StreamKind = 'ram' | 'nbd';

export type Hello =
  | { readonly type: 'hello'; readonly kind: 'control' }
  | { readonly type: 'hello'; readonly kind: 'base'; readonly migration: string; readonly disk: string; readonly size: number }
  | { readonly type: 'hello'; readonly kind: 'stream'; readonly migration: string; readonly stream: StreamKind }
  /** A `zfs send` stream of the dataset holding the VM's disks (`files`: disk id → file name in it). */
  | { readonly type: 'hello'; readonly kind: 'dataset'; readonly migration: string; readonly files: Readonly<Record<string, string>> }
  /** From a not-yet-trusted peer spending a trust token; `port` is where its own peer API listens. */
  | { readonly type: 'hello'; readonly kind: 'join'; readonly secret: string; readonly port: number };

/** Migration capabilities the target must share with the source. */
export interface TargetCapabilities {
  readonly 'postcopy-ram': boolean;
  readonly multifd: boolean;
}

export type PeerRequest =
  | { readonly id: number; readonly method: 'prepare'; readonly migration: string; readonly vm: WireVm }
  | { readonly id: number; readonly method: 'start-target'; readonly migration: string; readonly capabilities: TargetCapabilities; readonly multifdChannels?: number }
  | { readonly id: number; readonly method: 'finish' | 'abort' | 'recover'; readonly migration: string }
  /** What the peer can still take on (evacuation/headroom.ts), for a source planning an evacuation. */
  | { readonly id: number; readonly method: 'headroom' };

export type PeerResponse = { readonly id: number; readonly ok: true; readonly result?: Json } | { readonly id: number; readonly ok: false; readonly error: string };

const MIGRATION_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function migrationId(field: string, value: unknown): string {
  return string(field, value, MIGRATION_ID, 'a migration id (letters, digits, `_.-`)');
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

/** @throws ValidationError naming the bad field */
export function parseRequest(raw: unknown): PeerRequest {
  const head = object('request', raw, ['id', 'method'], ['migration', 'vm', 'capabilities', 'multifdChannels']);
  const id = number('request.id', head.id, { min: 0, integer: true });
  if (head.method === 'headroom') {
    object('request', raw, ['id', 'method']);
    return { id, method: 'headroom' };
  }
  object('request', raw, ['id', 'method', 'migration'], ['vm', 'capabilities', 'multifdChannels']);
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
    case 'recover':
      object('request', raw, ['id', 'method', 'migration']);
      return { id, method: head.method, migration };
    default:
      throw new ValidationError('request.method', head.method, '`prepare`, `start-target`, `finish`, `abort`, `recover` or `headroom`');
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
