import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CowTracker, writtenExtent } from '../../src/monitor/cow-tracker.js';
import { QmpClient } from '../../src/qmp/client.js';
import { QmpCommands, type BlockStatsEntry } from '../../src/qmp/commands.js';
import { fakeQmp, type FakeQmp } from '../support/fake-qmp.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir('cow');
const MiB = 1024 ** 2;

const stats = (wrHighestOffset: number, wrBytes = 0) => ({ wr_bytes: wrBytes, wr_operations: 0, rd_bytes: 0, wr_highest_offset: wrHighestOffset });

/** What QEMU lists with `query-nodes`: the overlay, its file child, the frozen base below it. */
function perNode(extent: number): BlockStatsEntry[] {
  return [
    { 'node-name': 'cowbuf-ovl0', stats: stats(0), parent: { 'node-name': '#block123', stats: stats(extent) } },
    { 'node-name': '#block123', stats: stats(extent) },
    { 'node-name': 'disk0-node', stats: stats(0), parent: { 'node-name': '#block042', stats: stats(64 * MiB) } },
  ];
}

const opened: Array<{ server: FakeQmp; client: QmpClient }> = [];
afterEach(async () => {
  for (const { server, client } of opened.splice(0)) {
    await client.disconnect();
    await server.close();
  }
});

/** A VM whose QMP reports `vm.extent` for its overlay's file node and `vm.written` for its drive (`vm.qdev`). */
async function vmWith(vm: { extent: number; written: number; broken?: boolean; qdev?: string }): Promise<QmpCommands> {
  const server = await fakeQmp((command, args) => {
    if (vm.broken) return { error: { class: 'GenericError', desc: 'the VM is gone' } };
    if (command === 'query-named-block-nodes') return { return: [{ 'node-name': 'cowbuf-ovl0', drv: 'qcow2', file: '', image: { filename: '', 'virtual-size': 64 * MiB, 'actual-size': 64 * 1024 } }] };
    if (command !== 'query-blockstats') return { error: { class: 'CommandNotFound', desc: command } };
    if ((args as { 'query-nodes'?: boolean } | undefined)?.['query-nodes']) return { return: perNode(vm.extent) };
    return { return: [{ device: '', qdev: vm.qdev ?? '/machine/peripheral/disk0/virtio-backend', 'node-name': 'cowbuf-ovl0', stats: stats(0, vm.written) }] };
  });
  const client = new QmpClient({ commandTimeoutMs: 2000 });
  await client.connect(server.path, { timeoutMs: 2000 });
  opened.push({ server, client });
  return new QmpCommands(client);
}

async function overlayFile(name: string, bytes: number): Promise<string> {
  const path = join(dir(), name);
  await writeFile(path, Buffer.alloc(bytes, 1));
  return path;
}

describe('writtenExtent: the overlay allocation QEMU has written', () => {
  it("is the wr_highest_offset of the named node's file child, not of the node or of others", () => {
    expect(writtenExtent(perNode(10 * MiB), 'cowbuf-ovl0')).toBe(10 * MiB);
    expect(writtenExtent(perNode(10 * MiB), 'cowbuf-ovl1')).toBeUndefined();
    expect(writtenExtent([{ 'node-name': 'cowbuf-ovl0', stats: stats(5) }], 'cowbuf-ovl0')).toBeUndefined();
  });
});

describe('CowTracker', () => {
  it('takes the written extent when st_blocks lags behind it (a sync not yet come), st_blocks as the floor', async () => {
    const vm = { extent: 10 * MiB, written: 9 * MiB };
    const tracker = new CowTracker();
    tracker.track({ id: 'a/disk0', path: await overlayFile('a.qcow2', 64 * 1024), qmp: await vmWith(vm), nodeName: 'cowbuf-ovl0', qdev: 'disk0' });
    const [fresh] = (await tracker.sample(0)).readings;
    expect(fresh).toMatchObject({ allocated: 10 * MiB, extent: 10 * MiB, written: 9 * MiB, actualSize: 64 * 1024 });
    expect(fresh?.stBlocks).toBeLessThan(MiB);

    // Before the guest's first write QEMU has written nothing: the file's own blocks stand.
    vm.extent = 0;
    const [unwritten] = (await tracker.sample(1)).readings;
    expect(unwritten?.allocated).toBe(unwritten?.stBlocks);
    expect(unwritten?.stBlocks).toBeGreaterThan(0);
  });

  it('follows the extent tick by tick while st_blocks stands still', async () => {
    const vm = { extent: 0, written: 0 };
    const tracker = new CowTracker();
    tracker.track({ id: 'a/disk0', path: await overlayFile('b.qcow2', 4096), qmp: await vmWith(vm), nodeName: 'cowbuf-ovl0', qdev: 'disk0' });
    let reading;
    for (let i = 1; i <= 20; i += 1) {
      vm.extent = i * MiB;
      vm.written = i * 2 * MiB;
      [reading] = (await tracker.sample(i * 0.5)).readings;
      expect(reading?.allocated).toBe(i * MiB);
    }
    expect(reading?.estimate.uniqueFraction).toBeCloseTo(0.5, 6);
  });

  it('finds the guest writes of a scsi-hd disk, whose qdev path is the device itself', async () => {
    const tracker = new CowTracker();
    tracker.track({ id: 'a/disk1', path: await overlayFile('e.qcow2', 4096), qmp: await vmWith({ extent: MiB, written: 3 * MiB, qdev: '/machine/peripheral/disk1' }), nodeName: 'cowbuf-ovl0', qdev: 'disk1' });
    tracker.track({ id: 'b/disk1', path: await overlayFile('f.qcow2', 4096), qmp: await vmWith({ extent: MiB, written: 3 * MiB, qdev: '/machine/peripheral/disk10' }), nodeName: 'cowbuf-ovl0', qdev: 'disk1' });
    const { readings } = await tracker.sample(0);
    expect(readings.map((r) => [r.id, r.written])).toEqual([
      ['a/disk1', 3 * MiB],
      ['b/disk1', undefined],
    ]);
  });

  it('reports a VM that fails as failed and still samples the others', async () => {
    const broken = { extent: 0, written: 0, broken: true };
    const tracker = new CowTracker();
    tracker.track({ id: 'a/disk0', path: await overlayFile('c.qcow2', 4096), qmp: await vmWith({ extent: MiB, written: 0 }), nodeName: 'cowbuf-ovl0', qdev: 'disk0' });
    tracker.track({ id: 'b/disk0', path: await overlayFile('d.qcow2', 4096), qmp: await vmWith(broken), nodeName: 'cowbuf-ovl0', qdev: 'disk0' });
    tracker.track({ id: 'c/disk0', path: join(dir(), 'removed.qcow2') });
    const { readings, failures } = await tracker.sample(0);
    expect(readings.map((r) => [r.id, r.allocated])).toEqual([['a/disk0', MiB]]);
    expect(failures.map((f) => f.id).sort()).toEqual(['b/disk0', 'c/disk0']);
    expect(failures.find((f) => f.id === 'b/disk0')?.error.message).toContain('the VM is gone');
  });
});
