import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/cli/client.js';
import { apiHandler } from '../../src/daemon/api.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import type { MetricsInput } from '../../src/daemon/metrics.js';
import { processAlive } from '../../src/exec/run.js';
import { Engine } from '../../src/migration/engine.js';
import { ensureIdentity } from '../../src/peer/identity.js';
import { TrustStore } from '../../src/peer/trust.js';
import { openVolume } from '../../src/storage/registry.js';
import { attachVm } from '../../src/vm/launcher.js';
import type { VmProvider } from '../../src/vm/provider.js';
import { cli, dirDaemon } from '../support/daemons.js';
import { engineConfig } from '../support/engines.js';
import { journalVms, useStandIns, type StandIn } from '../support/stand-in-qemu.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('remove-vm');
const standIn = useStandIns();
const daemons: Daemon[] = [];
afterAll(async () => {
  for (const daemon of daemons) await daemon.close();
});

const names = async (daemon: Daemon) => (JSON.parse((await cli(daemon, 'vm', 'list', '--format', 'json')).stdout) as { name: string }[]).map((vm) => vm.name);

/** A daemon that comes up with VMs it started (`own*`) and adopted (`theirs*`) before a restart. */
async function daemonWith(...vms: string[]): Promise<{ daemon: Daemon; vms: Record<string, StandIn> }> {
  const stand = Object.fromEntries(await Promise.all(vms.map(async (name) => [name, await standIn(name)] as const)));
  await journalVms(join(tempDir(), 'host'), vms.map((name) => ({ ...(stand[name] as StandIn), ...(name.startsWith('theirs') ? { adopted: true as const } : {}) })));
  const daemon = await dirDaemon(tempDir(), 'host');
  daemons.push(daemon);
  return { daemon, vms: stand };
}

describe('cowbuf vm delete', () => {
  it("stops a VM the daemon started, releases an adopted one, and a restarted daemon brings back neither", async () => {
    const { daemon, vms } = await daemonWith('own1', 'theirs1', 'own2');
    const own1 = vms.own1 as StandIn;
    const theirs1 = vms.theirs1 as StandIn;
    expect(await cli(daemon, 'vm', 'delete', 'own1')).toEqual({ code: 0, stdout: `stopped own1 (pid ${own1.pid} quit); its disks are kept\n`, stderr: '' });
    expect(own1.quits()).toBe(1);
    expect(processAlive(own1.pid)).toBe(false);
    expect(await cli(daemon, 'vm', 'rm', 'theirs1')).toEqual({ code: 0, stdout: `released theirs1: its QEMU (pid ${theirs1.pid}) runs on without cowbuf\n`, stderr: '' });
    expect(theirs1.quits()).toBe(0);
    expect(processAlive(theirs1.pid)).toBe(true);
    expect(await names(daemon)).toEqual(['own2']);

    await daemon.close();
    daemons.splice(daemons.indexOf(daemon), 1);
    const restarted = await startDaemon(join(tempDir(), 'host.yaml'), pino({ level: 'silent' }));
    daemons.push(restarted);
    expect(await names(restarted)).toEqual(['own2']);
    expect(await cli(restarted, 'vm', 'delete', 'own1')).toEqual({ code: 1, stdout: '', stderr: 'Error: unknown VM "own1" (this host\'s VMs: own2)\n' });
    await expect(new ApiClient(restarted.config.daemon.socket).call('DELETE', '/1.0/vms/own1')).rejects.toMatchObject({ status: 404 });
  });

  it('gives a bad name the error the other VM endpoints give it', async () => {
    const daemon = await dirDaemon(tempDir(), 'names');
    daemons.push(daemon);
    const spec = join(tempDir(), 'bad.yaml');
    await writeFile(spec, `name: .hidden;rm\nmemoryMiB: 64\ndisks: [{id: vda, file: /srv/a.qcow2}]\n`);
    const deleted = await cli(daemon, 'vm', 'delete', '.hidden;rm');
    expect(deleted).toEqual({ code: 1, stdout: '', stderr: expect.stringMatching(/^Error: Expected `name` to be a name of letters, digits, .* got `\.hidden;rm`\n$/) });
    expect(await cli(daemon, 'vm', 'start', spec)).toEqual(deleted);
  });

  it("answers 405 naming why when the engine's VM provider removes no VMs (an embedder's own), and keeps the VM", async () => {
    const stateDir = join(tempDir(), 'embedder');
    const volume = openVolume({ driver: 'dir', path: join(stateDir, 'buffer') });
    await volume.create(16 * 1024 ** 2);
    const [identity, trust] = await Promise.all([ensureIdentity(join(stateDir, 'identity'), 'embedder'), TrustStore.open(join(stateDir, 'trust.json'))]);
    const provider: VmProvider = { vms: () => Promise.resolve({ running: [], gone: [] }), launchIncoming: () => Promise.reject(new Error('not here')), arrived: () => Promise.resolve(), departed: () => Promise.resolve() };
    const engine = new Engine({ config: engineConfig(stateDir, 16 * 1024 ** 2), identity, trust, volume, provider });
    const theirs = await standIn('web1');
    engine.vms.set('web1', await attachVm(theirs.spec, theirs.pid, 'tcg'));
    const socket = join(tempDir(), 'embedder.sock');
    const server = createServer(apiHandler({ engine, trust, volume, stateDir, info: () => ({}), metrics: () => ({}) as MetricsInput }));
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    try {
      await expect(new ApiClient(socket).call('DELETE', '/1.0/vms/web1')).rejects.toMatchObject({
        status: 405,
        message: "VM web1 cannot be removed here: this engine's VM provider does not offer it (the daemon embedding the engine manages its own VMs)",
      });
      expect(engine.vms.has('web1')).toBe(true);
      expect(theirs.quits()).toBe(0);
      // Nor does it start any on request, and says so the same way.
      await expect(new ApiClient(socket).call('POST', '/1.0/vms', { name: 'web2', memoryMiB: 64, disks: [{ id: 'vda', file: '/srv/web2.qcow2' }] })).rejects.toMatchObject({ status: 405, message: expect.stringMatching(/^VM web2 cannot be started here: /) });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await engine.vms.get('web1')?.qmp.disconnect();
    }
  });
});
