/**
 * Two cowbufd hosts on one machine: each daemon runs inside its own network namespace (so its
 * QEMUs do too), they reach each other only over the shaped veth, and trust each other's
 * pinned certificate. The source's buffer is a zfs dataset on a test pool; the target's a small
 * dir buffer (it only receives). Used by the end-to-end tests and the README's demo.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { ApiClient } from '../cli/client.js';
import { CowbufError } from '../errors.js';
import { run, spawn, type Child } from '../exec/run.js';
import { openVolume } from '../storage/registry.js';
import { createTwoHosts, sweepStaleHosts, type TwoHosts } from './netns.js';
import { createTestPool, type TestPool } from './zfs.js';

const ENTRY = fileURLToPath(new URL('../daemon/entry.ts', import.meta.url));
const COMPILED = ENTRY.endsWith('.ts') ? undefined : ENTRY;

export interface DaemonHost {
  readonly name: string;
  readonly ip: string;
  readonly stateDir: string;
  readonly api: ApiClient;
  readonly child: Child;
  readonly logFile: string;
}

export interface DaemonPair {
  readonly hosts: TwoHosts;
  /** The current daemon of each side (a new one after `restart`). */
  readonly source: DaemonHost;
  readonly target: DaemonHost;
  readonly pool: TestPool;
  /** SIGKILLs that side's daemon (its QEMUs live on), waits for it to be gone. */
  kill(side: 'source' | 'target'): Promise<void>;
  /** Starts that side's daemon again on the same state directory and config, plus extra `daemon:` settings. */
  restart(side: 'source' | 'target', daemon?: Readonly<Record<string, unknown>>): Promise<DaemonHost>;
  close(): Promise<void>;
}

export interface DaemonPairOptions {
  readonly dir: string;
  readonly bufferSize: number;
  readonly linkRate?: string;
  /** Extra `migration:` settings for both daemons. */
  readonly migration?: Readonly<Record<string, unknown>>;
  /**
   * Node arguments that start another daemon on the same config file instead of cowbufd (the
   * example embedder); it must answer `GET /1.0` and `POST /1.0/peers` as cowbufd does.
   */
  readonly daemonArgs?: (configPath: string) => readonly string[];
}

const COWBUFD = (configPath: string): readonly string[] => (COMPILED ? [COMPILED, '--config', configPath] : ['--import', 'tsx', ENTRY, '--config', configPath]);

async function startHost(name: string, ns: string, ip: string, stateDir: string, buffer: Record<string, unknown>, migration: Readonly<Record<string, unknown>>, daemonArgs = COWBUFD, daemon: Readonly<Record<string, unknown>> = {}): Promise<DaemonHost> {
  await mkdir(stateDir, { recursive: true });
  const configPath = join(stateDir, 'cowbuf.yaml');
  const config = { stateDir, buffer, daemon: { peerListen: `${ip}:8443`, socket: join(stateDir, 'unix.socket'), logLevel: 'info', ...daemon }, migration: { controlPeriodMs: 500, ...migration } };
  await writeFile(configPath, stringify(config));
  const logFile = join(stateDir, 'cowbufd.log');
  const child = spawn(process.execPath, [...daemonArgs(configPath)], { netns: ns, logFile });
  const api = new ApiClient(join(stateDir, 'unix.socket'));
  for (let attempt = 0; ; attempt += 1) {
    try {
      await api.call('GET', '/1.0');
      break;
    } catch (error) {
      if (!child.running() || attempt > 150) throw new CowbufError(`cowbufd ${name} did not start (see ${logFile})`, { cause: error });
      await sleep(200);
    }
  }
  return { name, ip, stateDir, api, child, logFile };
}

export async function startDaemonPair(options: DaemonPairOptions): Promise<DaemonPair> {
  await sweepStaleHosts();
  const hosts = await createTwoHosts();
  const started: DaemonHost[] = [];
  let pool: TestPool | undefined;
  const stop = async () => {
    for (const host of started.splice(0).reverse()) {
      host.child.kill('SIGTERM');
      const exited = await Promise.race([host.child.exited.then(() => true), sleep(60_000).then(() => false)]);
      if (!exited) host.child.kill('SIGKILL');
    }
    // A QEMU whose daemon was killed and never restarted would outlive the test bed.
    await run('pkill', ['-KILL', '-f', `qemu-system.*${options.dir}/`], { okExitCodes: [1] });
    await hosts.destroy();
    await pool?.destroy();
  };
  try {
    if (options.linkRate) await hosts.shape(options.linkRate);
    pool = await createTestPool(options.dir, 4 * options.bufferSize + 512 * 1024 ** 2);
    const sourceDir = join(options.dir, 'source');
    const targetDir = join(options.dir, 'target');
    const sourceBuffer = { driver: 'zfs', pool: pool.name, size: options.bufferSize, path: join(sourceDir, 'buffer') };
    await openVolume({ driver: 'zfs', pool: pool.name, mountpoint: sourceBuffer.path }).create(options.bufferSize);
    const targetBuffer = { driver: 'dir', size: 64 * 1024 ** 2, path: join(targetDir, 'buffer') };
    await openVolume({ driver: 'dir', path: targetBuffer.path }).create(64 * 1024 ** 2);
    const migration = options.migration ?? {};
    const launch = {
      source: (daemon?: Readonly<Record<string, unknown>>) => startHost('source', hosts.src.ns, hosts.src.ip, sourceDir, sourceBuffer, migration, options.daemonArgs, daemon),
      target: (daemon?: Readonly<Record<string, unknown>>) => startHost('target', hosts.dst.ns, hosts.dst.ip, targetDir, targetBuffer, migration, options.daemonArgs, daemon),
    };
    started.push(await launch.source());
    started.push(await launch.target());
    const [source, target] = started as [DaemonHost, DaemonHost];
    const [sourceInfo, targetInfo] = await Promise.all([source.api.call<{ certificate: string }>('GET', '/1.0'), target.api.call<{ certificate: string }>('GET', '/1.0')]);
    await target.api.call('POST', '/1.0/peers', { name: 'src', certificate: sourceInfo.certificate, address: `${source.ip}:8443` });
    await source.api.call('POST', '/1.0/peers', { name: 'dst', certificate: targetInfo.certificate, address: `${target.ip}:8443` });
    const current = { source, target };
    const testPool = pool;
    return {
      hosts,
      pool: testPool,
      get source() {
        return current.source;
      },
      get target() {
        return current.target;
      },
      kill: async (side) => {
        current[side].child.kill('SIGKILL');
        await current[side].child.exited;
        started.splice(started.indexOf(current[side]), 1);
      },
      restart: async (side, daemon) => {
        current[side] = await launch[side](daemon);
        started.push(current[side]);
        return current[side];
      },
      close: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
