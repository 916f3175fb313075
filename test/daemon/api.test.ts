import { stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import fc from 'fast-check';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { ENDPOINTS } from '../../src/daemon/endpoints.js';
import { openVolume } from '../../src/storage/registry.js';
import { pino } from 'pino';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('api');
let daemon: Daemon;
let socket: string;

beforeAll(async () => {
  const stateDir = join(tempDir(), 'state');
  await openVolume({ driver: 'dir', path: join(stateDir, 'buffer') }).create(64 * 1024 ** 2);
  const config = join(tempDir(), 'cowbuf.yaml');
  await writeFile(config, `stateDir: ${stateDir}\nbuffer:\n  driver: dir\n  size: 64MiB\ndaemon:\n  peerListen: 127.0.0.1:${20000 + (process.pid % 20000)}\n`);
  daemon = await startDaemon(config, pino({ level: 'silent' }));
  socket = daemon.config.daemon.socket;
});
afterAll(async () => {
  await daemon.close();
});

function call(method: string, path: string, body?: string): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => {
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // metrics are text
        }
        resolve({ status: res.statusCode ?? 0, json, text });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const json = (value: unknown) => JSON.stringify(value);

describe('the REST API over the real unix socket', () => {
  it('answers in LXD envelopes and guards its socket with mode 0660', async () => {
    const info = await call('GET', '/1.0');
    expect(info.status).toBe(200);
    expect(info.json).toMatchObject({ type: 'sync', status: 'Success', status_code: 200, metadata: { api_version: '1.0', fingerprint: expect.stringMatching(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/) } });
    expect((await stat(socket)).mode & 0o777).toBe(0o660);
    expect(await call('GET', '/1.0/nothing')).toMatchObject({ status: 404, json: { type: 'error', error: 'no such endpoint /1.0/nothing', error_code: 404 } });
    expect(await call('PUT', '/1.0/migrations')).toMatchObject({ status: 405, json: { error: 'method PUT not allowed on /1.0/migrations' } });
  });

  it.each([
    ['POST', '/1.0/migrations', json({ vm: 'g1', target: 'dst', colour: 'red' }), 400, 'Expected `body.colour` to be absent (unknown field; known: vm, target, policy), got `colour`'],
    ['POST', '/1.0/migrations', json({ vm: 5, target: 'dst' }), 400, 'Expected `vm` to be a non-empty string, got `5`'],
    ['POST', '/1.0/migrations', json({ vm: 'nope', target: 'dst' }), 400, "Expected `vm` to be one of this host's VMs (none), got `nope`"],
    ['POST', '/1.0/migrations', json({ target: 'dst' }), 400, 'Expected `body.vm` to be present (required field), got nothing'],
    ['POST', '/1.0/migrations', '{"vm": ', 400, 'Expected `body` to be a JSON object, got `{"vm": `'],
    ['POST', '/1.0/migrations', '[]', 400, 'Expected `body` to be an object, got an empty array'],
    ['GET', '/1.0/migrations/nope', undefined, 404, 'unknown migration "nope"'],
    ['DELETE', '/1.0/migrations/nope', undefined, 404, 'unknown migration "nope"'],
    ['PATCH', '/1.0/buffer', json({ size: -1 }), 400, 'Expected `size` to be a size such as `10GiB`'],
    ['PATCH', '/1.0/buffer', json({ size: '10XB' }), 400, 'Expected `size` to be a size such as `10GiB`'],
    ['PATCH', '/1.0/buffer', json({ size: 0 }), 400, 'Expected `size` to be a positive size'],
    ['PATCH', '/1.0/buffer', json({ size: '5PiB' }), 400, 'Expected `size` to be a size such as `10GiB`'],
    ['PATCH', '/1.0/buffer', json({ size: '4000TiB' }), 409, 'cannot hold'],
    ['POST', '/1.0/peers', json({ name: 'p', certificate: 'junk', address: '10.0.0.1:8443' }), 400, 'Expected `certificate` to be a PEM certificate'],
    ['POST', '/1.0/peers', json({ name: 'p', certificate: 'junk', address: 'nowhere' }), 400, 'Expected `address` to be a `host:port` address, got `nowhere`'],
    ['POST', '/1.0/peers', json({ name: '-rf', certificate: 'junk', address: '10.0.0.1:1' }), 400, 'Expected `name`'],
    ['DELETE', '/1.0/peers/nope', undefined, 404, 'no trusted peer named nope'],
    ['POST', '/1.0/vms', json({ name: 'v', memoryMiB: 64, disks: [] }), 400, 'Expected `disks` to be an array of at least 1 item(s), got an empty array'],
    ['POST', '/1.0/vms', json({ name: 'v', memoryMiB: 64, kernel: 'vmlinuz', disks: [{ id: 'd', file: '/x' }] }), 400, 'Expected `kernel` to be an absolute path, got `vmlinuz`'],
    ['POST', '/1.0/vms', json({ name: 'v', memoryMiB: 64, disks: [{ id: 'a;b', file: '/x' }] }), 400, 'Expected `disks[0].id`'],
    ['POST', '/1.0/vms', json({ name: 'v', memoryMiB: 'lots', disks: [{ id: 'd', file: '/x' }] }), 400, 'Expected `memoryMiB` to be an integer ≥ 16'],
    ['POST', '/1.0/vms', json({ name: 'v', memoryMiB: 64, disks: [{ id: 'd', file: '/x', format: 'vmdk' }] }), 400, 'Expected `disks[0].format` to be one of qcow2, raw, got `vmdk`'],
    ['POST', '/1.0/vms', json({ name: 'v', memoryMiB: 64, disks: [{ id: 'd', file: '/x', size: 1 }] }), 400, 'Expected `disks[0].size` to be absent (unknown field'],
    ['POST', '/1.0/vms', json({ name: 'v', memoryMiB: 64, machine: 'q35', disks: [{ id: 'd', file: '/x' }] }), 400, 'Expected `machine` to be a versioned machine type such as `pc-q35-7.2`'],
    ['POST', '/1.0/vms', json({ name: 'v', memoryMiB: 64, vcpus: 2, cpu: { model: 'qemu64', sockets: 4 }, disks: [{ id: 'd', file: '/x' }] }), 400, 'Expected `vcpus` to be sockets × cores × threads of `cpu` (4 × 1 × 1 = 4'],
    ['POST', '/1.0/vms', json({ name: 'v', memoryMiB: 64, disks: [{ id: 'd', file: '/x' }], nics: [{ id: 'n', mac: 'ff:ff:ff:ff:ff:ff', bridge: 'br0' }] }), 400, 'Expected `nics[0].mac` to be a unicast MAC address'],
    ['DELETE', '/1.0/vms/nope', undefined, 404, 'unknown VM "nope" (this host\'s VMs: none)'],
    ['DELETE', '/1.0/vms/-rf', undefined, 400, 'Expected `name` to be a name of letters, digits'],
    ['DELETE', '/1.0/vms/a%2Fb', undefined, 400, 'Expected `name` to be a name of letters, digits, `_`, `.`, `-` (not starting with `-`, at most 64), got `a/b`'],
    ['GET', '/1.0/vms/nope', undefined, 405, 'method GET not allowed on /1.0/vms/nope'],
    ['POST', '/1.0/evacuations', json({ targets: ['-rf'] }), 400, 'Expected `targets[0]` to be'],
    ['POST', '/1.0/evacuations', json({ targets: ['nobody'] }), 400, 'Expected `targets[0]` to be a trusted peer (none), got `nobody`'],
    ['POST', '/1.0/evacuations', json({ targets: 'a,b' }), 400, 'Expected `targets` to be an array, got `a,b`'],
    ['POST', '/1.0/evacuations', json({}), 400, 'Expected `targets` to be at least one trusted peer'],
    ['GET', '/1.0/evacuations/nope', undefined, 404, 'unknown evacuation "nope"'],
    ['DELETE', '/1.0/evacuations/nope', undefined, 404, 'unknown evacuation "nope"'],
    ['POST', '/1.0/peers/tokens', json({ name: 'p', expirySeconds: 0 }), 400, 'Expected `expirySeconds` to be an integer ≥ 1 and ≤ 2592000, got `0`'],
    ['POST', '/1.0/peers/join', json({ name: 'p' }), 400, 'Expected `body.token` to be present (required field), got nothing'],
    ['POST', '/1.0/peers/join', json({ name: 'p', token: 'e30' }), 400, 'Expected `token.addresses` to be present (required field), got nothing'],
  ])('%s %s %s → %i naming the bad value', async (method, path, body, status, message) => {
    const response = await call(method, path, body);
    expect(response.status).toBe(status);
    expect(response.json).toMatchObject({ type: 'error', error_code: status });
    expect(String(response.json.error)).toContain(message);
  });

  it.each(Object.values(ENDPOINTS).filter((endpoint) => 'body' in endpoint))('$method $path refuses an unknown field, naming it', async (endpoint) => {
    const response = await call(endpoint.method, endpoint.path, json({ surprise: true }));
    expect(response.status).toBe(400);
    expect(String(response.json.error)).toMatch(/^Expected `body\.surprise` to be absent \(unknown field; known: /);
  });

  it('never answers 500 to any body: every refusal is a 4xx naming what is wrong, and nothing changes', async () => {
    // Endpoints no random body can satisfy (a resize to a random size, or a token for a random
    // name, may legitimately succeed and are tested case by case above).
    const withBody = [ENDPOINTS.startVm, ENDPOINTS.migrate, ENDPOINTS.trust, ENDPOINTS.join];
    // Bodies with the endpoints' real field names and arbitrary values, and arbitrary JSON.
    const fieldNames = [...new Set(Object.values(ENDPOINTS).flatMap((endpoint) => ('body' in endpoint ? Object.keys(endpoint.body) : [])))];
    const body = fc.oneof(fc.dictionary(fc.constantFrom(...fieldNames), fc.jsonValue(), { maxKeys: 4 }), fc.jsonValue());
    const before = (await call('GET', '/1.0/buffer')).json.metadata as { size: number };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...withBody), body, async (endpoint, raw) => {
        const response = await call(endpoint.method, endpoint.path, json(raw));
        expect(response.status, response.text).toBeGreaterThanOrEqual(400);
        expect(response.status, response.text).toBeLessThan(500);
        expect(String(response.json.error)).not.toBe('');
      }),
      { numRuns: 400 },
    );
    expect(((await call('GET', '/1.0/buffer')).json.metadata as { size: number }).size).toBe(before.size);
    expect((await call('GET', '/1.0/peers')).json.metadata).toEqual([]);
    expect((await call('GET', '/1.0/vms')).json.metadata).toEqual([]);
  });

  it('states its headroom as data: buffer, slots, memory and disk for incoming guests, links', async () => {
    const headroom = await call('GET', '/1.0/headroom');
    expect(headroom.status).toBe(200);
    expect(headroom.json.metadata).toMatchObject({
      host: daemon.identity.fingerprint,
      buffer: { size: daemon.engine.loop.partition.capacity, used: 0, committed: 0, free: daemon.engine.loop.partition.capacity },
      outgoing: { used: 0, limit: daemon.config.migration.maxOutgoing },
      incoming: { used: 0, limit: daemon.config.migration.maxIncoming },
      memoryFree: expect.any(Number),
      diskFree: expect.any(Number),
      links: [],
    });
    expect((headroom.json.metadata as { memoryFree: number }).memoryFree).toBeGreaterThan(0);
  });

  it('refuses a body larger than 1 MiB', async () => {
    const response = await call('POST', '/1.0/peers', 'x'.repeat(2 * 1024 * 1024));
    expect(response.status).toBe(413);
  });

  it('changes nothing when a request is refused', async () => {
    const before = await call('GET', '/1.0/buffer');
    await call('PATCH', '/1.0/buffer', json({ size: '4000TiB' }));
    const after = await call('GET', '/1.0/buffer');
    expect((after.json.metadata as { size: number }).size).toBe((before.json.metadata as { size: number }).size);
    expect((await call('GET', '/1.0/peers')).json.metadata).toEqual([]);
  });

  it('serves Prometheus metrics that a Prometheus parser reads', async () => {
    const response = await call('GET', '/1.0/metrics');
    const families = new Map(parsePrometheus(response.text).map((family) => [family.name, family]));
    expect(families.get('cowbuf_buffer_size_bytes')?.metrics[0]?.value).toBe(String(64 * 1024 ** 2));
    expect(families.get('cowbuf_buffer_used_bytes')?.type).toBe('GAUGE');
    expect(families.get('cowbuf_control_tick_duration_seconds')?.type).toBe('SUMMARY');
    expect(families.get('cowbuf_control_tick_lag_seconds')?.type).toBe('SUMMARY');
    for (const name of ['cowbuf_migration_bin_bytes', 'cowbuf_migration_throttle_bytes_per_second', 'cowbuf_link_rate_bytes_per_second', 'cowbuf_migrations_total']) expect(families.has(name)).toBe(true);
  });

  it('resizes the buffer, and the partition follows', async () => {
    const response = await call('PATCH', '/1.0/buffer', json({ size: '96MiB' }));
    expect(response.status).toBe(200);
    expect(daemon.engine.loop.partition.capacity).toBe(96 * 1024 ** 2);
  });
});
