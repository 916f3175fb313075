import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import { main } from '../../src/cli/main.js';
import { guestVmBody, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { startDaemonPair, type DaemonPair } from '../../src/testbed/daemons.js';
import { retryOnGuestPanic } from '../support/faults.js';
import { report } from '../support/report.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('e2e');

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'cowbuf', ...args], { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

describe('two cowbufd in two namespaces over a shaped link', { timeout: 300_000 }, () => {
  it('`cowbuf migrate` moves a busy guest; it keeps writing on the target with no write lost', async () => {
    let pair: DaemonPair | undefined;
    const attempt = async (): Promise<void> => {
      // A fresh directory per attempt: the panicked one's consoles stay for the log.
      const dir = scope().path(`attempt-${Date.now()}`);
      await mkdir(dir);
      pair = await startDaemonPair({ dir, bufferSize: 256 * MiB, linkRate: '100mbit' });
      await moveBusyGuest(pair);
    };
    try {
      await retryOnGuestPanic(() => pair as DaemonPair, attempt, async () => void (await pair?.close()));
    } finally {
      await pair?.close();
    }
  });
});

/** One migration through the CLI, watched in a terminal, cross-checked against the metrics. */
async function moveBusyGuest(pair: DaemonPair): Promise<void> {
  const disk = scope().path('g1.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', disk, '128M');
  const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', guestVmBody('g1', disk, { diskRateMiB: 1, diskSpanMiB: 16, dirtyRateMiB: 4, verifyEvery: 3 }, 256));
  await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats on the source');
  const socket = ['--socket', `${pair.source.stateDir}/unix.socket`];
  const ticks: Array<{ links: Array<{ peer: string; bytesAcked: number }> }> = [];
  const controller = new AbortController();
  const events = pair.source.api.events((event) => {
    if (event.type === 'tick') ticks.push(event.metadata as (typeof ticks)[number]);
  }, controller.signal);
  const watch = await watchInTmux(socket);
  const result = await cli(...socket, 'migrate', 'g1', '--target', 'dst');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  controller.abort();
  await events;
  const screens = await watch.stop();
  expect(result).toMatchObject({ code: 0, stderr: '' });
  const lines = result.stdout.trim().split('\n');
  expect(lines.at(-1)).toMatch(/^g1-\S+ phase=completed base=/);
  expect(lines.some((line) => / phase=ram /.test(line))).toBe(true);

  // `watch` in a real terminal: bars redrawn in place (one block per migration on screen).
  const id = lines.at(-1)?.split(' ')[0] ?? '';
  const during = screens.filter((screen) => /\[(base|mirror|ram)\]/.test(screen));
  expect(during.length).toBeGreaterThan(0);
  expect(during.some((screen) => /^ {2}bin {3}\[[#.]{20}\] +\d+% {2}.* γ .*\/s {2}U\/N .*\/s$/m.test(screen))).toBe(true);
  const last = screens.at(-1) ?? '';
  expect(last).toContain(`${id}  g1 → dst  [completed]`);
  expect(last).toMatch(/^ {2}disk {2}\[#{20}\] 100%/m);
  expect(screens.every((screen) => screen.split(id).length - 1 <= 1)).toBe(true);
  const listed = JSON.parse((await cli(...socket, 'list', '--format', 'json')).stdout) as Array<{ phase: string; progress: { baseSent: number; mirrorCopied: number; ramTransferred: number } }>;
  expect(listed.map((m) => m.phase)).toEqual(['completed']);
  // Cross-check: what the peer acknowledged on our sockets against what QEMU says it sent
  // (TLS framing and the control messages make the former slightly larger).
  const acked = Math.max(...ticks.flatMap((t) => t.links.filter((l) => l.peer === 'dst').map((l) => l.bytesAcked)));
  const progress = listed[0]?.progress;
  const sent = (progress?.baseSent ?? 0) + (progress?.mirrorCopied ?? 0) + (progress?.ramTransferred ?? 0);
  await report('daemons', { acked, sent, ratio: acked / sent, ...progress });
  expect(acked / sent).toBeGreaterThan(0.97);
  expect(acked / sent).toBeLessThan(1.1);

  const arrived = await pair.target.api.call<Array<{ name: string; serialLog: string; running: boolean }>>('GET', '/1.0/vms');
  expect(arrived).toHaveLength(1);
  const onTarget = await waitForSerial(arrived[0]?.serialLog ?? '', (r) => r.verifications.length >= 2, 'two verifications on the target', { timeoutMs: 60_000 });
  expect(onTarget.verifications.every((v) => v.lost === 0)).toBe(true);
  expect(onTarget.ioErrors).toEqual([]);
  expect((await readSerial(vm.serialLog)).ioErrors).toEqual([]);
  expect(await pair.source.api.call('GET', '/1.0/vms')).toEqual([]);
  const metrics = await fetchText(pair.source.stateDir, '/1.0/metrics');
  expect(metrics).toMatch(/^cowbuf_migrations_total\{outcome="completed"\} 1$/m);
}

/** `cowbuf watch` in a tmux terminal, its screen captured every 250 ms until `stop`. */
async function watchInTmux(socket: readonly string[]): Promise<{ stop(): Promise<string[]> }> {
  const session = `cbw${process.pid}`;
  const entry = fileURLToPath(new URL('../../src/cli/entry.ts', import.meta.url));
  await run('tmux', ['new-session', '-d', '-s', session, '-x', '160', '-y', '40', `${process.execPath} --import tsx ${entry} ${socket.join(' ')} watch`], { timeoutMs: 10_000 });
  const screens: string[] = [];
  let capturing = true;
  const loop = (async () => {
    while (capturing) {
      screens.push((await run('tmux', ['capture-pane', '-p', '-t', session])).stdout);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  return {
    async stop() {
      capturing = false;
      await loop;
      screens.push((await run('tmux', ['capture-pane', '-p', '-t', session])).stdout);
      await run('tmux', ['kill-session', '-t', session], { okExitCodes: [1] });
      return screens;
    },
  };
}

async function fetchText(stateDir: string, path: string): Promise<string> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    request({ socketPath: `${stateDir}/unix.socket`, path }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve(text));
    })
      .on('error', reject)
      .end();
  });
}
