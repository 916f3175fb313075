/**
 * The load soak's pieces, shared by its CI test (test/faults/load.test.ts, one round trip) and
 * its long run (bench/soak.ts, many): busy guests on a daemon pair, all migrated at once one way
 * and back, and a count of everything a host holds that could leak.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec/run.js';
import type { MigrationRecord } from '../migration/engine.js';
import type { DaemonHost, DaemonPair } from './daemons.js';
import { guestVmBody, readSerial, waitForSerial, type SerialReport } from './guest.js';

export interface Resources {
  readonly fds: number;
  readonly children: number;
  readonly qemus: number;
  readonly overlays: number;
  readonly runSockets: number;
  readonly incomingJournal: number;
  readonly vmDirs: number;
}

/** What a host holds that could leak: the daemon's fds and children, the files it made, its QEMUs. */
export async function resources(host: DaemonHost): Promise<Resources> {
  const pid = host.child.pid as number;
  const count = async (dir: string) => (await readdir(join(host.stateDir, dir)).catch(() => [])).length;
  const lines = (text: string) => text.split('\n').filter(Boolean).length;
  return {
    fds: (await readdir(`/proc/${pid}/fd`)).length,
    children: lines((await run('pgrep', ['-P', String(pid)], { okExitCodes: [1] })).stdout),
    qemus: lines((await run('pgrep', ['-f', `qemu-system.*${host.stateDir}/`], { okExitCodes: [1] })).stdout),
    overlays: (await readdir(join(host.stateDir, 'buffer'))).filter((file) => file.endsWith('.qcow2')).length,
    runSockets: await count('run'),
    incomingJournal: await count('journal/incoming'),
    vmDirs: await count('vms'),
  };
}

export async function datasetCount(pair: DaemonPair): Promise<number> {
  return (await run('zfs', ['list', '-H', '-o', 'name', '-r', pair.pool.name])).stdout.split('\n').filter(Boolean).length;
}

/** Starts `names` as busy guests on the source daemon (disks under `dir`) and waits for their heartbeats. */
export async function startGuests(pair: DaemonPair, dir: string, names: readonly string[], memoryMiB: number): Promise<void> {
  for (const name of names) {
    const disk = join(dir, `${name}.qcow2`);
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '32M']);
    await pair.source.api.call('POST', '/1.0/vms', guestVmBody(name, disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 4 }, memoryMiB));
  }
  for (const vm of await pair.source.api.call<Array<{ name: string; serialLog: string }>>('GET', '/1.0/vms')) {
    await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > 1, `heartbeats of ${vm.name}`, { timeoutMs: 120_000 });
  }
}

/** Migrates every named guest `from` → the peer `to`, all at once. @returns the final records */
export async function migrateAll(from: DaemonHost, to: string, names: readonly string[]): Promise<MigrationRecord[]> {
  const started = await Promise.all(names.map((vm) => from.api.call<{ id: string }>('POST', '/1.0/migrations', { vm, target: to })));
  return Promise.all(started.map(async ({ id }) => (await from.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${id}/wait`)).metadata));
}

/** Waits for one more verification from each guest on `host`. @returns their reports */
export async function verifyGuests(host: DaemonHost): Promise<Array<{ name: string; running: boolean; throttled: boolean; report: SerialReport }>> {
  const vms = await host.api.call<Array<{ name: string; running: boolean; throttled: boolean; serialLog: string }>>('GET', '/1.0/vms');
  return Promise.all(
    vms.map(async (vm) => {
      const seen = (await readSerial(vm.serialLog)).verifications.length;
      const report = await waitForSerial(vm.serialLog, (r) => r.verifications.length > seen, `a verification of ${vm.name}`, { timeoutMs: 120_000 });
      return { name: vm.name, running: vm.running, throttled: vm.throttled, report };
    }),
  );
}
