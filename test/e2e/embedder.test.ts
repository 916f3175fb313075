import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import type { MigrationRecord } from '../../src/migration/engine.js';
import { startDaemonPair, type DaemonHost, type DaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { installEmbedder } from '../support/embedder.js';
import { useTempDir } from '../support/temp-dir.js';
import { qemuImg, useScope, type Scope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('embedder');
const installed = useTempDir('embedder');
let minilxd: string;

beforeAll(async () => {
  minilxd = await installEmbedder(join(installed(), 'minilxd'));
}, 360_000);

interface VmView {
  readonly name: string;
  readonly pid: number;
  readonly running: boolean;
  readonly serialLog: string;
}

async function pairOfEmbedders(s: Scope): Promise<DaemonPair> {
  return startDaemonPair({ dir: s.dir, bufferSize: 128 * MiB, linkRate: '200mbit', daemonArgs: (config) => [minilxd, '--config', config] });
}

/** minilxd starts the guest with its own launcher and hands it to its embedded engine. */
async function busyGuest(s: Scope, host: DaemonHost): Promise<VmView> {
  const disk = s.path('g1.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
  const vm = await host.api.call<VmView>('POST', '/1.0/vms', guestVmBody('g1', disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 3 }, 192));
  await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats on the source');
  return vm;
}

async function migrate(from: DaemonHost, target: string): Promise<MigrationRecord> {
  const started = await from.api.call<MigrationRecord>('POST', '/1.0/migrations', { vm: 'g1', target });
  return from.api.call<MigrationRecord>('GET', `/1.0/operations/${started.id}/wait`);
}

/** The guest runs there, in minilxd's store, writing with every write kept. */
async function runsOn(host: DaemonHost, verifications: number): Promise<VmView> {
  const [vm] = await host.api.call<VmView[]>('GET', '/1.0/vms');
  expect(vm).toMatchObject({ name: 'g1', running: true });
  const serial = await waitForSerial(vm?.serialLog ?? '', (r) => r.verifications.length >= verifications, `${verifications} verifications on ${host.name}`, { timeoutMs: 90_000 });
  expect(serial.verifications.every((v) => v.lost === 0)).toBe(true);
  expect(serial.ioErrors).toEqual([]);
  return vm as VmView;
}

describe("an embedder's VM, through the package's public API only", { timeout: 360_000 }, () => {
  it('migrates there and back: the embedder launches the target copy, stores the arrival, and stops the copy that left', async () => {
    const pair = await pairOfEmbedders(scope());
    try {
      const started = await busyGuest(scope(), pair.source);
      const there = await migrate(pair.source, 'dst');
      expect(there.phase, there.error).toBe('completed');
      await runsOn(pair.target, 2);
      expect(await pair.source.api.call<VmView[]>('GET', '/1.0/vms')).toEqual([]);
      // minilxd's own stop quit the source copy.
      await expect(run('kill', ['-0', String(started.pid)])).rejects.toThrow();
      const back = await migrate(pair.target, 'src');
      expect(back.phase, back.error).toBe('completed');
      await runsOn(pair.source, 4);
      expect(await pair.target.api.call<VmView[]>('GET', '/1.0/vms')).toEqual([]);
    } finally {
      await pair.close();
    }
  });

  it('a source embedder SIGKILLed mid-migration rolls its VM back when it starts again', async () => {
    const pair = await pairOfEmbedders(scope());
    try {
      const vm = await busyGuest(scope(), pair.source);
      await pair.hosts.shape('20mbit');
      const started = await pair.source.api.call<MigrationRecord>('POST', '/1.0/migrations', { vm: 'g1', target: 'dst' });
      const phaseNow = async (): Promise<string> => (await pair.source.api.call<MigrationRecord[]>('GET', '/1.0/migrations')).find((m) => m.id === started.id)?.phase ?? 'gone';
      for (let phase: string = started.phase; phase !== 'mirror'; phase = await phaseNow()) {
        expect(['queued', 'prepare', 'overlay', 'base', 'target']).toContain(phase);
        await sleep(100);
      }
      await pair.kill('source');
      const restarted = await pair.restart('source');
      const [record] = await restarted.api.call<MigrationRecord[]>('GET', '/1.0/migrations');
      expect(record).toMatchObject({ id: started.id, phase: 'failed', error: expect.stringContaining('restarted during phase mirror') });
      const before = (await readSerial(vm.serialLog)).verifications.length;
      const after = await runsOn(restarted, before + 2);
      expect(after.pid).toBe(vm.pid);
    } finally {
      await pair.close();
    }
  });
});
