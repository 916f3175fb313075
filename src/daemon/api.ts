/**
 * cowbufd's REST API, LXD-style: versioned `/1.0` paths on a unix socket, JSON bodies validated at
 * the boundary (unknown fields refused, messages naming the field and value), responses in LXD's
 * envelope (`sync`, `async` with an operation, `error`). Long-running actions (a migration) are
 * async operations: `/1.0/operations/<id>` shows them, `/wait` blocks until they end, DELETE
 * cancels.
 */
import { mkdir } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { CowbufError, NotOfferedError, UnknownEvacuationError, UnknownMigrationError, UnknownVmError, ValidationError } from '../errors.js';
import type { Engine, MigrationRecord } from '../migration/engine.js';
import { FINAL } from '../migration/record.js';
import type { TrustStore } from '../peer/trust.js';
import type { BufferVolume } from '../storage/volume.js';
import { socketOwner } from '../host/socket-owner.js';
import { checkVmSpec } from '../vm/check.js';
import { attachRunning } from '../vm/launcher.js';
import type { VmSpec } from '../vm/spec.js';
import { deviceModel, diskOptions } from './device-model.js';
import { BODIES, ENDPOINTS, type EndpointName } from './endpoints.js';
import { renderMetrics, type MetricsInput } from './metrics.js';
import { parseObject, type Parsed, type Schema } from './schema.js';

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
  const done = FINAL.has(record.phase);
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

/**
 * A VM the daemon should start: its own sockets and serial log live under the state dir.
 * @throws ValidationError naming the body's bad field
 */
export function parseVmBody(raw: unknown, stateDir: string): VmSpec {
  const body = parseObject(BODIES.vm, 'body', raw);
  const home = join(stateDir, 'vms', body.name);
  return vmSpec(body, join(home, 'qmp.sock'), join(home, 'serial.log'));
}

function vmSpec(body: Parsed<typeof BODIES.vm>, qmpSocket: string, serialLog: string): VmSpec {
  const spec: VmSpec = {
    name: body.name,
    memoryMiB: body.memoryMiB,
    ...deviceModel(body),
    ...(body.kernel !== undefined ? { kernel: body.kernel } : {}),
    ...(body.initrd !== undefined ? { initrd: body.initrd } : {}),
    ...(body.append !== undefined ? { append: body.append } : {}),
    disks: body.disks.map((disk, index) => ({ id: disk.id, nodeName: disk.nodeName ?? `disk${index}`, file: disk.file, format: disk.format, werror: 'stop' as const, ...diskOptions(disk) })),
    qmpSocket,
    serialLog,
  };
  return checkVmSpec(spec, '');
}

/**
 * Takes over a running QEMU: connect to its monitor, check it, and only then keep it. A refused
 * VM is let go of untouched (the connection closes; the QEMU runs on as before).
 */
async function adopt(ctx: ApiContext, raw: unknown): Promise<string> {
  const { qmpSocket, serialLog, pid, allowErrorPolicy, ...definition } = parseObject(BODIES.adopt, 'body', raw);
  const spec = vmSpec(definition, qmpSocket, serialLog ?? '');
  const owner =
    pid ??
    (await socketOwner(qmpSocket).catch((error: unknown) => {
      throw new ValidationError('qmpSocket', qmpSocket, `the QMP socket of a running QEMU (${(error as Error).message})`);
    }));
  const vm = await attachRunning(spec, owner);
  try {
    await ctx.engine.adoptVm(vm, { allowErrorPolicy });
  } catch (error) {
    await vm.qmp.disconnect();
    throw error;
  }
  return spec.name;
}

/**
 * Each VM: whether its QEMU runs, the guest's run state as QEMU says it (`running`, `paused`,
 * `postmigrate` while a migration is finishing or in doubt), and whether any drive is throttled.
 */
function vmView(engine: Engine): Promise<unknown[]> {
  return Promise.all(
    [...engine.vms.values()].map(async (vm) => {
      const alive = vm.running();
      const limits = alive ? await vm.commands.queryIoThrottles().catch(() => undefined) : undefined;
      const throttled = limits?.some((limit) => limit.bps + limit.bps_wr + limit.iops + limit.iops_wr > 0);
      const status = alive ? (await vm.commands.queryStatus().catch(() => undefined))?.status : undefined;
      return { name: vm.spec.name, running: alive, status: status ?? 'unknown', pid: vm.pid, accel: vm.accel, serialLog: vm.spec.serialLog, qmpSocket: vm.spec.qmpSocket, disks: vm.spec.disks, throttled };
    }),
  );
}

type Handler = (req: IncomingMessage, res: ServerResponse, params: readonly string[]) => Promise<void> | void;

/** Names a trusted peer may not take: they are paths of their own under /1.0/peers. */
const RESERVED_PEER_NAMES = new Set(['tokens', 'join']);

function peerName(field: string, value: string): string {
  if (RESERVED_PEER_NAMES.has(value)) throw new ValidationError(field, value, `a name other than ${[...RESERVED_PEER_NAMES].join(', ')}`);
  return value;
}

function handlers(ctx: ApiContext): Record<EndpointName, Handler> {
  const body = async <S extends Schema>(schema: S, req: IncomingMessage) => parseObject(schema, 'body', await readBody(req));
  return {
    info: (_req, res) => sync(res, ctx.info()),
    buffer: async (_req, res) => sync(res, { ...(await ctx.volume.status()), capabilities: ctx.volume.capabilities, partition: ctx.engine.loop.partition }),
    resizeBuffer: async (req, res) => {
      await ctx.engine.resizeBuffer((await body(BODIES.resize, req)).size);
      sync(res, await ctx.volume.status());
    },
    vms: async (_req, res) => sync(res, await vmView(ctx.engine)),
    startVm: async (req, res) => {
      const spec = parseVmBody(await readBody(req), ctx.stateDir);
      await mkdir(join(ctx.stateDir, 'vms', spec.name), { recursive: true, mode: 0o700 });
      await ctx.engine.launchVm(spec);
      sync(res, (await vmView(ctx.engine)).find((vm) => (vm as { name: string }).name === spec.name), 201);
    },
    adoptVm: async (req, res) => {
      const name = await adopt(ctx, await readBody(req));
      sync(res, (await vmView(ctx.engine)).find((vm) => (vm as { name: string }).name === name), 201);
    },
    removeVm: async (_req, res, [name = '']) => sync(res, await ctx.engine.removeVm(BODIES.vm.name.parse('name', name))),
    headroom: async (_req, res) => sync(res, await ctx.engine.headroom(AbortSignal.timeout(10_000))),
    migrations: (_req, res) => sync(res, ctx.engine.list()),
    migrate: async (req, res) => {
      const { vm, target, policy } = await body(BODIES.migration, req);
      const record = ctx.engine.migrate(vm, target, policy === undefined ? {} : { policy });
      send(res, 202, { type: 'async', status: 'Operation created', status_code: 100, operation: `/1.0/operations/${record.id}`, metadata: operation(record) });
    },
    migration: (_req, res, [id = '']) => sync(res, ctx.engine.get(id)),
    cancelMigration: (_req, res, [id = '']) => sync(res, operation(ctx.engine.cancel(id))),
    resolveMigration: async (req, res, [id = '']) => sync(res, ctx.engine.resolve(id, (await body(BODIES.resolve, req)).resume)),
    operation: (_req, res, [id = '']) => sync(res, operation(ctx.engine.get(id))),
    waitOperation: async (_req, res, [id = '']) => sync(res, operation(await ctx.engine.waitFor(id))),
    cancelOperation: (_req, res, [id = '']) => sync(res, operation(ctx.engine.cancel(id))),
    evacuations: (_req, res) => sync(res, ctx.engine.evacuations.list()),
    evacuate: async (req, res) => {
      const { targets } = await body(BODIES.evacuation, req);
      sync(res, await ctx.engine.evacuate(targets === undefined ? {} : { targets }), 201);
    },
    evacuation: (_req, res, [id = '']) => sync(res, ctx.engine.evacuations.get(id)),
    cancelEvacuation: (_req, res, [id = '']) => sync(res, ctx.engine.evacuations.cancel(id)),
    peers: (_req, res) => sync(res, ctx.trust.list().map(({ name, fingerprint, address, notAfter }) => ({ name, fingerprint, address, notAfter }))),
    trust: async (req, res) => {
      const peer = await body(BODIES.peer, req);
      const added = await ctx.trust.add(peerName('name', peer.name), peer.certificate, peer.address);
      sync(res, { name: added.name, fingerprint: added.fingerprint, address: added.address }, 201);
    },
    untrust: async (_req, res, [name = '']) => {
      if (!ctx.trust.get(name)) throw new HttpError(404, `no trusted peer named ${name}`);
      await ctx.trust.remove(name);
      sync(res, {});
    },
    tokens: (_req, res) => sync(res, ctx.engine.enrollment.pending()),
    issueToken: async (req, res) => {
      const { name, expirySeconds } = await body(BODIES.token, req);
      sync(res, { name, ...(await ctx.engine.enrollment.issue(peerName('name', name), expirySeconds)) }, 201);
    },
    join: async (req, res) => {
      const { name, token } = await body(BODIES.join, req);
      const peer = await ctx.engine.enrollment.join(peerName('name', name), token);
      sync(res, { name: peer.name, fingerprint: peer.fingerprint, address: peer.address }, 201);
    },
    metrics: (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(renderMetrics(ctx.metrics()));
    },
    events: (req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      const write = (type: string) => (metadata: unknown) => res.write(`${JSON.stringify({ type, timestamp: new Date().toISOString(), metadata })}\n`);
      const listeners = { migration: write('migration'), evacuation: write('evacuation'), log: write('logging'), tick: write('tick') } as const;
      for (const [event, listener] of Object.entries(listeners)) ctx.engine.on(event as keyof typeof listeners, listener);
      for (const record of ctx.engine.list()) listeners.migration(record);
      for (const record of ctx.engine.evacuations.list()) listeners.evacuation(record);
      req.on('close', () => {
        for (const [event, listener] of Object.entries(listeners)) ctx.engine.off(event as keyof typeof listeners, listener);
      });
    },
  };
}

/** `/1.0/migrations/{id}` → a pattern capturing one path segment per parameter. */
function pattern(path: string): RegExp {
  return new RegExp(`^${path.replace(/[.]/g, '\\.').replace(/\{[a-z]+\}/g, '([^/]+)')}$`);
}

function statusOf(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  if (error instanceof ValidationError) return 400;
  if (error instanceof UnknownMigrationError || error instanceof UnknownEvacuationError || error instanceof UnknownVmError) return 404;
  // The method exists, but this daemon's VM provider does not offer it.
  if (error instanceof NotOfferedError) return 405;
  return error instanceof CowbufError ? 409 : 500;
}

export function apiHandler(ctx: ApiContext): (req: IncomingMessage, res: ServerResponse) => void {
  const table = handlers(ctx);
  const routes = (Object.keys(ENDPOINTS) as EndpointName[]).map((name) => ({ method: ENDPOINTS[name].method as string, pattern: pattern(ENDPOINTS[name].path), handle: table[name] }));

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const matching = routes.filter((route) => route.pattern.test(path));
    const route = matching.find((candidate) => candidate.method === req.method);
    void (async () => {
      try {
        if (!route) throw new HttpError(matching.length > 0 ? 405 : 404, matching.length > 0 ? `method ${req.method ?? ''} not allowed on ${path}` : `no such endpoint ${path}`);
        await route.handle(req, res, (route.pattern.exec(path) ?? []).slice(1).map((segment) => decodeURIComponent(segment)));
      } catch (error) {
        const status = statusOf(error);
        if (!res.headersSent) send(res, status, { type: 'error', error: (error as Error).message, error_code: status });
        else res.end();
      }
    })();
  };
}
