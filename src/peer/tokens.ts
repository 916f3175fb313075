/**
 * One-time trust tokens, LXD-style: the issuing daemon prints a token carrying its peer
 * addresses, its certificate fingerprint and a random secret; the joining daemon dials an
 * address, pins the certificate against that fingerprint (so nobody in between can pose as the
 * issuer) and proves it holds the secret; both then trust each other's certificate. A token works
 * once and expires. Only a SHA-256 of each secret is kept on disk.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { TrustError, ValidationError } from '../errors.js';
import { checkName } from '../exec/run.js';
import { readState, writeState } from '../state-file.js';
import { array, object, string } from '../validate.js';
import { checkAddress } from './trust.js';

export interface Token {
  readonly addresses: readonly string[];
  readonly fingerprint: string;
  readonly secret: string;
}

interface Pending {
  /** The name the joining peer gets here. */
  readonly name: string;
  readonly hash: string;
  readonly expiresAt: string;
}

const FINGERPRINT = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;
const SECRET = /^[0-9a-f]{64}$/;

const digest = (secret: string) => createHash('sha256').update(secret).digest('hex');

export function encodeToken(token: Token): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

/** @throws ValidationError naming what is wrong with the token */
export function decodeToken(text: string): Token {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(text.trim(), 'base64url').toString('utf8'));
  } catch {
    throw new ValidationError('token', text.slice(0, 24), 'a token printed by `cowbuf trust token`');
  }
  const body = object('token', raw, ['addresses', 'fingerprint', 'secret']);
  return {
    addresses: array('token.addresses', body.addresses, 1).map((address, index) => checkAddress(`token.addresses[${index}]`, string(`token.addresses[${index}]`, address))),
    fingerprint: string('token.fingerprint', body.fingerprint, FINGERPRINT, 'a SHA-256 certificate fingerprint'),
    secret: string('token.secret', body.secret, SECRET, '64 hex digits'),
  };
}

export class TokenStore {
  private pending: Pending[] = [];
  private constructor(private readonly path: string) {}

  static async open(path: string): Promise<TokenStore> {
    const store = new TokenStore(path);
    store.pending = await readState<Pending[]>(path, []);
    return store;
  }

  list(now = new Date()): ReadonlyArray<{ name: string; expiresAt: string }> {
    return this.pending.filter((entry) => new Date(entry.expiresAt) > now).map(({ name, expiresAt }) => ({ name, expiresAt }));
  }

  /** @throws ValidationError (bad name), TrustError (a token for that name is pending) */
  async issue(name: string, expirySeconds: number, own: { readonly fingerprint: string; readonly addresses: readonly string[] }, now = new Date()): Promise<{ token: string; expiresAt: string }> {
    checkName('name', name);
    if (this.list(now).some((entry) => entry.name === name)) throw new TrustError(`a token for ${name} is already pending`);
    const secret = randomBytes(32).toString('hex');
    const expiresAt = new Date(now.getTime() + expirySeconds * 1000).toISOString();
    this.pending = [...this.pending.filter((entry) => new Date(entry.expiresAt) > now), { name, hash: digest(secret), expiresAt }];
    await this.save();
    return { token: encodeToken({ addresses: own.addresses, fingerprint: own.fingerprint, secret }), expiresAt };
  }

  /**
   * Spends the token whose secret this is: it cannot be used again.
   * @returns the name the joining peer gets
   * @throws TrustError for an unknown, spent or expired secret
   */
  async consume(secret: string, now = new Date()): Promise<string> {
    const hash = Buffer.from(digest(secret), 'hex');
    const entry = this.pending.find((candidate) => timingSafeEqual(Buffer.from(candidate.hash, 'hex'), hash));
    if (!entry) throw new TrustError('unknown or already used trust token');
    this.pending = this.pending.filter((candidate) => candidate !== entry);
    await this.save();
    if (new Date(entry.expiresAt) <= now) throw new TrustError(`trust token for ${entry.name} expired at ${entry.expiresAt}`);
    return entry.name;
  }

  private save(): Promise<void> {
    return writeState(this.path, this.pending);
  }
}
