/**
 * Integration-test scaffolding on the real test bed: a scope that owns every VM, namespace pair
 * and temp dir a test creates and tears them down afterwards, whatever happened.
 */
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { afterEach, beforeEach } from 'vitest';
import { join } from 'node:path';
import { run } from '../../src/exec/run.js';
import { GUEST_DISK, guestVm, waitForSerial, type GuestWorkload } from '../../src/testbed/guest.js';
import { createTwoHosts, sweepStaleHosts, type TwoHosts } from '../../src/testbed/netns.js';
import { createTestPool, type TestPool } from '../../src/testbed/zfs.js';
import { launchVm, QEMU_BINARY, type RunningVm } from '../../src/vm/launcher.js';

const ROOT = new URL('../../build/test-runs/', import.meta.url).pathname;
const QEMU_BUILDS = new URL('../../build/qemu/', import.meta.url).pathname;

export class Scope {
  private readonly vms: RunningVm[] = [];
  private readonly hosts: TwoHosts[] = [];
  private readonly pools: TestPool[] = [];
  private constructor(readonly dir: string) {}

  static async create(name: string): Promise<Scope> {
    await mkdir(ROOT, { recursive: true });
    return new Scope(await mkdtemp(join(ROOT, `${name}-`)));
  }

  path(file: string): string {
    return join(this.dir, file);
  }

  async twoHosts(): Promise<TwoHosts> {
    await sweepStaleHosts();
    const hosts = await createTwoHosts();
    this.hosts.push(hosts);
    return hosts;
  }

  /** A zfs-fuse pool on a sparse file inside this scope, destroyed after its VMs are gone. */
  async pool(size: number): Promise<TestPool> {
    const pool = await createTestPool(this.dir, size);
    this.pools.push(pool);
    return pool;
  }

  async launch(...args: Parameters<typeof launchVm>): Promise<RunningVm> {
    const vm = await launchVm(...args);
    this.vms.push(vm);
    return vm;
  }

  /** Boots the test guest on `disk` and waits until its workload is running. */
  async bootGuest(name: string, disk: string, workload: GuestWorkload, extra: { netns?: string; incoming?: boolean } = {}): Promise<RunningVm> {
    const vm = await this.launch(guestVm({ name, dir: this.dir, disk: { file: disk, format: 'qcow2' }, workload, ...extra }));
    if (!extra.incoming) await waitForSerial(vm.spec.serialLog, (r) => r.heartbeats.length > 0, 'a first heartbeat', { timeoutMs: 60_000 });
    return vm;
  }

  async cleanup(keepFiles = false): Promise<void> {
    await Promise.all(this.vms.splice(0).map((vm) => vm.stop()));
    for (const hosts of this.hosts.splice(0)) await hosts.destroy();
    for (const pool of this.pools.splice(0)) await pool.destroy();
    if (!keepFiles) await rm(this.dir, { recursive: true, force: true });
  }
}

export async function qemuImg(...args: string[]): Promise<string> {
  return (await run('qemu-img', args, { timeoutMs: 60_000 })).stdout;
}

export const DISK = GUEST_DISK;

/** One Scope per test of the file, torn down after each. */
export function useScope(name: string): () => Scope {
  let scope: Scope | undefined;
  beforeEach(async () => {
    scope = await Scope.create(name);
  });
  afterEach(async () => {
    await scope?.cleanup();
  });
  return () => {
    if (!scope) throw new Error('useScope: no scope outside a test');
    return scope;
  };
}

/**
 * Creates `overlay` on top of `base` and makes it the guest disk's active layer (node `overlay0`,
 * its file node `overlay0-file`, as the engine names them so a write threshold can be armed).
 */
export async function putOverlay(vm: RunningVm, base: string, overlay: string, size = '64M'): Promise<void> {
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', base, '-F', 'qcow2', overlay, size);
  await vm.commands.blockdevAdd({ driver: 'qcow2', 'node-name': 'overlay0', file: { driver: 'file', 'node-name': 'overlay0-file', filename: overlay }, backing: null });
  await vm.commands.blockdevSnapshot(GUEST_DISK.nodeName, 'overlay0');
}

/** Waits until something listens on `port` in `netns`: a server started in a namespace takes a while to bind. */
export async function listening(netns: string, port: number): Promise<void> {
  for (let tries = 0; tries < 100; tries += 1) {
    if ((await run('ss', ['-ltnH', `sport = :${port}`], { netns })).stdout.trim() !== '') return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing listens on port ${port} in ${netns} after 10 s`);
}

/** Waits until `check` holds, or fails naming `what`. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  for (const end = Date.now() + timeoutMs; !(await check()); ) {
    if (Date.now() > end) throw new Error(`${what}: not after ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/**
 * The unpacked qemu-system-x86_64 (scripts/testbed/qemu-binaries.sh) of a QEMU release other than
 * the installed one, to stand for another host's QEMU.
 * @throws Error when the test bed has not unpacked it (a missing component fails, never skips)
 */
export async function otherQemuBinary(): Promise<string> {
  const installed = /version (\d+(\.\d+)+)/.exec((await run(QEMU_BINARY, ['--version'])).stdout)?.[1];
  // Another major.minor: a point release of the installed one knows the same machine types.
  const release = (version: string | undefined) => version?.split('.').slice(0, 2).join('.');
  const others = (await readdir(QEMU_BUILDS).catch(() => [])).filter((version) => release(version) !== release(installed)).sort();
  if (others.length === 0) throw new Error(`no QEMU but the installed ${String(installed)} in ${QEMU_BUILDS}: run \`npm run testbed\``);
  return join(QEMU_BUILDS, others[0] as string, QEMU_BINARY);
}
