import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerRequestError, TrustError } from '../../src/errors.js';
import { run } from '../../src/exec/run.js';
import { ControlClient, dialPeer, listenPeer, type PeerListener } from '../../src/peer/channel.js';
import { ensureIdentity, fingerprintOf, type Identity } from '../../src/peer/identity.js';
import { TrustStore, type TrustedPeer } from '../../src/peer/trust.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('expired');
const listeners: PeerListener[] = [];
afterEach(async () => {
  for (const listener of listeners.splice(0)) await listener.close();
});

/** A key and a self-signed certificate valid only on 1 January 2020 (openssl ca can backdate). */
async function expiredIdentity(): Promise<Identity> {
  const dir = join(tempDir(), 'old');
  await mkdir(join(dir, 'db'), { recursive: true });
  await writeFile(join(dir, 'db', 'index.txt'), '');
  await writeFile(join(dir, 'db', 'serial'), '01\n');
  await writeFile(join(dir, 'ca.cnf'), `[ca]\ndefault_ca = c\n[c]\ndatabase = ${dir}/db/index.txt\nserial = ${dir}/db/serial\nnew_certs_dir = ${dir}\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n`);
  await run('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'key.pem')]);
  await run('openssl', ['req', '-new', '-key', join(dir, 'key.pem'), '-subj', '/CN=cowbuf-old', '-out', join(dir, 'req.csr')]);
  await run('openssl', ['ca', '-batch', '-config', join(dir, 'ca.cnf'), '-selfsign', '-keyfile', join(dir, 'key.pem'), '-in', join(dir, 'req.csr'), '-out', join(dir, 'cert.pem'), '-startdate', '20200101000000Z', '-enddate', '20200102000000Z']);
  const cert = await readFile(join(dir, 'cert.pem'), 'utf8');
  return { key: await readFile(join(dir, 'key.pem'), 'utf8'), cert, fingerprint: fingerprintOf(cert) };
}

/** A trust store that pinned `cert` back when it was valid (add() refuses an expired one now). */
async function storePinning(name: string, cert: string, address: string): Promise<{ trust: TrustStore; peer: TrustedPeer }> {
  const path = join(tempDir(), `${name}-trust.json`);
  const x509 = new X509Certificate(cert);
  const peer: TrustedPeer = { name, fingerprint: x509.fingerprint256, cert: x509.toString(), address, notAfter: x509.validTo };
  await writeFile(path, JSON.stringify([peer]));
  return { trust: await TrustStore.open(path), peer };
}

const handlers = (rejections: string[]) => ({ control: async () => ({ ok: 1 }), base: () => undefined, dataset: () => undefined, stream: () => undefined, rejected: (reason: string) => void rejections.push(reason) });

describe('an expired certificate, even a pinned one, fails the real TLS handshake', () => {
  it('a client presenting it is refused before any request', async () => {
    const old = await expiredIdentity();
    expect(new Date(new X509Certificate(old.cert).validTo) < new Date()).toBe(true);
    const server = await ensureIdentity(join(tempDir(), 'server'), 'server');
    const rejections: string[] = [];
    const { trust } = await storePinning('old', old.cert, '127.0.0.1:1');
    const listener = await listenPeer(server, trust, '127.0.0.1', 0, handlers(rejections));
    listeners.push(listener);
    const { peer } = await storePinning('server', server.cert, `127.0.0.1:${listener.port}`);
    const client = await ControlClient.open(peer, old);
    await expect(client.request({ method: 'abort', migration: 'm' }, { timeoutMs: 5000 })).rejects.toBeInstanceOf(PeerRequestError);
    client.close();
    expect(rejections).toEqual([`untrusted or expired certificate ${old.fingerprint}`]);
  });

  it('a server presenting it is refused by the client, naming the expiry', async () => {
    const old = await expiredIdentity();
    const client = await ensureIdentity(join(tempDir(), 'client'), 'client');
    const { trust } = await storePinning('client', client.cert, '127.0.0.1:1');
    const listener = await listenPeer(old, trust, '127.0.0.1', 0, handlers([]));
    listeners.push(listener);
    const { peer } = await storePinning('old', old.cert, `127.0.0.1:${listener.port}`);
    const dialing = dialPeer(peer, client, { type: 'hello', kind: 'control' });
    await expect(dialing).rejects.toBeInstanceOf(TrustError);
    await expect(dialing).rejects.toThrow(`(expired ${new X509Certificate(old.cert).validTo})`);
  });
});
