/**
 * A scripted QMP server on a real unix socket, for client unit tests: it greets (optionally in
 * several writes), answers commands through a handler, and can push events or garbage.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Handler = (command: string, args: unknown, socket: Socket) => unknown;

export const GREETING = { QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: 'fake' }, capabilities: ['oob'] } };

export interface FakeQmp {
  readonly path: string;
  readonly received: Array<{ execute: string; id?: string; arguments?: unknown }>;
  readonly sockets: Socket[];
  send(socket: Socket, text: string): void;
  close(): Promise<void>;
}

/** `handler` returns a reply object (`{return}` or `{error}`), `undefined` for no reply. */
export async function fakeQmp(handler: Handler, greetingChunks: readonly string[] = [JSON.stringify(GREETING) + '\r\n']): Promise<FakeQmp> {
  const dir = await mkdtemp(join(tmpdir(), 'cowbuf-qmp-'));
  const path = join(dir, 'qmp.sock');
  const received: FakeQmp['received'] = [];
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    sockets.push(socket);
    for (const chunk of greetingChunks) socket.write(chunk);
    let buffer = '';
    socket.on('data', (data) => {
      buffer += data.toString();
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const message = JSON.parse(buffer.slice(0, nl)) as { execute: string; id?: string; arguments?: unknown };
        buffer = buffer.slice(nl + 1);
        received.push(message);
        const reply = message.execute === 'qmp_capabilities' ? { return: {} } : handler(message.execute, message.arguments, socket);
        if (reply !== undefined) socket.write(JSON.stringify({ ...(reply as object), id: message.id }) + '\n');
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    received,
    sockets,
    send: (socket, text) => socket.write(text),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
