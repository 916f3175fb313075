/**
 * cowbufd's REST API, LXD-style: versioned `/1.0` paths on a unix socket, JSON bodies validated at
 * the boundary (unknown fields refused, messages naming the field and value), responses in LXD's
 * envelope (`sync`, `async` with an operation, `error`). Long-running actions (a migration) are
 * async operations: `/1.0/operations/<id>` shows them, `/wait` blocks until they end, DELETE
 * cancels.
 */
import { mkdir } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isAbsolute, join } from 'node:path';
import { CowbufError, UnknownMigrationError, ValidationError } from '../errors.js';
import { checkName } from '../exec/run.js';
import type { Engine, MigrationRecord } from '../migration/engine.js';
import { checkAddress } from '../peer/trust.js';
import type { TrustStore } from '../peer/trust.js';
import type { BufferVolume } from '../storage/volume.js';
import { parsePositiveSize } from '../units.js';
import { array, number, object, string } from '../validate.js';
import type { VmSpec } from '../vm/spec.js';
import { renderMetrics, type MetricsInput } from './metrics.js';

export interface ApiContext {
  readonly engine: Engine;
  readonly trust: TrustStore;
  readonly volume: BufferVolume;
  readonly stateDir: string;
  readonly info: () => Record<string, unknown>;
  readonly metrics: () => MetricsInput;
}

class HttpError extends CowbufError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_BODY = 1024 * 1024;

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body)}\n`);
}

const sync = (res: ServerResponse, metadata: unknown, status = 200) => send(res, status, { type: 'sync', status: 'Success', status_code: status, metadata });

function operation(record: MigrationRecord): Record<string, unknown> {
  const done = ['completed', 'failed', 'cancelled'].includes(record.phase);
  return {
    id: record.id,
    class: 'task',
    description: `Migrating ${record.vm} to ${record.peer}`,
    status: done ? (record.phase === 'completed' ? 'Success' : record.phase === 'cancelled' ? 'Cancelled' : 'Failure') : 'Running',
    may_cancel: !done,
    err: record.error ?? '',
    created_at: record.createdAt,
    updated_at: record.updatedAt,
    metadata: record,
  };
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `request body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text === '' ? '{}' : text);
  } catch {
    throw new ValidationError('body', text.slice(0, 40), 'a JSON object');
  }
}

function absolutePath(field: string, value: unknown): string {
  const path = string(field, value);
  if (!isAbsolute(path)) throw new ValidationError(field, value, 'an absolute path');
  return path;
}

/** A VM the daemon should start: its own sockets and serial log live under the state dir. */
export function parseVmBody(raw: unknown, stateDir: string): VmSpec {
  const body = object('body', raw, ['name', 'memoryMiB', 'disks'], ['vcpus', 'kernel', 'initrd', 'append']);
  const name = checkName('name', string('name', body.name));
  const home = join(stateDir, 'vms', name);
  return {
    name,
    memoryMiB: number('memoryMiB', body.memoryMiB, { min: 16, max: 1 << 22, integer: true }),
    vcpus: body.vcpus === undefined ? 1 : number('vcpus', body.vcpus, { min: 1, max: 1024, integer: true }),
    ...(body.kernel !== undefined ? { kernel: absolutePath('kernel', body.kernel) } : {}),
    ...(body.initrd !== undefined ? { initrd: absolutePath('initrd', body.initrd) } : {}),
    ...(body.append !== undefined ? { append: string('append', body.append) } : {}),
    disks: array('disks', body.disks, 1).map((entry, index) => {
      const disk = object(`disks[${index}]`, entry, ['id', 'file'], ['nodeName', 'format']);
      const format = disk.format === undefined ? 'qcow2' : disk.format;
      if (format !== 'qcow2' && format !== 'raw') throw new ValidationError(`disks[${index}].format`, format, '`qcow2` or `raw`');
      return {
        id: checkName(`disks[${index}].id`, string(`disks[${index}].id`, disk.id)),
        nodeName: disk.nodeName === undefined ? `disk${index}` : checkName(`disks[${index}].nodeName`, string(`disks[${index}].nodeName`, disk.nodeName)),
        file: absolutePath(`disks[${index}].file`, disk.file),
        format,
        werror: 'stop' as const,
      };
    }),
    qmpSocket: join(home, 'qmp.sock'),
    serialLog: join(home, 'serial.log'),
  };
}

function vmView(engine: Engine): unknown[] {
  return [...engine.vms.values()].map((vm) => ({ name: vm.spec.name, running: vm.child.running(), pid: vm.child.pid, accel: vm.accel, serialLog: vm.spec.serialLog, qmpSocket: vm.spec.qmpSocket, disks: vm.spec.disks }));
}

export function apiHandler(ctx: ApiContext): (req: IncomingMessage, res: ServerResponse) => void {
  const routes: Array<[string, RegExp, (req: IncomingMessage, res: ServerResponse, match: RegExpExecArray) => Promise<void> | void]> = [
    ['GET', /^\/1\.0$/, (_req, res) => sync(res, ctx.info())],
    ['GET', /^\/1\.0\/buffer$/, async (_req, res) => sync(res, { ...(await ctx.volume.status()), capabilities: ctx.volume.capabilities, partition: ctx.engine.loop.partition })],
    [
      'PATCH',
      /^\/1\.0\/buffer$/,
      async (req, res) => {
        const body = object('body', await readBody(req), ['size']);
        await ctx.engine.resizeBuffer(parsePositiveSize('size', body.size));
        sync(res, await ctx.volume.status());
      },
    ],
    ['GET', /^\/1\.0\/vms$/, (_req, res) => sync(res, vmView(ctx.engine))],
    [
      'POST',
      /^\/1\.0\/vms$/,
      async (req, res) => {
        const spec = parseVmBody(await readBody(req), ctx.stateDir);
        await mkdir(join(ctx.stateDir, 'vms', spec.name), { recursive: true, mode: 0o700 });
        await ctx.engine.launchVm(spec);
        sync(res, vmView(ctx.engine).find((vm) => (vm as { name: string }).name === spec.name), 201);
      },
    ],
    ['GET', /^\/1\.0\/migrations$/, (_req, res) => sync(res, ctx.engine.list())],
    [
      'POST',
      /^\/1\.0\/migrations$/,
      async (req, res) => {
        const body = object('body', await readBody(req), ['vm', 'target'], ['policy']);
        const record = ctx.engine.migrate(string('vm', body.vm), string('target', body.target), body.policy === undefined ? {} : { policy: string('policy', body.policy) });
        send(res, 202, { type: 'async', status: 'Operation created', status_code: 100, operation: `/1.0/operations/${record.id}`, metadata: operation(record) });
      },
    ],
    ['GET', /^\/1\.0\/(migrations|operations)\/([^/]+)$/, (_req, res, m) => sync(res, m[1] === 'operations' ? operation(ctx.engine.get(m[2] ?? '')) : ctx.engine.get(m[2] ?? ''))],
    [
      'GET',
      /^\/1\.0\/operations\/([^/]+)\/wait$/,
      async (_req, res, m) => sync(res, operation(await ctx.engine.waitFor(m[1] ?? ''))),
    ],
    ['DELETE', /^\/1\.0\/(migrations|operations)\/([^/]+)$/, (_req, res, m) => sync(res, operation(ctx.engine.cancel(m[2] ?? '')))],
    ['GET', /^\/1\.0\/peers$/, (_req, res) => sync(res, ctx.trust.list().map(({ name, fingerprint, address, notAfter }) => ({ name, fingerprint, address, notAfter })))],
    [
      'POST',
      /^\/1\.0\/peers$/,
      async (req, res) => {
        const body = object('body', await readBody(req), ['name', 'certificate', 'address']);
        const peer = await ctx.trust.add(string('name', body.name), string('certificate', body.certificate), checkAddress('address', string('address', body.address)));
        sync(res, { name: peer.name, fingerprint: peer.fingerprint, address: peer.address }, 201);
      },
    ],
    [
      'DELETE',
      /^\/1\.0\/peers\/([^/]+)$/,
      async (_req, res, m) => {
        const name = m[1] ?? '';
        if (!ctx.trust.get(name)) throw new HttpError(404, `no trusted peer named ${name}`);
        await ctx.trust.remove(name);
        sync(res, {});
      },
    ],
    [
      'GET',
      /^\/1\.0\/metrics$/,
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(renderMetrics(ctx.metrics()));
      },
    ],
    [
      'GET',
      /^\/1\.0\/events$/,
      (req, res) => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        const write = (type: string) => (metadata: unknown) => res.write(`${JSON.stringify({ type, timestamp: new Date().toISOString(), metadata })}\n`);
        const onMigration = write('migration');
        const onLog = write('logging');
        const onTick = write('tick');
        ctx.engine.on('migration', onMigration);
        ctx.engine.on('log', onLog);
        ctx.engine.on('tick', onTick);
        for (const record of ctx.engine.list()) onMigration(record);
        req.on('close', () => {
          ctx.engine.off('migration', onMigration);
          ctx.engine.off('log', onLog);
          ctx.engine.off('tick', onTick);
        });
      },
    ],
  ];

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const matching = routes.filter(([, pattern]) => pattern.test(path));
    const route = matching.find(([method]) => method === req.method);
    void (async () => {
      try {
        if (!route) throw new HttpError(matching.length > 0 ? 405 : 404, matching.length > 0 ? `method ${req.method ?? ''} not allowed on ${path}` : `no such endpoint ${path}`);
        await route[2](req, res, route[1].exec(path) as RegExpExecArray);
      } catch (error) {
        const status = error instanceof HttpError ? error.status : error instanceof ValidationError ? 400 : error instanceof UnknownMigrationError ? 404 : error instanceof CowbufError ? 409 : 500;
        if (!res.headersSent) send(res, status, { type: 'error', error: (error as Error).message, error_code: status });
        else res.end();
      }
    })();
  };
}
