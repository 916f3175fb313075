/**
 * A daemon's own identity: an EC P-256 key and a self-signed certificate, made once with
 * `openssl` (through the subprocess chokepoint) and kept in the state directory. Peers pin its
 * SHA-256 fingerprint (`cowbuf trust add`).
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { run } from '../exec/run.js';

export interface Identity {
  readonly key: string;
  readonly cert: string;
  readonly fingerprint: string;
}

export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

export async function ensureIdentity(dir: string, name = hostname()): Promise<Identity> {
  const keyPath = join(dir, 'server.key');
  const certPath = join(dir, 'server.crt');
  const present = await stat(certPath).then(() => true, () => false);
  if (!present) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const subject = `/CN=cowbuf-${name.replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 40)}`;
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '3650', '-subj', subject], { timeoutMs: 30_000 });
  }
  const [key, cert] = await Promise.all([readFile(keyPath, 'utf8'), readFile(certPath, 'utf8')]);
  return { key, cert, fingerprint: fingerprintOf(cert) };
}
