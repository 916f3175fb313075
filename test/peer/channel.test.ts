import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PeerError, PeerRequestError, TrustError, UnreachableError } from '../../src/errors.js';
import { ControlClient, dialPeer } from '../../src/peer/channel.js';
import { proxyToPeer, spliceToLocal } from '../../src/peer/transfer.js';
import { handlers, usePeers } from '../support/peers.js';

const { daemon, serve, pair } = usePeers('peer');

describe('the peer channel (mutual TLS, pinned certificates)', () => {
  it('answers control requests between two peers that trust each other', async () => {
    const { source, peer } = await pair(handlers());
    const client = await ControlClient.open(peer, source.identity);
    expect(await client.request({ method: 'abort', migration: 'm1' })).toEqual({ echo: 'abort', from: 'src' });
    client.close();
  });

  it('refuses a client whose certificate is not pinned, before any request', async () => {
    const [source, target, stranger] = [await daemon(), await daemon(), await daemon()];
    const h = handlers();
    const port = await serve(target, h);
    await target.trust.add('src', source.identity.cert, '127.0.0.1:1');
    const peer = await stranger.trust.add('dst', target.identity.cert, `127.0.0.1:${port}`);
    const client = await ControlClient.open(peer, stranger.identity);
    await expect(client.request({ method: 'abort', migration: 'm1' }, { timeoutMs: 5000 })).rejects.toBeInstanceOf(PeerRequestError);
    expect(h.rejections[0]).toMatch(/^untrusted or expired certificate /);
  });

  it('refuses a server whose certificate is not the pinned one', async () => {
    const [source, target, impostor] = [await daemon(), await daemon(), await daemon()];
    const port = await serve(impostor, handlers());
    await impostor.trust.add('src', source.identity.cert, '127.0.0.1:1');
    const peer = await source.trust.add('dst', target.identity.cert, `127.0.0.1:${port}`);
    await expect(dialPeer(peer, source.identity, { type: 'hello', kind: 'control' })).rejects.toBeInstanceOf(TrustError);
  });

  it('names the peer and its address when nothing answers there, keeping the socket\'s code', async () => {
    const [source, target] = [await daemon(), await daemon()];
    // A port that was just free: nothing listens on it.
    const free = createServer();
    const port = await new Promise<number>((resolve) => free.listen(0, '127.0.0.1', () => resolve((free.address() as { port: number }).port)));
    await new Promise((resolve) => free.close(resolve));
    const peer = await source.trust.add('dst2', target.identity.cert, `127.0.0.1:${port}`);
    const dialled = dialPeer(peer, source.identity, { type: 'hello', kind: 'control' });
    await expect(dialled).rejects.toBeInstanceOf(UnreachableError);
    await expect(dialled).rejects.toMatchObject({ code: 'ECONNREFUSED', message: expect.stringMatching(new RegExp(`^peer dst2 \\(127\\.0\\.0\\.1:${port}\\) cannot be reached: connect ECONNREFUSED`)) as unknown });
  });

  it('treats an expired certificate as untrusted, and refuses to pin one', async () => {
    const source = await daemon();
    const target = await daemon();
    await source.trust.add('dst', target.identity.cert, '127.0.0.1:1');
    const cert = new X509Certificate(target.identity.cert);
    expect(source.trust.verify(cert)?.name).toBe('dst');
    expect(source.trust.verify(cert, new Date(Date.parse(cert.validTo) + 1000))).toBeUndefined();
    await expect(source.trust.add('dup', target.identity.cert, '127.0.0.1:2')).rejects.toThrow('that certificate is already trusted');
    await expect(source.trust.add('bad', 'not a certificate', '127.0.0.1:2')).rejects.toThrow('Expected `certificate` to be a PEM certificate');
    await expect(source.trust.add('x y', target.identity.cert, '127.0.0.1:2')).rejects.toThrow('Expected `name`');
    await expect(source.trust.add('z', target.identity.cert, 'nohost')).rejects.toThrow('Expected `address` to be a `host:port` address, got `nohost`');
  });

  it('splices a local stream through the channel to a unix socket on the target', async () => {
    const [source, target] = [await daemon(), await daemon()];
    const echoPath = join(target.dir, 'echo.sock');
    const echo = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(echoPath, resolve));
    const port = await serve(target, handlers({ stream: (_peer, _hello, socket) => spliceToLocal(socket, echoPath) }));
    await target.trust.add('src', source.identity.cert, '127.0.0.1:1');
    const peer = await source.trust.add('dst', target.identity.cert, `127.0.0.1:${port}`);
    const counted: unknown[] = [];
    const proxy = await proxyToPeer(join(source.dir, 'nbd.sock'), peer, source.identity, 'm1', 'nbd', (socket) => counted.push(socket));
    const { connect } = await import('node:net');
    const local = connect(proxy.path);
    const payload = Buffer.alloc(2 * 1024 * 1024, 7);
    const back: Buffer[] = [];
    let total = 0;
    await new Promise<void>((resolve) => {
      local.on('data', (chunk: Buffer) => {
        back.push(chunk);
        total += chunk.length;
        if (total >= payload.length) resolve();
      });
      local.write(payload);
    });
    expect(Buffer.concat(back).equals(payload)).toBe(true);
    expect(counted).toHaveLength(1);
    local.destroy();
    await proxy.close();
    echo.close();
  });

  it('stops waiting for an answer the moment its signal aborts, and answers later requests', async () => {
    const { source, peer } = await pair(handlers({ control: (_peer, request) => (request.method === 'prepare' ? new Promise(() => undefined) : Promise.resolve({ echo: request.method })) }));
    const client = await ControlClient.open(peer, source.identity);
    const controller = new AbortController();
    const vm = { name: 'g1', memoryMiB: 64, vcpus: 1, disks: [{ id: 'd0', nodeName: 'n0', format: 'raw' as const, virtualSize: 1 }] };
    const started = Date.now();
    const prepare = client.request({ method: 'prepare', migration: 'm1', vm }, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('cancelled by request')), 50);
    await expect(prepare).rejects.toThrow('cancelled by request');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await client.request({ method: 'abort', migration: 'm1' })).toEqual({ echo: 'abort' });
    client.close();
  });

  it('reports a refusal from the peer as a PeerError with its reason', async () => {
    const { source, peer } = await pair(handlers({ control: async () => { throw new Error('unknown migration m9'); } }));
    const client = await ControlClient.open(peer, source.identity);
    const error = await client.request({ method: 'finish', migration: 'm9' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PeerError);
    expect((error as Error).message).toBe('peer dst: unknown migration m9');
    client.close();
  });
});
