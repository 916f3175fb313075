import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { PeerRequestError } from '../../src/errors.js';
import { abortUntilHeard } from '../../src/migration/abandon.js';
import { listenPeer } from '../../src/peer/channel.js';
import { handlers, usePeers } from '../support/peers.js';

const { daemon, pair } = usePeers('abandon');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('telling a target a migration was rolled back', () => {
  it('asks again while the target cannot be reached, until it answers', async () => {
    const [source, target] = [await daemon(), await daemon()];
    const port = await freePort();
    await target.trust.add('src', source.identity.cert, '127.0.0.1:1');
    const peer = await source.trust.add('dst', target.identity.cert, `127.0.0.1:${port}`);
    const heard = abortUntilHeard(peer, source.identity, 'm1', AbortSignal.timeout(15_000), 50);
    await sleep(400);
    const asks: string[] = [];
    const listener = await listenPeer(target.identity, target.trust, '127.0.0.1', port, handlers({ control: async (_peer, request) => void asks.push(`${request.method} ${(request as { migration: string }).migration}`) }));
    try {
      expect(await heard).toBeGreaterThan(2);
      expect(asks).toEqual(['abort m1']);
    } finally {
      await listener.close();
    }
  });

  it('stops at a refusal: a target that runs the guest never takes an abort', async () => {
    const { source, peer } = await pair(handlers({ control: () => Promise.reject(new Error('migration m2 arrived: the guest runs on this host and cannot be aborted')) }));
    await expect(abortUntilHeard(peer, source.identity, 'm2', AbortSignal.timeout(15_000), 50)).rejects.toBeInstanceOf(PeerRequestError);
  });

  it('stops when the daemon does', async () => {
    const { source } = await pair(handlers());
    const dead = await source.trust.add('gone', (await daemon()).identity.cert, `127.0.0.1:${await freePort()}`);
    await expect(abortUntilHeard(dead, source.identity, 'm3', AbortSignal.timeout(300), 50)).rejects.toThrow(/timeout|aborted/i);
  });
});
