import { afterEach, describe, expect, it } from 'vitest';
import { QmpClient } from '../../src/qmp/client.js';
import { QmpCommands } from '../../src/qmp/commands.js';
import { QmpCommandError, QmpDisconnectedError, QmpProtocolError, QmpStateError, QmpTimeoutError } from '../../src/qmp/errors.js';
import { GREETING, fakeQmp, type FakeQmp, type Handler } from '../support/fake-qmp.js';

let server: FakeQmp | undefined;
let client: QmpClient | undefined;

afterEach(async () => {
  await client?.disconnect();
  await server?.close();
  client = undefined;
  server = undefined;
});

async function connected(handler: Handler, greeting?: string[]): Promise<{ server: FakeQmp; client: QmpClient; unexpected: unknown[] }> {
  server = await fakeQmp(handler, greeting);
  const unexpected: unknown[] = [];
  client = new QmpClient({ commandTimeoutMs: 2000, onUnexpected: (message) => unexpected.push(message) });
  await client.connect(server.path, { timeoutMs: 2000 });
  return { server, client, unexpected };
}

const text = JSON.stringify(GREETING) + '\n';

describe('QmpClient', () => {
  it('negotiates after a greeting that arrives in two writes', async () => {
    const { client, server } = await connected(() => ({ return: { status: 'running', running: true } }), [text.slice(0, 20), text.slice(20)]);
    expect(client.state).toBe('running');
    expect(client.greeting?.version.qemu).toEqual({ micro: 22, minor: 2, major: 7 });
    expect(server.received[0]?.execute).toBe('qmp_capabilities');
    expect(await new QmpCommands(client).queryStatus()).toEqual({ status: 'running', running: true });
  });

  it('owns the message ids and routes coalesced replies to the right callers', async () => {
    const held: Array<{ id: string; command: string }> = [];
    const { client, server } = await connected((command, _args, socket) => {
      held.push({ id: server.received.at(-1)?.id ?? '', command });
      if (held.length === 2) {
        // Answer both in one write, in reverse order.
        socket.write(held.reverse().map((h) => JSON.stringify({ return: h.command, id: h.id }) + '\n').join(''));
      }
      return undefined;
    });
    const [a, b] = await Promise.all([client.execute('first'), client.execute('second')]);
    expect([a, b]).toEqual(['first', 'second']);
    expect(server.received.map((m) => m.id)).toEqual(['cowbuf-1', 'cowbuf-2', 'cowbuf-3']);
  });

  it('rejects a failed command with the command, its arguments and the QMP error class', async () => {
    const { client } = await connected(() => ({ error: { class: 'DeviceNotFound', desc: "Device 'nope' not found" } }));
    const call = new QmpCommands(client).setIoThrottle('nope', { bps_wr: 1 });
    await expect(call).rejects.toBeInstanceOf(QmpCommandError);
    await expect(call).rejects.toMatchObject({
      command: 'block_set_io_throttle',
      errorClass: 'DeviceNotFound',
      description: "Device 'nope' not found",
      args: { id: 'nope', bps_wr: 1, bps: 0, iops: 0 },
      message: "`block_set_io_throttle` failed: DeviceNotFound: Device 'nope' not found",
    });
  });

  it('times a command out, then drops its late reply as unexpected', async () => {
    let late: (() => void) | undefined;
    const { client, unexpected } = await connected((_c, _a, socket) => {
      late = () => socket.write(JSON.stringify({ return: {}, id: 'cowbuf-2' }) + '\n');
      return undefined;
    });
    await expect(client.execute('slow', undefined, { timeoutMs: 50 })).rejects.toBeInstanceOf(QmpTimeoutError);
    late?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(unexpected).toEqual([{ return: {}, id: 'cowbuf-2' }]);
    expect(client.state).toBe('running');
  });

  it('rejects every pending call and listener when the connection drops', async () => {
    const { client, server } = await connected(() => undefined);
    const listener = client.listen('STOP');
    const calls = [client.execute('a'), client.execute('b'), listener.next()];
    server.sockets[0]?.destroy();
    for (const call of calls) await expect(call).rejects.toBeInstanceOf(QmpDisconnectedError);
    await expect(client.execute('c')).rejects.toBeInstanceOf(QmpStateError);
    expect(client.state).toBe('idle');
  });

  it('gives each listener its own queue, filtered by name', async () => {
    const { client, server } = await connected(() => ({ return: {} }));
    const stops = client.listen('STOP');
    const jobs = client.listen('BLOCK_JOB_READY', 'JOB_STATUS_CHANGE');
    const everything = client.listen();
    const socket = server.sockets[0];
    if (!socket) throw new Error('no socket');
    server.send(socket, ['STOP', 'BLOCK_JOB_READY', 'RESUME'].map((event) => JSON.stringify({ event, data: {}, timestamp: { seconds: 1, microseconds: 2 } })).join('\n') + '\n');
    expect((await stops.next()).event).toBe('STOP');
    expect((await jobs.next()).event).toBe('BLOCK_JOB_READY');
    expect((await everything.next()).event).toBe('STOP');
    expect((await everything.next()).event).toBe('BLOCK_JOB_READY');
    expect((await everything.next()).event).toBe('RESUME');
    await expect(stops.next({ timeoutMs: 30 })).rejects.toBeInstanceOf(QmpTimeoutError);
    stops.close();
  });

  it('closes the connection on garbage and reports a protocol error to pending calls', async () => {
    const { client, server } = await connected(() => undefined);
    const call = client.execute('x');
    const socket = server.sockets[0];
    if (!socket) throw new Error('no socket');
    server.send(socket, '{"return": oops}\n');
    const error = await call.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpDisconnectedError);
    expect((error as Error).cause).toBeInstanceOf(QmpProtocolError);
  });

  it('refuses to execute before connecting, and returns to idle after a failed connect', async () => {
    const fresh = new QmpClient();
    await expect(fresh.execute('query-status')).rejects.toBeInstanceOf(QmpStateError);
    await expect(fresh.connect('/nonexistent/dir/qmp.sock', { timeoutMs: 100 })).rejects.toBeInstanceOf(QmpTimeoutError);
    expect(fresh.state).toBe('idle');
    server = await fakeQmp(() => undefined, ['{"not": "a greeting"}\n']);
    await expect(fresh.connect(server.path, { timeoutMs: 200 })).rejects.toBeInstanceOf(QmpTimeoutError);
    expect(fresh.state).toBe('idle');
  });

  it('honours an AbortSignal on a pending command', async () => {
    const { client } = await connected(() => undefined);
    const controller = new AbortController();
    const call = client.execute('hang', undefined, { signal: controller.signal });
    controller.abort(new Error('migration cancelled'));
    await expect(call).rejects.toThrow('migration cancelled');
  });
});
