import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import { SocketStatsError, sendQueue, tcpInfo } from '../../src/monitor/socket-stats.js';

let server: Server | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A loopback connection whose receiver reads (`drain`) or stalls (`stall`). */
async function pair(mode: 'drain' | 'stall'): Promise<Socket> {
  const listening = createServer((peer) => {
    sockets.push(peer);
    if (mode === 'stall') peer.pause();
    else peer.resume();
  });
  server = listening;
  await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
  const port = (listening.address() as { port: number }).port;
  const client = connect(port, '127.0.0.1');
  sockets.push(client);
  await new Promise((resolve) => client.once('connect', resolve));
  return client;
}

/** `ss -tin` for the one connection from this local port: its counters, keyed by name. */
async function ss(socket: Socket): Promise<{ fields: Map<string, string>; sendQ: number }> {
  const { stdout } = await run('ss', ['-tin', 'src', `127.0.0.1:${socket.localPort}`]);
  const lines = stdout.split('\n').filter(Boolean);
  const head = (lines[1] ?? '').trim().split(/\s+/);
  const fields = new Map<string, string>();
  for (const token of (lines[2] ?? '').trim().split(/\s+/)) {
    const colon = token.indexOf(':');
    if (colon > 0) fields.set(token.slice(0, colon), token.slice(colon + 1));
  }
  return { fields, sendQ: Number(head[2]) };
}

describe('native socket statistics (koffi)', () => {
  it('TCP_INFO agrees with `ss -tin` on a quiescent connection', async () => {
    const socket = await pair('drain');
    await new Promise<void>((resolve) => socket.write(Buffer.alloc(3 * 1024 * 1024, 1), () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const info = tcpInfo(socket);
    const { fields } = await ss(socket);
    expect(info.bytesAcked).toBe(BigInt(fields.get('bytes_acked') ?? '-1'));
    expect(info.bytesSent).toBe(BigInt(fields.get('bytes_sent') ?? '-1'));
    expect(info.bytesAcked).toBeGreaterThanOrEqual(3n * 1024n * 1024n);
    const [rtt] = (fields.get('rtt') ?? '').split('/');
    expect(info.rttUs / 1000).toBeCloseTo(Number(rtt), 2);
    expect(typeof info.deliveryRate).toBe('bigint');
  });

  it('SIOCOUTQ and notsent agree with ss on a stalled receiver', async () => {
    const socket = await pair('stall');
    socket.write(Buffer.alloc(16 * 1024 * 1024, 2));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const queue = sendQueue(socket);
    const info = tcpInfo(socket);
    const view = await ss(socket);
    expect(queue.queued).toBeGreaterThan(0);
    expect(queue.queued).toBe(view.sendQ);
    expect(queue.notSent).toBe(info.notSentBytes);
    expect(String(info.notSentBytes)).toBe(view.fields.get('notsent') ?? '0');
  });

  it('fails with a clear error on a closed socket', async () => {
    const socket = await pair('drain');
    socket.destroy();
    expect(() => tcpInfo(socket)).toThrow(SocketStatsError);
    expect(() => sendQueue(socket)).toThrow('socket is closed (no file descriptor)');
  });
});
