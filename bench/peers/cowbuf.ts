/** cowbuf itself, the way an admin runs it: two namespaced cowbufd and its migrations API. */
import { join } from 'node:path';
import type { MigrationRecord } from '../../src/migration/engine.js';
import { startDaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody } from '../../src/testbed/guest.js';
import { cpuSeconds } from './measure.js';
import { measured, type GuestRun, type RunResult } from './result.js';
import { guestDisk, LOCAL_SPACE_PER_GUEST, type Workload } from './workloads.js';

export async function runCowbuf(policy: 'deadline' | 'lx066', dir: string, workload: Workload): Promise<RunResult> {
  // One buffer for all guests, as large as the state volumes the Incus replay gives them together.
  const pair = await startDaemonPair({ dir, bufferSize: LOCAL_SPACE_PER_GUEST * workload.guests, linkRate: workload.link });
  try {
    const names = Array.from({ length: workload.guests }, (_, i) => `g${i + 1}`);
    const disks = await Promise.all(names.map((name) => guestDisk(dir, name)));
    const serials: string[] = [];
    for (const [i, name] of names.entries()) {
      const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', guestVmBody(name, disks[i] ?? '', workload.guest, workload.memoryMiB));
      serials.push(vm.serialLog);
    }
    const cpu = async () => (await cpuSeconds(pair.source.child.pid)) + (await cpuSeconds(pair.target.child.pid));
    return await measured({ peer: `cowbuf ${policy}`, workload, serials, link: { ns: pair.hosts.src.ns, dev: pair.hosts.src.veth }, disks, cpu }, async (clock) => {
      const ops = await Promise.all(names.map((vm) => pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm, target: 'dst', policy })));
      const targetSerials = ops.map((op) => join(pair.target.stateDir, 'vms', op.id, 'serial.log'));
      targetSerials.forEach((file) => clock.watch(file));
      const records = await Promise.all(ops.map((op) => pair.source.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${op.id}/wait`)));
      return records.map(({ metadata }, i): GuestRun => ({
        sourceSerial: serials[i] ?? '',
        targetSerial: metadata.phase === 'completed' ? targetSerials[i] : undefined,
        blackoutMs: metadata.blackout?.ms ?? NaN,
        ...(metadata.phase === 'completed' ? {} : { error: `${metadata.phase}: ${metadata.error ?? 'no reason given'}` }),
      }));
    });
  } finally {
    await pair.close();
  }
}
