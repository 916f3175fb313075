/**
 * Trusted peers: certificates an admin added explicitly (`cowbuf trust add NAME CERT`), pinned by
 * SHA-256 fingerprint. A connection is accepted only from a trusted, unexpired certificate.
 */
import { X509Certificate } from 'node:crypto';
import { TrustError, ValidationError } from '../errors.js';
import { checkName } from '../exec/run.js';
import { readState, writeState } from '../state-file.js';

export interface TrustedPeer {
  readonly name: string;
  readonly fingerprint: string;
  readonly cert: string;
  /** Where its peer API listens (`host:port`), used when we are the source. */
  readonly address: string;
  readonly notAfter: string;
}

const ADDRESS = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

export function checkAddress(field: string, address: string): string {
  const match = ADDRESS.exec(address);
  if (!match || Number(match[3]) < 1 || Number(match[3]) > 65535) throw new ValidationError(field, address, 'a `host:port` address');
  return address;
}

/** A checked `host:port` address taken apart (an IPv6 host without its brackets). */
export function hostPort(address: string): { readonly host: string; readonly port: number } {
  const separator = address.lastIndexOf(':');
  return { host: address.slice(0, separator).replace(/^\[|\]$/g, ''), port: Number(address.slice(separator + 1)) };
}

export class TrustStore {
  private peers: TrustedPeer[] = [];
  private constructor(private readonly path: string) {}

  static async open(path: string): Promise<TrustStore> {
    const store = new TrustStore(path);
    store.peers = await readState<TrustedPeer[]>(path, []);
    return store;
  }

  list(): readonly TrustedPeer[] {
    return this.peers;
  }

  get(name: string): TrustedPeer | undefined {
    return this.peers.find((peer) => peer.name === name);
  }

  /** The trusted peer holding this certificate, if it is trusted and valid now. */
  verify(cert: X509Certificate, now = new Date()): TrustedPeer | undefined {
    const peer = this.peers.find((candidate) => candidate.fingerprint === cert.fingerprint256);
    if (!peer) return undefined;
    if (new Date(cert.validTo) < now || new Date(cert.validFrom) > now) return undefined;
    return peer;
  }

  /** @throws ValidationError (bad name, address or certificate), TrustError (name or cert already trusted) */
  async add(name: string, certPem: string, address: string): Promise<TrustedPeer> {
    checkName('name', name);
    checkAddress('address', address);
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
    } catch (error) {
      throw new ValidationError('certificate', certPem.slice(0, 30), 'a PEM certificate', { cause: error });
    }
    if (new Date(cert.validTo) < new Date()) throw new ValidationError('certificate', cert.validTo, 'a certificate that has not expired');
    if (this.get(name)) throw new TrustError(`a peer named ${name} is already trusted`);
    if (this.peers.some((peer) => peer.fingerprint === cert.fingerprint256)) throw new TrustError(`that certificate is already trusted`);
    const peer: TrustedPeer = { name, fingerprint: cert.fingerprint256, cert: cert.toString(), address, notAfter: cert.validTo };
    this.peers = [...this.peers, peer];
    await this.save();
    return peer;
  }

  /** @throws TrustError when no such peer */
  async remove(name: string): Promise<void> {
    if (!this.get(name)) throw new TrustError(`no trusted peer named ${name}`);
    this.peers = this.peers.filter((peer) => peer.name !== name);
    await this.save();
  }

  private save(): Promise<void> {
    return writeState(this.path, this.peers);
  }
}
