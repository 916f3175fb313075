import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.js';
import { ControlClient } from '../../src/peer/channel.js';
import { decodeToken, encodeToken } from '../../src/peer/tokens.js';
import type { TrustedPeer } from '../../src/peer/trust.js';
import { cli, dirDaemon } from '../support/daemons.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('tokens');
const daemons: Record<'a' | 'b' | 'c', Daemon> = {} as never;

const daemon = (name: string) => dirDaemon(tempDir(), name);

beforeAll(async () => {
  daemons.a = await daemon('a');
  daemons.b = await daemon('b');
  daemons.c = await daemon('c');
});
afterAll(async () => {
  for (const d of Object.values(daemons)) await d.close();
});

const peers = async (on: Daemon) => JSON.parse((await cli(on, 'trust', 'list', '--format', 'json')).stdout) as Array<{ name: string; fingerprint: string; address: string }>;

describe('one-time trust tokens (real TLS handshakes between two daemons)', () => {
  it('a token issued on one host makes both hosts trust each other, and then they talk', async () => {
    const issued = await cli(daemons.a, 'trust', 'token', 'host-b');
    expect(issued.code).toBe(0);
    expect(issued.stderr).toMatch(/^one-time token for host-b, valid until \d{4}-/);
    const token = issued.stdout.trim();
    expect(decodeToken(token).fingerprint).toBe(daemons.a.identity.fingerprint);
    expect((await cli(daemons.a, 'trust', 'token', 'host-b')).stderr).toContain('a token for host-b is already pending');

    const joined = await cli(daemons.b, 'trust', 'add', 'host-a', '--token', token);
    expect(joined).toMatchObject({ code: 0, stderr: '' });
    expect(joined.stdout).toMatch(/^trusted host-a at 127\.0\.0\.1:\d+ \(/);
    const [onA, onB] = [await peers(daemons.a), await peers(daemons.b)];
    expect(onA).toEqual([expect.objectContaining({ name: 'host-b', fingerprint: daemons.b.identity.fingerprint, address: `127.0.0.1:${daemons.b.engine.peerPort}` })]);
    expect(onB).toEqual([expect.objectContaining({ name: 'host-a', fingerprint: daemons.a.identity.fingerprint, address: `127.0.0.1:${daemons.a.engine.peerPort}` })]);

    // Both directions now pass the pinned mutual-TLS check: an `abort` of nothing is answered.
    for (const [from, to] of [['b', 'host-a'], ['a', 'host-b']] as const) {
      const daemon = daemons[from];
      const client = await ControlClient.open(daemon.trust.get(to) as TrustedPeer, daemon.identity);
      await expect(client.request({ method: 'abort', migration: 'nothing' })).resolves.toBeUndefined();
      client.close();
    }
    expect(JSON.parse((await cli(daemons.a, 'trust', 'list', '--format', 'json')).stdout)).toHaveLength(1);
  });

  it('a token works once', async () => {
    const token = (await cli(daemons.a, 'trust', 'token', 'once')).stdout.trim();
    expect((await cli(daemons.c, 'trust', 'add', 'a1', '--token', token)).code).toBe(0);
    const again = await cli(daemons.c, 'trust', 'add', 'a2', '--token', token);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/refused the token: unknown or already used trust token/);
    expect((await peers(daemons.c)).map((p) => p.name)).toEqual(['a1']);
    await cli(daemons.c, 'trust', 'remove', 'a1');
    await cli(daemons.a, 'trust', 'remove', 'once');
  });

  it('an expired token is refused and trusts nobody', async () => {
    const token = (await cli(daemons.a, 'trust', 'token', 'late', '--expiry', '1')).stdout.trim();
    await sleep(1100);
    const late = await cli(daemons.c, 'trust', 'add', 'a3', '--token', token);
    expect(late.stderr).toMatch(/trust token for late expired at/);
    expect(await peers(daemons.c)).toEqual([]);
    expect((await peers(daemons.a)).map((p) => p.name)).not.toContain('late');
  });

  it('a token whose fingerprint is not the listener’s certificate is refused before the secret is sent', async () => {
    const real = decodeToken((await cli(daemons.a, 'trust', 'token', 'mitm')).stdout.trim());
    // The address of one host, the fingerprint of another: what an impostor at that address looks like.
    const forged = encodeToken({ ...real, fingerprint: daemons.b.identity.fingerprint });
    const result = await cli(daemons.c, 'trust', 'add', 'a4', '--token', forged);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`presented certificate ${daemons.a.identity.fingerprint}, not the pinned ${daemons.b.identity.fingerprint}`);
    // The secret never reached the issuer, so the real token still works.
    expect((await cli(daemons.c, 'trust', 'add', 'a4', '--token', encodeToken(real))).code).toBe(0);
  });

  it.each([
    ['junk', 'Expected `token` to be a token printed by `cowbuf trust token`'],
    [Buffer.from('{"addresses":[],"fingerprint":"x","secret":"y"}').toString('base64url'), 'Expected `token.addresses` to be an array of at least 1 item(s)'],
    [Buffer.from('{"addresses":["nowhere"],"fingerprint":"x","secret":"y"}').toString('base64url'), 'Expected `token.addresses[0]` to be a `host:port` address, got `nowhere`'],
  ])('a malformed token %# is refused naming the bad part', async (token, message) => {
    const result = await cli(daemons.c, 'trust', 'add', 'bad', '--token', token);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(message);
  });

  it('names reserved for API paths are refused', async () => {
    const result = await cli(daemons.a, 'trust', 'token', 'tokens');
    expect(result.stderr).toContain('Expected `name` to be a name other than tokens, join, got `tokens`');
  });
});
