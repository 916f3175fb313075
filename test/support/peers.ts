/** Two daemons' peer halves on loopback (identity, trust store, listener), for channel and transfer tests. */
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { listenPeer, type PeerHandlers, type PeerListener } from '../../src/peer/channel.js';
import { ensureIdentity, type Identity } from '../../src/peer/identity.js';
import { TrustStore, type TrustedPeer } from '../../src/peer/trust.js';
import { useTempDir } from './temp-dir.js';

export interface TestDaemon {
  readonly identity: Identity;
  readonly trust: TrustStore;
  readonly dir: string;
}

export function handlers(overrides: Partial<PeerHandlers> = {}): PeerHandlers & { rejections: string[] } {
  const rejections: string[] = [];
  return {
    rejections,
    control: async (peer, request) => ({ echo: request.method, from: peer.name }),
    base: () => undefined,
    dataset: () => undefined,
    stream: () => undefined,
    rejected: (reason) => rejections.push(reason),
    ...overrides,
  };
}

/** Daemons in a temp dir made for the file; their listeners close after each test. */
export function usePeers(prefix: string) {
  const tempDir = useTempDir(prefix);
  const listeners: PeerListener[] = [];
  afterEach(async () => {
    for (const listener of listeners.splice(0)) await listener.close();
  });
  let counter = 0;
  const daemon = async (): Promise<TestDaemon> => {
    const dir = join(tempDir(), `d${counter++}`);
    return { identity: await ensureIdentity(dir, 'test'), trust: await TrustStore.open(join(dir, 'trust.json')), dir };
  };
  const serve = async (target: TestDaemon, h: PeerHandlers): Promise<number> => {
    const listener = await listenPeer(target.identity, target.trust, '127.0.0.1', 0, h);
    listeners.push(listener);
    return listener.port;
  };
  /** A source that trusts a target serving `h` as `dst`, and is trusted by it as `src`. */
  const pair = async (h: PeerHandlers): Promise<{ source: TestDaemon; target: TestDaemon; peer: TrustedPeer }> => {
    const [source, target] = [await daemon(), await daemon()];
    const port = await serve(target, h);
    await target.trust.add('src', source.identity.cert, '127.0.0.1:1');
    return { source, target, peer: await source.trust.add('dst', target.identity.cert, `127.0.0.1:${port}`) };
  };
  return { tempDir, daemon, serve, pair };
}
