import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { EvacuationRecord, VmProgress } from '../../src/evacuation/progress.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('evacuate');
const GiB = 1024 ** 3;

function record(status: EvacuationRecord['status'], vms: VmProgress[], etaSeconds?: number): EvacuationRecord {
  const count = (...outcomes: string[]) => vms.filter((vm) => outcomes.includes(vm.outcome)).length;
  const bytesLeft = vms.reduce((sum, vm) => sum + vm.bytesLeft, 0);
  return {
    id: 'evac-1',
    createdAt: '2030-01-01T00:00:00.000Z',
    updatedAt: '2030-01-01T00:00:00.000Z',
    status,
    targets: ['b', 'c'],
    leftOut: [],
    concurrency: { initial: 2, boundBy: 'outgoing' },
    vms,
    total: { moved: count('moved'), failed: count('failed', 'unplaced'), cancelled: count('cancelled'), left: count('waiting', 'running'), bytesLeft, ...(etaSeconds !== undefined ? { etaSeconds } : {}) },
  };
}

const running = (vm: string, target: string, phase: string, left: number): VmProgress => ({ vm, target, outcome: 'running', migration: `${vm}-m`, phase, bytesLeft: left * GiB });
const ended = (vm: string, target: string, outcome: 'moved' | 'failed', error?: string): VmProgress => ({ vm, target, outcome, migration: `${vm}-m`, phase: outcome, bytesLeft: 0, ...(error ? { error } : {}) });

/** A daemon that answers the POST with `first` and streams `events` (one of them repeated, as a progress tick would). */
async function fakeDaemon(first: EvacuationRecord, events: readonly EvacuationRecord[]): Promise<{ socket: string; bodies: unknown[]; server: Server }> {
  const socket = join(tempDir(), `api-${Math.random().toString(36).slice(2)}.sock`);
  const bodies: unknown[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/1.0/evacuations') {
        bodies.push(JSON.parse(text));
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'sync', status_code: 201, metadata: first }));
      } else if (req.url === '/1.0/events') {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write(`${JSON.stringify({ type: 'migration', metadata: { id: 'other' } })}\n`);
        for (const event of events) res.write(`${JSON.stringify({ type: 'evacuation', metadata: event })}\n`);
      } else res.writeHead(404).end(JSON.stringify({ type: 'error', error: 'no', error_code: 404 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  servers.push(server);
  return { socket, bodies, server };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'cowbuf', ...args], { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

describe('cowbuf evacuate off a terminal', () => {
  it('prints one plain line per change (per VM and the total), and exits 1 naming the VM that did not move', async () => {
    const start = record('running', [running('a', 'b', 'queued', 12), running('d', 'c', 'queued', 4)], 30);
    const mid = record('running', [running('a', 'b', 'mirror', 6), running('d', 'c', 'queued', 4)], 20);
    const last = record('done', [ended('a', 'b', 'moved'), ended('d', 'c', 'failed', 'peer c: connection closed')]);
    const { socket, bodies } = await fakeDaemon(start, [mid, mid, last]);
    const result = await cli('--socket', socket, 'evacuate', '--target', 'b,c');
    expect(bodies).toEqual([{ targets: ['b', 'c'] }]);
    expect(result.stdout.split('\n')).toEqual([
      'evac-1 vm=a target=b phase=queued left=12.0 GiB migration=a-m',
      'evac-1 vm=d target=c phase=queued left=4.0 GiB migration=d-m',
      'evac-1 status=running moved=0 failed=0 cancelled=0 left=2 bytes_left=16.0 GiB eta=~30s',
      'evac-1 vm=a target=b phase=mirror left=6.0 GiB migration=a-m',
      'evac-1 status=running moved=0 failed=0 cancelled=0 left=2 bytes_left=10.0 GiB eta=~20s',
      'evac-1 vm=a target=b phase=moved left=0 B migration=a-m',
      'evac-1 vm=d target=c phase=failed left=0 B migration=d-m error="peer c: connection closed"',
      'evac-1 status=done moved=1 failed=1 cancelled=0 left=0 bytes_left=0 B eta=-',
      '',
    ]);
    expect(result).toMatchObject({ code: 1, stderr: 'Error: evacuation evac-1 ended done: 1 of 2 VM(s) did not move (d: peer c: connection closed)\n' });
  });

  it('exits 0 when every VM moved, and --no-wait prints the id only', async () => {
    const { socket, bodies } = await fakeDaemon(record('running', [running('a', 'b', 'queued', 1)]), [record('done', [ended('a', 'b', 'moved')])]);
    expect((await cli('--socket', socket, 'evacuate')).code).toBe(0);
    expect(await cli('--socket', socket, 'evacuate', '--no-wait')).toEqual({ code: 0, stdout: 'evac-1\n', stderr: '' });
    expect(bodies).toEqual([{}, {}]);
  });
});
