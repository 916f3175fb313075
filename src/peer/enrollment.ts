/**
 * Making two daemons trust each other with a one-time token (tokens.ts): issuing on one side,
 * joining from the other, and answering a join at the peer listener.
 */
import type { X509Certificate } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { CowbufError, TrustError } from '../errors.js';
import { joinPeer } from './channel.js';
import type { Identity } from './identity.js';
import type { Hello } from './protocol.js';
import { decodeToken, TokenStore } from './tokens.js';
import type { TrustStore, TrustedPeer } from './trust.js';

export interface EnrollmentOptions {
  readonly stateDir: string;
  readonly identity: Identity;
  readonly trust: TrustStore;
  /** The configured listen host (a wildcard means every non-loopback address). */
  readonly listenHost: string;
  /** The port the peer listener actually has. */
  readonly port: () => number;
  readonly log: (message: string) => void;
}

export class Enrollment {
  private store: TokenStore | undefined;

  constructor(private readonly options: EnrollmentOptions) {}

  async open(): Promise<void> {
    this.store = await TokenStore.open(join(this.options.stateDir, 'tokens.json'));
  }

  private get tokens(): TokenStore {
    if (!this.store) throw new CowbufError('the engine is not started');
    return this.store;
  }

  /** Where peers reach us. */
  addresses(): string[] {
    const host = this.options.listenHost;
    const wildcard = host === '0.0.0.0' || host === '::' || host === '';
    const hosts = wildcard ? Object.values(networkInterfaces()).flatMap((entries) => (entries ?? []).filter((entry) => !entry.internal && entry.family === 'IPv4').map((entry) => entry.address)) : [host];
    return hosts.map((address) => (address.includes(':') ? `[${address}]:${this.options.port()}` : `${address}:${this.options.port()}`));
  }

  pending(): ReadonlyArray<{ name: string; expiresAt: string }> {
    return this.tokens.list();
  }

  /** A one-time token the peer called `name` here joins with (`cowbuf trust add NAME --token`). */
  issue(name: string, expirySeconds: number): Promise<{ token: string; expiresAt: string }> {
    return this.tokens.issue(name, expirySeconds, { fingerprint: this.options.identity.fingerprint, addresses: this.addresses() });
  }

  /**
   * Joins the peer that issued `token`, trusting it here as `name`.
   * @throws ValidationError (bad token or name), TrustError (wrong certificate, token refused)
   */
  async join(name: string, token: string): Promise<TrustedPeer> {
    const decoded = decodeToken(token);
    if (this.options.trust.get(name)) throw new TrustError(`a peer named ${name} is already trusted`);
    const { cert, address } = await joinPeer(decoded, this.options.identity, this.options.port());
    return this.options.trust.add(name, cert, address);
  }

  /** The peer listener's side of a join. @throws TrustError for a spent, unknown or expired token */
  async answer(cert: X509Certificate, hello: Extract<Hello, { kind: 'join' }>, remoteAddress: string): Promise<void> {
    const name = await this.tokens.consume(hello.secret);
    const host = remoteAddress.replace(/^::ffff:/, '');
    await this.options.trust.add(name, cert.toString(), `${host.includes(':') ? `[${host}]` : host}:${hello.port}`);
    this.options.log(`peer ${name} joined with a trust token (${cert.fingerprint256})`);
  }
}
