import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import type { MigrationRecord } from '../../src/migration/engine.js';
import { startDaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { guestAddress } from '../../src/testbed/netns.js';
import { startPing } from '../../src/testbed/ping.js';
import { tapName } from '../../src/vm/spec.js';
import { report } from '../support/report.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('network');
const NIC = { id: 'net0', mac: '52:54:00:12:34:56' };

/** One ping from the client, waited for: the guest answers on the network now. */
async function answers(ns: string, ip: string): Promise<boolean> {
  return run('ping', ['-c', '1', '-W', '1', ip], { netns: ns }).then(
    () => true,
    () => false,
  );
}

describe("the guest's network moves with it", { timeout: 300_000 }, () => {
  it('a client pings a busy guest throughout its migration: the only gap is the switchover, and it answers from the target', async () => {
    const pair = await startDaemonPair({ dir: scope().dir, bufferSize: 128 * MiB, linkRate: '100mbit' });
    try {
      const { ip, cidr } = guestAddress(10);
      const disk = scope().path('g1.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
      const body = { ...guestVmBody('g1', disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 4, verifyEvery: 3, ip: cidr }, 192), nics: [{ ...NIC, bridge: pair.hosts.src.bridge }] };
      const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', body);
      await waitForSerial(vm.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats on the source');
      for (let tries = 0; !(await answers(pair.hosts.client.ns, ip)); tries += 1) expect(tries, 'the guest never answered a ping on the source').toBeLessThan(30);

      const pinger = startPing(pair.hosts.client.ns, ip, join(scope().dir, 'ping.log'));
      const started = await pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm: 'g1', target: 'dst' });
      const record = (await pair.source.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${started.id}/wait`)).metadata;
      expect(record.phase, record.error).toBe('completed');
      // A few seconds on the target: a guest unreachable there would show as a gap up to the stop.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const ping = await pinger.stop();

      expect(ping.received).toBeGreaterThan(0);
      // Replies stop only while the guest is paused and its MAC moves: the blackout, plus the
      // announce crossing the bridges and a ping interval or two either side.
      expect(ping.longestGapMs).toBeLessThan((record.blackout?.ms ?? 0) + 1500);
      expect(await answers(pair.hosts.client.ns, ip)).toBe(true);
      // The source's tap went with its QEMU; the target's is on its bridge.
      const tap = tapName('g1', NIC);
      await expect(run('ip', ['link', 'show', tap], { netns: pair.hosts.src.ns })).rejects.toThrow();
      expect((await run('ip', ['-o', 'link', 'show', tap], { netns: pair.hosts.dst.ns })).stdout).toContain(`master ${pair.hosts.dst.bridge}`);

      const [arrived] = await pair.target.api.call<Array<{ serialLog: string }>>('GET', '/1.0/vms');
      const onTarget = await waitForSerial(arrived?.serialLog ?? '', (r) => r.verifications.length >= 2, 'two verifications on the target', { timeoutMs: 90_000 });
      expect(onTarget.verifications.every((v) => v.lost === 0)).toBe(true);
      expect((await readSerial(vm.serialLog)).ioErrors).toEqual([]);
      await report('network', { ...ping, lossPercent: Math.round((1000 * (ping.transmitted - ping.received)) / ping.transmitted) / 10, blackoutMs: record.blackout?.ms });
    } finally {
      await pair.close();
    }
  });
});
