/**
 * A stand-in for a running QEMU, for provider and daemon tests without QEMU: a process of its own
 * (`sleep`) behind a scripted monitor that answers as an idle QEMU does and exits on `quit`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach } from 'vitest';
import type { VmSpec } from '../../src/vm/spec.js';
import { fakeQmp, type FakeQmp } from './fake-qmp.js';

export interface StandIn {
  readonly spec: VmSpec;
  readonly pid: number;
  readonly monitor: FakeQmp;
  /** How many `quit`s its monitor received. */
  quits(): number;
}

const ANSWERS: Readonly<Record<string, unknown>> = {
  'query-named-block-nodes': [],
  'query-status': { running: true, status: 'running' },
};

/** Stand-ins made in a test file, its monitors closed after each test and its processes killed after the file. */
export function useStandIns(): (name: string) => Promise<StandIn> {
  const processes: ChildProcess[] = [];
  const monitors: FakeQmp[] = [];
  afterEach(async () => {
    for (const monitor of monitors.splice(0)) await monitor.close();
  });
  afterAll(() => {
    for (const child of processes) child.kill('SIGKILL');
  });
  return async (name) => {
    const child = spawn('sleep', ['600'], { stdio: 'ignore' });
    processes.push(child);
    const monitor = await fakeQmp((command) => {
      if (command === 'quit') child.kill('SIGTERM');
      return { return: ANSWERS[command] ?? {} };
    });
    monitors.push(monitor);
    const spec: VmSpec = { name, memoryMiB: 64, vcpus: 1, disks: [{ id: 'vda', nodeName: 'root', file: `/srv/${name}.qcow2`, format: 'qcow2' }], qmpSocket: monitor.path, serialLog: '' };
    return { spec, pid: child.pid as number, monitor, quits: () => monitor.received.filter((message) => message.execute === 'quit').length };
  };
}

/** The standalone provider's journal as a daemon that started (or adopted) these VMs left it. */
export async function journalVms(stateDir: string, vms: readonly (StandIn & { readonly adopted?: true })[]): Promise<void> {
  await mkdir(join(stateDir, 'journal'), { recursive: true });
  await writeFile(join(stateDir, 'journal', 'vms.json'), JSON.stringify(vms.map(({ spec, pid, adopted }) => ({ spec, pid, accel: 'tcg', ...(adopted ? { adopted } : {}) }))));
}
