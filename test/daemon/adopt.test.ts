import { stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { processAlive, run } from '../../src/exec/run.js';
import { openVolume } from '../../src/storage/registry.js';
import { attachVm, launchVm, type RunningVm } from '../../src/vm/launcher.js';
import type { WriteErrorPolicy } from '../../src/vm/spec.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('adopt');
let daemon: Daemon;
const started: RunningVm[] = [];
/** QEMUs the daemon started: a stopped daemon leaves them running. */
const daemonsOwn: number[] = [];

beforeAll(async () => {
  const stateDir = join(tempDir(), 'state');
  await openVolume({ driver: 'dir', path: join(stateDir, 'buffer') }).create(64 * 1024 ** 2);
  const config = join(tempDir(), 'cowbuf.yaml');
  await writeFile(config, `stateDir: ${stateDir}\nbuffer:\n  driver: dir\n  size: 64MiB\ndaemon:\n  peerListen: 127.0.0.1:${21000 + (process.pid % 20000)}\n`);
  daemon = await startDaemon(config, pino({ level: 'silent' }));
});
afterAll(async () => {
  await daemon.close();
  // Their monitors were handed over: what the daemon did not quit is killed.
  for (const vm of started) {
    vm.child.kill('SIGKILL');
    await vm.child.exited;
  }
  for (const pid of daemonsOwn.filter(processAlive)) process.kill(pid, 'SIGKILL');
});

function call(method: string, path: string, body: unknown): Promise<{ status: number; json: { error?: string; metadata?: Record<string, unknown> } }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: daemon.config.daemon.socket, method, path }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as { error?: string } }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/**
 * A QEMU this test starts itself, paused (nothing to boot: what is adopted is its device model),
 * its monitor let go so the daemon can take it (QEMU serves one client per monitor).
 */
async function someoneElsesQemu(name: string, werror: WriteErrorPolicy): Promise<{ pid: number; qmpSocket: string; disk: string }> {
  const disk = join(tempDir(), `${name}.qcow2`);
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
  const qmpSocket = join(tempDir(), `${name}.qmp`);
  const vm = await launchVm({ name, memoryMiB: 64, vcpus: 1, disks: [{ id: 'vda', nodeName: 'root', file: disk, format: 'qcow2', werror }], qmpSocket, serialLog: join(tempDir(), `${name}.log`), incoming: true }, { accel: 'tcg' });
  started.push(vm);
  await vm.commands.setIoThrottle('vda/virtio-backend', { bps_wr: 4_000_000, iops: 200 });
  await vm.qmp.disconnect();
  return { pid: vm.child.pid as number, qmpSocket, disk };
}

const definition = (name: string, qmpSocket: string, disk: string) => ({ name, memoryMiB: 64, disks: [{ id: 'vda', nodeName: 'root', file: disk }], qmpSocket });

/** The QEMU still runs as it was: a fresh monitor connection answers, its limits untouched. */
async function untouched(name: string, pid: number, qmpSocket: string): Promise<void> {
  const vm = await attachVm({ name, memoryMiB: 64, vcpus: 1, disks: [], qmpSocket, serialLog: '' }, pid, 'tcg');
  try {
    expect((await vm.commands.queryStatus()).status).toBe('inmigrate');
    expect((await vm.commands.queryIoThrottles())[0]).toMatchObject({ bps_wr: 4_000_000, iops: 200 });
  } finally {
    await vm.qmp.disconnect();
  }
}

describe('adopting a running QEMU cowbuf did not start', () => {
  it('takes one whose drives stop on write errors, finding its pid from the QMP socket', async () => {
    const { pid, qmpSocket, disk } = await someoneElsesQemu('adopt-ok', 'stop');
    const adopted = await call('POST', '/1.0/vms/adopt', definition('adopt-ok', qmpSocket, disk));
    expect(adopted.status, adopted.json.error).toBe(201);
    expect(adopted.json.metadata).toMatchObject({ name: 'adopt-ok', running: true, pid, accel: 'tcg', throttled: true });
    expect(daemon.engine.vms.get('adopt-ok')?.pid).toBe(pid);
  });

  it('refuses one whose drive would hand a full buffer to the guest as an I/O error, and leaves it as it was', async () => {
    const { pid, qmpSocket, disk } = await someoneElsesQemu('adopt-enospc', 'enospc');
    const refused = await call('POST', '/1.0/vms/adopt', definition('adopt-enospc', qmpSocket, disk));
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatch(/`vm\.disks\[0\]\.werror` to be stop .*got `enospc`/);
    expect(daemon.engine.vms.has('adopt-enospc')).toBe(false);
    await untouched('adopt-enospc', pid, qmpSocket);
    // The admin's explicit override takes it, with a warning in the log.
    const forced = await call('POST', '/1.0/vms/adopt', { ...definition('adopt-enospc', qmpSocket, disk), allowErrorPolicy: true });
    expect(forced.status, forced.json.error).toBe(201);
  });

  it('refuses a definition that does not match the QEMU, naming the field', async () => {
    const { pid, qmpSocket, disk } = await someoneElsesQemu('adopt-wrong', 'stop');
    const refused = await call('POST', '/1.0/vms/adopt', { ...definition('adopt-wrong', qmpSocket, disk), disks: [{ id: 'vdz', nodeName: 'root', file: disk }] });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatch(/`vm\.disks\[0\]\.id` to be a drive of this QEMU \(vda\), got `vdz`/);
    await untouched('adopt-wrong', pid, qmpSocket);
    const noMonitor = await call('POST', '/1.0/vms/adopt', definition('adopt-nothing', join(tempDir(), 'none.qmp'), disk));
    expect(noMonitor.status).toBe(400);
    expect(noMonitor.json.error).toMatch(/nothing listens on unix socket .*none\.qmp/);
  });

  it('releases an adopted QEMU on DELETE: it runs on as the admin left it, limits and all, and the daemon forgets it', async () => {
    const { pid, qmpSocket, disk } = await someoneElsesQemu('adopt-release', 'stop');
    expect((await call('POST', '/1.0/vms/adopt', definition('adopt-release', qmpSocket, disk))).status).toBe(201);
    const released = await call('DELETE', '/1.0/vms/adopt-release', undefined);
    expect(released.status, released.json.error).toBe(200);
    expect(released.json.metadata).toEqual({ name: 'adopt-release', removal: 'released', pid });
    expect(daemon.engine.vms.has('adopt-release')).toBe(false);
    await untouched('adopt-release', pid, qmpSocket);
  });
});

describe('removing a VM the daemon started', () => {
  it('quits its QEMU on DELETE and keeps its disk', async () => {
    const disk = join(tempDir(), 'own-stop.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
    const launched = await call('POST', '/1.0/vms', { name: 'own-stop', memoryMiB: 64, disks: [{ id: 'vda', file: disk }] });
    expect(launched.status, launched.json.error).toBe(201);
    const pid = launched.json.metadata?.pid as number;
    daemonsOwn.push(pid);
    const stopped = await call('DELETE', '/1.0/vms/own-stop', undefined);
    expect(stopped.status, stopped.json.error).toBe(200);
    expect(stopped.json.metadata).toEqual({ name: 'own-stop', removal: 'stopped', pid });
    expect(processAlive(pid)).toBe(false);
    expect((await stat(disk)).isFile()).toBe(true);
    expect(daemon.engine.vms.has('own-stop')).toBe(false);
  });
});
