/**
 * cowbufd hosts on one machine, a source and one or more targets: each daemon runs inside its own
 * network namespace (so its QEMUs do too), each target reaches the source only over its own
 * shaped veth, and each pair trusts the other's pinned certificate (targets do not know each
 * other). The source's buffer is a zfs dataset on a test pool; a target's a small dir buffer (it
 * only receives). Used by the end-to-end tests and the README's demo.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { ApiClient } from '../cli/client.js';
import { CowbufError, ValidationError } from '../errors.js';
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
  /** The targets after `target`, trusted by the source as `dst2`, `dst3`, … (`options.moreTargets`). */
  readonly more: readonly DaemonHost[];
  readonly pool: TestPool;
  /** SIGKILLs that side's daemon (its QEMUs live on), waits for it to be gone. */
  kill(side: 'source' | 'target'): Promise<void>;
  /**
   * Starts that side's daemon again on the same state directory and config, plus extra `daemon:`
   * settings; with `mounts`, in a mount namespace of its own where those mounts hide or replace
   * files (so a target can lack, or hold another version of, a file the source has).
   */
  restart(side: 'source' | 'target', daemon?: Readonly<Record<string, unknown>>, mounts?: readonly Mount[]): Promise<DaemonHost>;
  close(): Promise<void>;
}

export interface DaemonPairOptions {
  readonly dir: string;
  readonly bufferSize: number;
  /** Every target's link is shaped to it. */
  readonly linkRate?: string;
  /** Targets beyond the first (default 0). */
  readonly moreTargets?: number;
  /** Extra `migration:` settings for every daemon. */
  readonly migration?: Readonly<Record<string, unknown>>;
  /**
   * Node arguments that start another daemon on the same config file instead of cowbufd (the
   * example embedder); it must answer `GET /1.0` and `POST /1.0/peers` as cowbufd does.
   */
  readonly daemonArgs?: (configPath: string) => readonly string[];
}

/** Over `target`: an empty tmpfs (it hides what is there), or `source` bound over it. */
export interface Mount {
  readonly target: string;
  readonly source?: string;
}

/** Paths a shell line may hold unquoted: the test bed's own, under its run directories. */
const PLAIN_PATH = /^\/[\w./-]+$/;

/** The command that runs `cmd` with `mounts` made first, in a mount namespace of its own. */
function withMounts(cmd: string, args: readonly string[], mounts: readonly Mount[]): [string, string[]] {
  if (mounts.length === 0) return [cmd, [...args]];
  const lines = mounts.map((mount, index) => {
    for (const [field, value] of [['target', mount.target], ['source', mount.source]] as const) {
      if (value !== undefined && !PLAIN_PATH.test(value)) throw new ValidationError(`mounts[${index}].${field}`, value, 'an absolute path of letters, digits, `_`, `.`, `-` and `/`');
    }
    return mount.source === undefined ? `mount -t tmpfs cowbuf-hide ${mount.target}` : `mount --bind ${mount.source} ${mount.target}`;
  });
  return ['unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-ec', `${lines.join('\n')}\nexec "$@"`, 'sh', cmd, ...args]];
}

const COWBUFD = (configPath: string): readonly string[] => (COMPILED ? [COMPILED, '--config', configPath] : ['--import', 'tsx', ENTRY, '--config', configPath]);

interface HostSettings {
  readonly migration: Readonly<Record<string, unknown>>;
  readonly daemonArgs?: DaemonPairOptions['daemonArgs'];
  readonly daemon?: Readonly<Record<string, unknown>>;
  readonly mounts?: readonly Mount[];
}

async function startHost(name: string, ns: string, ip: string, stateDir: string, buffer: Record<string, unknown>, settings: HostSettings): Promise<DaemonHost> {
  const { migration, daemonArgs = COWBUFD, daemon = {}, mounts = [] } = settings;
  await mkdir(stateDir, { recursive: true });
  const configPath = join(stateDir, 'cowbuf.yaml');
  const config = { stateDir, buffer, daemon: { peerListen: `${ip}:8443`, socket: join(stateDir, 'unix.socket'), logLevel: 'info', ...daemon }, migration: { controlPeriodMs: 500, ...migration } };
  await writeFile(configPath, stringify(config));
  const logFile = join(stateDir, 'cowbufd.log');
  const [cmd, args] = withMounts(process.execPath, daemonArgs(configPath), mounts);
  const child = spawn(cmd, args, { netns: ns, logFile });
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
  const hosts = await createTwoHosts({ moreTargets: options.moreTargets ?? 0 });
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
    if (options.linkRate) for (const link of [hosts, ...hosts.more]) await link.shape(options.linkRate);
    pool = await createTestPool(options.dir, 4 * options.bufferSize + 512 * 1024 ** 2);
    const sourceDir = join(options.dir, 'source');
    const targetDir = (k: number) => join(options.dir, k === 0 ? 'target' : `target${k + 1}`);
    const sourceBuffer = { driver: 'zfs', pool: pool.name, size: options.bufferSize, path: join(sourceDir, 'buffer') };
    await openVolume({ driver: 'zfs', pool: pool.name, mountpoint: sourceBuffer.path }).create(options.bufferSize);
    const targetBuffer = async (k: number) => {
      const buffer = { driver: 'dir', size: 64 * 1024 ** 2, path: join(targetDir(k), 'buffer') };
      await openVolume({ driver: 'dir', path: buffer.path }).create(buffer.size);
      return buffer;
    };
    const migration = options.migration ?? {};
    const firstBuffer = await targetBuffer(0);
    const settings = (daemon?: Readonly<Record<string, unknown>>, mounts?: readonly Mount[]): HostSettings => ({ migration, ...(options.daemonArgs ? { daemonArgs: options.daemonArgs } : {}), ...(daemon ? { daemon } : {}), ...(mounts ? { mounts } : {}) });
    const launch = {
      source: (daemon?: Readonly<Record<string, unknown>>, mounts?: readonly Mount[]) => startHost('source', hosts.src.ns, hosts.src.ip, sourceDir, sourceBuffer, settings(daemon, mounts)),
      target: (daemon?: Readonly<Record<string, unknown>>, mounts?: readonly Mount[]) => startHost('target', hosts.dst.ns, hosts.dst.ip, targetDir(0), firstBuffer, settings(daemon, mounts)),
    };
    started.push(await launch.source());
    started.push(await launch.target());
    const [source, target] = started as [DaemonHost, DaemonHost];
    const more: DaemonHost[] = [];
    for (const [index, link] of hosts.more.entries()) {
      const k = index + 1;
      const host = await startHost(`target${k + 1}`, link.target.ns, link.target.ip, targetDir(k), await targetBuffer(k), settings());
      started.push(host);
      more.push(host);
    }
    const sourceInfo = await source.api.call<{ certificate: string }>('GET', '/1.0');
    for (const [k, host] of [target, ...more].entries()) {
      const info = await host.api.call<{ certificate: string }>('GET', '/1.0');
      await host.api.call('POST', '/1.0/peers', { name: 'src', certificate: sourceInfo.certificate, address: `${source.ip}:8443` });
      await source.api.call('POST', '/1.0/peers', { name: k === 0 ? 'dst' : `dst${k + 1}`, certificate: info.certificate, address: `${host.ip}:8443` });
    }
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
      more,
      kill: async (side) => {
        current[side].child.kill('SIGKILL');
        await current[side].child.exited;
        started.splice(started.indexOf(current[side]), 1);
      },
      restart: async (side, daemon, mounts) => {
        current[side] = await launch[side](daemon, mounts);
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
