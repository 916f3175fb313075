#!/usr/bin/env node
/**
 * minilxd: a small LXD-style daemon that owns its VMs and embeds cowbuf for their migrations,
 * through the package's public entry point only. It keeps its own VM store (a JSON file), starts
 * and stops its own QEMUs, and implements cowbuf's VmProvider so the engine never does either.
 * Its REST API speaks LXD's envelopes on a unix socket, for the few calls a test bed needs:
 * GET /1.0, POST /1.0/peers, GET|POST /1.0/vms, GET|POST /1.0/migrations, GET /1.0/operations/{id}/wait.
 *
 *   node minilxd.mjs --config cowbuf.yaml     (the cowbuf configuration format)
 */
import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse } from 'yaml';
import { attachRunning, detectAccel, Engine, engineConfigOf, ensureIdentity, openVolume, parseConfig, qemuArgv, TrustStore, ValidationError } from 'cowbuf';

const configPath = process.argv[process.argv.indexOf('--config') + 1];
const config = parseConfig(parse(await readFile(configPath, 'utf8')));
const home = join(config.stateDir, 'minilxd');
await mkdir(home, { recursive: true });
const log = (message) => process.stdout.write(`${new Date().toISOString()} ${message}\n`);

/** minilxd's own store: the definition and pid of each VM it runs. */
class Store {
  file = join(home, 'vms.json');
  async load() {
    return JSON.parse(await readFile(this.file, 'utf8').catch(() => '[]'));
  }
  async put(spec, pid) {
    const vms = (await this.load()).filter((vm) => vm.spec.name !== spec.name);
    await writeFile(this.file, JSON.stringify([...vms, { spec, pid }], null, 2));
  }
  async remove(name) {
    await writeFile(this.file, JSON.stringify((await this.load()).filter((vm) => vm.spec.name !== name), null, 2));
  }
}

const store = new Store();
const accel = await detectAccel();

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** minilxd's own way to stop a VM: SIGTERM, which QEMU takes as a clean quit. */
function ownStop(handle) {
  let stopping;
  return {
    ...handle,
    stop: () =>
      (stopping ??= (async () => {
        await handle.qmp.disconnect();
        if (alive(handle.pid)) process.kill(handle.pid, 'SIGTERM');
        for (let i = 0; i < 200 && alive(handle.pid); i += 1) await sleep(50);
      })()),
  };
}

/** Starts QEMU itself, from the same device model cowbuf describes, and gives cowbuf a monitor. */
async function startQemu(spec) {
  await mkdir(dirname(spec.qmpSocket), { recursive: true });
  await rm(spec.qmpSocket, { force: true });
  const out = await open(`${spec.qmpSocket}.log`, 'a');
  const child = spawn('qemu-system-x86_64', qemuArgv(spec, accel), { stdio: ['ignore', out.fd, out.fd], detached: true });
  child.unref();
  await out.close();
  for (let attempt = 0; ; attempt += 1) {
    try {
      return ownStop(await attachRunning(spec, child.pid));
    } catch (error) {
      if (attempt > 100 || child.exitCode !== null) throw error;
      await sleep(100);
    }
  }
}

/** cowbuf's VM-provider port, answered from minilxd's store and launcher. */
const provider = {
  async vms() {
    const running = [];
    const gone = [];
    for (const { spec, pid } of await store.load()) {
      if (alive(pid)) running.push(ownStop(await attachRunning(spec, pid)));
      else gone.push(spec);
    }
    return { running, gone };
  },
  launchIncoming: (spec) => startQemu(spec),
  async arrived(vm) {
    await store.put(vm.spec, vm.pid);
    log(`VM ${vm.spec.name} arrived; minilxd runs it now (pid ${vm.pid})`);
  },
  async departed(vm, migration) {
    await vm.stop();
    await store.remove(vm.spec.name);
    log(`VM ${vm.spec.name} left by ${migration}; its QEMU is stopped and it is out of the store`);
  },
};

const volume = openVolume(config.buffer.driver === 'zfs' ? { driver: 'zfs', pool: config.buffer.pool, mountpoint: config.buffer.path } : { driver: 'dir', path: config.buffer.path });
const trust = await TrustStore.open(join(config.stateDir, 'trust.json'));
const identity = await ensureIdentity(join(config.stateDir, 'identity'));
const engine = new Engine({ config: engineConfigOf(config, (await volume.status()).size), identity, trust, volume, provider });
engine.on('log', (entry) => log(`${entry.level} ${entry.migration ?? ''} ${entry.message}`));
await engine.start();

async function body(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return JSON.parse(text || '{}');
}

const routes = {
  'GET /1.0': () => ({ certificate: identity.cert, fingerprint: identity.fingerprint, peerPort: engine.peerPort, server: 'minilxd' }),
  'POST /1.0/peers': async (req) => {
    const { name, certificate, address } = await body(req);
    const peer = await trust.add(name, certificate, address);
    return { name: peer.name, fingerprint: peer.fingerprint };
  },
  'GET /1.0/vms': () => [...engine.vms.values()].map((vm) => ({ name: vm.spec.name, pid: vm.pid, running: vm.running(), serialLog: vm.spec.serialLog })),
  'POST /1.0/vms': async (req) => {
    const definition = await body(req);
    const dir = join(home, 'vms', definition.name);
    const spec = { ...definition, vcpus: definition.vcpus ?? 1, disks: definition.disks.map((disk, i) => ({ nodeName: `disk${i}`, format: 'qcow2', werror: 'stop', ...disk })), qmpSocket: join(dir, 'cowbuf.qmp'), serialLog: join(dir, 'serial.log') };
    const vm = await startQemu(spec);
    await store.put(spec, vm.pid);
    await engine.adoptVm(vm);
    return { name: spec.name, pid: vm.pid, serialLog: spec.serialLog };
  },
  'GET /1.0/migrations': () => engine.list(),
  'POST /1.0/migrations': async (req) => {
    const { vm, target } = await body(req);
    return engine.migrate(vm, target);
  },
};

// A killed predecessor leaves its socket behind (a production daemon would hold a lock file too).
await rm(config.daemon.socket, { force: true });
createServer(async (req, res) => {
  const wait = /^\/1\.0\/operations\/([^/]+)\/wait$/.exec(req.url ?? '');
  const route = wait ? () => engine.waitFor(wait[1]) : routes[`${req.method} ${req.url}`];
  try {
    if (!route) throw Object.assign(new Error(`no such endpoint ${req.url}`), { status: 404 });
    const metadata = await route(req);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'sync', status: 'Success', status_code: 200, metadata }));
  } catch (error) {
    const status = error.status ?? (error instanceof ValidationError ? 400 : 500);
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'error', error: error.message, error_code: status }));
  }
}).listen(config.daemon.socket, () => log(`minilxd ready on ${config.daemon.socket}, peer port ${engine.peerPort}`));

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, async () => {
    await engine.close();
    await rm(config.daemon.socket, { force: true });
    process.exit(0);
  });
}
