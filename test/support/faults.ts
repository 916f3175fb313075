/**
 * The fault matrix's harness: one busy guest on a daemon pair, migrations started over the API,
 * a fault injected the moment the source reports a phase (from its event stream), and the
 * outcome every cell must end with, checked on the real hosts.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { run } from '../../src/exec/run.js';
import type { MigrationRecord } from '../../src/migration/engine.js';
import { FINAL } from '../../src/migration/record.js';
import { startDaemonPair, type DaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { qemuImg, type Scope } from './testbed.js';

export interface VmView {
  readonly name: string;
  readonly running: boolean;
  readonly status: string;
  readonly throttled: boolean;
  readonly serialLog: string;
}


/** Starts migrating `vm` and runs `fault` as soon as the source enters `phase`. @returns the migration id */
export async function migrateWithFault(pair: DaemonPair, vm: string, phase: string, fault: (record: MigrationRecord) => Promise<void>): Promise<string> {
  const controller = new AbortController();
  let injected: Promise<void> | undefined;
  let id: string | undefined;
  const events = pair.source.api
    .events((event) => {
      if (event.type !== 'migration' || injected) return;
      const record = event.metadata as MigrationRecord;
      if (record.vm === vm && record.phase === phase && !FINAL.has(record.phase)) {
        id = record.id;
        injected = fault(record);
      }
    }, controller.signal)
    .catch(() => undefined);
  await pair.source.api.call('POST', '/1.0/migrations', { vm, target: 'dst' });
  for (let i = 0; !injected; i += 1) {
    if (i > 2400) throw new Error(`the migration of ${vm} never reached phase ${phase}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await injected;
  controller.abort();
  await events;
  return id as string;
}

/** Waits until the source says the migration ended. */
export async function outcome(pair: DaemonPair, id: string): Promise<MigrationRecord> {
  return (await pair.source.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${id}/wait`)).metadata;
}

export async function qemuProcesses(pattern: string): Promise<number> {
  const { stdout } = await run('pgrep', ['-f', `qemu-system.*${pattern}`], { okExitCodes: [1] });
  return stdout.split('\n').filter(Boolean).length;
}

/**
 * What every cell ends with when the guest must still be at the source: it runs there,
 * unthrottled, keeps writing with no write lost and no I/O error; the target has no VM and no
 * QEMU; the bin is reclaimed and no overlay is left in the buffer.
 */
export async function expectGuestKeptAtSource(pair: DaemonPair, vm: string): Promise<void> {
  const vms = await pair.source.api.call<VmView[]>('GET', '/1.0/vms');
  const guest = vms.find((candidate) => candidate.name === vm);
  expect(guest).toMatchObject({ running: true, throttled: false });
  const before = (await readSerial(guest?.serialLog ?? '')).verifications.length;
  const after = await waitForSerial(guest?.serialLog ?? '', (r) => r.verifications.length >= before + 2, 'two more verifications at the source', { timeoutMs: 60_000 });
  expect(after.verifications.every((v) => v.lost === 0)).toBe(true);
  expect(after.ioErrors).toEqual([]);
  expect(await pair.target.api.call('GET', '/1.0/vms')).toEqual([]);
  expect(await qemuProcesses(pair.target.stateDir)).toBe(0);
  const buffer = await pair.source.api.call<{ partition: { bins: unknown[] } }>('GET', '/1.0/buffer');
  expect(buffer.partition.bins).toEqual([]);
  expect((await readdir(join(pair.source.stateDir, 'buffer'))).filter((file) => file.endsWith('.qcow2'))).toEqual([]);
}

/** `guest` (as its host lists it) runs there unthrottled, and two verifications of its ledger find every write and no I/O error. */
export async function expectWritingOn(guest: VmView | undefined, name: string, where: string, timeoutMs = 60_000): Promise<void> {
  expect(guest, `${name} on ${where}`).toMatchObject({ name, running: true, throttled: false });
  const serial = await waitForSerial(guest?.serialLog ?? '', (r) => r.verifications.length >= 2, `two verifications on ${where}`, { timeoutMs });
  expect(serial.verifications.every((v) => v.lost === 0)).toBe(true);
  expect(serial.ioErrors).toEqual([]);
}

/** When the guest must be at the target: it runs there, unthrottled, with every write; nothing is left at the source. */
export async function expectGuestMovedToTarget(pair: DaemonPair, vm: string): Promise<void> {
  const [arrived] = await pair.target.api.call<VmView[]>('GET', '/1.0/vms');
  await expectWritingOn(arrived, vm, 'the target');
  expect(await pair.source.api.call('GET', '/1.0/vms')).toEqual([]);
  expect(await qemuProcesses(`${pair.source.stateDir}/vms/${vm}/`)).toBe(0);
  const buffer = await pair.source.api.call<{ partition: { bins: unknown[] } }>('GET', '/1.0/buffer');
  expect(buffer.partition.bins).toEqual([]);
  expect((await readdir(join(pair.source.stateDir, 'buffer'))).filter((file) => file.endsWith('.qcow2'))).toEqual([]);
}

/**
 * A daemon pair on a 100 Mbit/s link with one busy guest `g1` on the source, whose disk holds
 * 24 MiB of base by default: a base phase long enough to be hit.
 */
export async function busyGuestPair(scope: Scope, options: { readonly migration?: Readonly<Record<string, unknown>>; readonly baseMiB?: number; readonly dirtyRateMiB?: number } = {}): Promise<DaemonPair> {
  const pair = await startDaemonPair({ dir: scope.dir, bufferSize: 128 * 1024 ** 2, linkRate: '100mbit', ...(options.migration ? { migration: options.migration } : {}) });
  const disk = scope.path('g1.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
  await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 5 32M ${options.baseMiB ?? 24}M`, disk]);
  const vm = await pair.source.api.call<VmView>('POST', '/1.0/vms', guestVmBody('g1', disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: options.dirtyRateMiB ?? 4, verifyEvery: 3 }, 192));
  await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats on the source');
  return pair;
}

/**
 * What a destination guest prints when TCG's virtio-blk completion crash hits it (TESTBED.md),
 * and the oops of a kernel thread faulting right after a switchover QEMU called correct (seen once
 * in a local CI rehearsal, `rcu_preempt`): the same class, the destination kernel faulting on
 * state QEMU migrated, root cause unknown.
 */
const GUEST_PANIC = /Kernel panic[^\n]*|Fatal exception in interrupt|is not a head!|Oops: [0-9a-f]{4} \[#\d+\][^\n]*/;

/**
 * Runs a cell, and runs it once more only if it failed while a guest's console shows the
 * emulator's known panic (logged as such); any other failure fails the cell at once.
 */
export async function retryOnGuestPanic(pair: () => DaemonPair, cell: () => Promise<void>, reset: () => Promise<void>): Promise<void> {
  try {
    await cell();
  } catch (error) {
    const logs: string[] = [];
    for (const host of [pair().source, pair().target]) {
      const vms = join(host.stateDir, 'vms');
      for (const dir of await readdir(vms).catch(() => [])) logs.push(await readFile(join(vms, dir, 'serial.log'), 'utf8').catch(() => ''));
    }
    const panic = logs.map((text) => GUEST_PANIC.exec(text)?.[0]).find((match) => match !== undefined);
    if (!panic) throw error;
    console.info(`retrying the cell once: a guest panicked ("${panic}"), the emulator's known TCG fault, and the cell failed with: ${(error as Error).message}`);
    await reset();
    await cell();
  }
}
