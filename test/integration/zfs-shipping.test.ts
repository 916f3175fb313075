import { describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import { zfsCreate, zfsGet } from '../../src/storage/zfs/zfs-commands.js';
import { guestVm, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { enginePair, type EnginePair } from '../support/engines.js';
import { qemuImg, useScope, type Scope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('zfs-ship');

/** A busy guest whose disk lives in its own dataset of the pair's pool, as LXD lays VMs out. */
async function guestOnDataset(s: Scope, pair: EnginePair) {
  const dataset = `${pair.pool.name}/vm-g1`;
  await zfsCreate(dataset, {});
  const mountpoint = (await zfsGet(dataset, ['mountpoint']))?.get('mountpoint') ?? '';
  const disk = `${mountpoint}/root.qcow2`;
  await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
  await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 9 40M 8M', disk]);
  const vm = await pair.source.launchVm(guestVm({ name: 'g1', dir: s.dir, disk: { file: disk, format: 'qcow2' }, workload: { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 3 } }));
  await waitForSerial(vm.spec.serialLog, (r) => r.heartbeats.length > 1, 'heartbeats on the source');
  return { vm, dataset };
}

const snapshots = async () => (await run('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot'])).stdout.split('\n').filter((name) => name.includes('@cowbuf-'));

describe('bases shipped by zfs send | zfs receive when the disks live on ZFS at both ends', { timeout: 240_000 }, () => {
  it('ships the dataset, and the guest runs on the received copy with every write; no snapshot is left', async () => {
    const pair = await enginePair(scope(), 128 * MiB, {}, { incomingDataset: 'incoming' });
    try {
      await zfsCreate(`${pair.pool.name}/incoming`, {});
      const { vm, dataset } = await guestOnDataset(scope(), pair);
      const record = pair.source.migrate('g1', 'dst');
      const done = await pair.source.waitFor(record.id);
      expect(done.phase, done.error).toBe('completed');
      expect(done.decisions.find((d) => d.startsWith('bases shipped'))).toMatch(new RegExp(`^bases shipped as a zfs send stream of ${dataset}@cowbuf-${record.id} \\(\\d+ bytes, sha256 [0-9a-f]{12}…\\)$`));
      const received = `${pair.pool.name}/incoming/${record.id}`;
      const receivedMount = (await zfsGet(received, ['mountpoint']))?.get('mountpoint');
      const arrived = pair.target.vms.get('g1');
      expect(arrived?.spec.disks[0]?.file).toBe(`${receivedMount}/root.qcow2`);
      const onTarget = await waitForSerial(arrived?.spec.serialLog ?? '', (r) => r.verifications.length >= 2, 'two verifications on the target', { timeoutMs: 60_000 });
      expect(onTarget.verifications.every((v) => v.lost === 0)).toBe(true);
      expect(onTarget.ioErrors).toEqual([]);
      expect((await readSerial(vm.spec.serialLog)).ioErrors).toEqual([]);
      expect(await snapshots()).toEqual([]);
    } finally {
      await pair.close();
    }
  });

  it('a target whose incoming dataset parent is missing refuses before anything moves: the guest writes on at the source, no snapshot or dataset is left', async () => {
    const pair = await enginePair(scope(), 128 * MiB, {}, { incomingDataset: 'missing-parent' });
    try {
      const { vm } = await guestOnDataset(scope(), pair);
      const record = pair.source.migrate('g1', 'dst');
      const done = await pair.source.waitFor(record.id);
      expect(done.phase).toBe('failed');
      expect(done.error).toMatch(new RegExp(`^migration ${record.id} failed in phase prepare: peer dst: incoming dataset parent \\S+/missing-parent is not mounted`));
      expect(await vm.commands.queryStatus()).toMatchObject({ running: true });
      const before = (await readSerial(vm.spec.serialLog)).verifications.length;
      const after = await waitForSerial(vm.spec.serialLog, (r) => r.verifications.length >= before + 2, 'verifications after the rollback');
      expect(after.verifications.every((v) => v.lost === 0)).toBe(true);
      expect(after.ioErrors).toEqual([]);
      expect(await snapshots()).toEqual([]);
      expect((await run('zfs', ['list', '-H', '-o', 'name'])).stdout).not.toContain('missing-parent');
      expect(pair.source.loop.partition.bins).toEqual([]);
    } finally {
      await pair.close();
    }
  });
});
