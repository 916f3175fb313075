/**
 * cowbufd: one per host. Loads and validates the config, takes the state-dir lock, opens the
 * buffer volume (created by `cowbuf init`), its identity and trust store, runs the engine (peer
 * API, control loop, both migration roles) and serves the REST API on a 0660 unix socket.
 * SIGHUP reloads what can change live (the policy and the log level); SIGTERM rolls back what is
 * in flight and stops, leaving the guests running.
 */
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { throttlePolicy } from '../buffer/throttle/index.js';
import { ConfigError, loadConfig, volumeConfig, type Config } from '../config/config.js';
import { engineConfigOf } from '../config/engine-config.js';
import { CowbufError } from '../errors.js';
import { run } from '../exec/run.js';
import type { TickTrace } from '../migration/tick-trace.js';
import { Engine } from '../migration/engine.js';
import { FINAL } from '../migration/record.js';
import { ensureIdentity, type Identity } from '../peer/identity.js';
import { TrustStore } from '../peer/trust.js';
import { openVolume } from '../storage/registry.js';
import { apiHandler } from './api.js';
import { lockStateDir } from './lock.js';

export interface Daemon {
  readonly engine: Engine;
  readonly identity: Identity;
  readonly trust: TrustStore;
  readonly config: Config;
  readonly log: Logger;
  reload(): Promise<void>;
  close(): Promise<void>;
}

async function socketGroup(group: string): Promise<number> {
  const { stdout } = await run('getent', ['group', group]);
  const gid = Number(stdout.split(':')[2]);
  if (!Number.isInteger(gid)) throw new CowbufError(`unknown group ${group}`);
  return gid;
}

export async function startDaemon(configPath: string, log: Logger = pino({ name: 'cowbufd' })): Promise<Daemon> {
  let config = await loadConfig(configPath);
  if (!config) throw new ConfigError(`no configuration at ${configPath} (run \`cowbuf init\` first)`);
  const { stateDir } = config;
  await mkdir(stateDir, { recursive: true, mode: 0o755 });
  const unlock = await lockStateDir(stateDir);
  try {
    const volume = openVolume(volumeConfig(config));
    const status = await volume.status();
    const identity = await ensureIdentity(join(stateDir, 'identity'));
    const trust = await TrustStore.open(join(stateDir, 'trust.json'));
    const engine = new Engine({
      config: engineConfigOf(config, status.size),
      identity,
      trust,
      volume,
      ...(config.daemon.accel ? { launch: { accel: config.daemon.accel } } : {}),
    });
    const outcomes: Record<string, number> = {};
    const tickSeconds = { sum: 0, lagSum: 0, count: 0 };
    let lastTick: TickTrace | undefined;
    engine.on('log', (entry) => (entry.migration ? log.child({ migration: entry.migration }) : log)[entry.level](entry.message));
    engine.on('migration', (record) => {
      log.child({ migration: record.id }).debug({ phase: record.phase, progress: record.progress }, 'migration updated');
      if (FINAL.has(record.phase)) outcomes[record.phase] = (outcomes[record.phase] ?? 0) + 1;
    });
    engine.on('tick', (trace) => {
      lastTick = trace;
      tickSeconds.sum += trace.durationMs / 1000;
      tickSeconds.lagSum += trace.lagMs / 1000;
      tickSeconds.count += 1;
    });
    engine.on('arrived', (vm) => log.info({ vm: vm.spec.name }, 'VM arrived and runs here'));
    await engine.start();

    await rm(config.daemon.socket, { force: true });
    const server: Server = createServer(
      apiHandler({
        engine,
        trust,
        volume,
        stateDir,
        info: () => ({ api_version: '1.0', server: 'cowbufd', fingerprint: identity.fingerprint, certificate: identity.cert, peerPort: engine.peerPort, policy: config?.migration.policy }),
        metrics: () => ({ partition: engine.loop.partition, records: engine.list(), lastTick, tickSeconds, outcomes }),
      }),
    );
    const socket = config.daemon.socket;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => resolve());
    });
    await chmod(socket, 0o660);
    if (config.daemon.socketGroup) await chown(socket, 0, await socketGroup(config.daemon.socketGroup));
    log.info({ socket, peerPort: engine.peerPort, fingerprint: identity.fingerprint, buffer: status.source, size: status.size }, 'cowbufd ready');

    return {
      engine,
      identity,
      trust,
      get config() {
        return config as Config;
      },
      log,
      reload: async () => {
        const next = await loadConfig(configPath);
        if (!next) return;
        engine.loop.setPolicy(throttlePolicy(next.migration.policy));
        log.level = next.daemon.logLevel;
        config = next;
        log.info({ policy: next.migration.policy, logLevel: next.daemon.logLevel }, 'configuration reloaded');
      },
      close: async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        // The guests keep running: a restarted daemon (an upgrade) reattaches to them, as after a crash.
        await engine.close();
        await rm(socket, { force: true });
        await unlock();
      },
    };
  } catch (error) {
    await unlock();
    throw error;
  }
}
