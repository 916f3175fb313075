import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.js';
import { Revert } from '../../src/revert.js';
import { RawShipping } from '../../src/storage/raw/shipping-raw.js';
import { dataExtents } from '../../src/storage/raw/sparse.js';
import type { Extent, ExtentSink, Outgoing } from '../../src/storage/shipping.js';
import { ZfsShipping } from '../../src/storage/zfs/shipping-zfs.js';
import { zfsCreate, zfsGet, zfsSnapshots } from '../../src/storage/zfs/zfs-commands.js';
import { usePools } from '../support/pools.js';
import { useTempDir } from '../support/temp-dir.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const tempDir = useTempDir('shipping');
const freshPool = usePools(256 * MiB);

async function collect(extents: AsyncIterable<Extent>): Promise<Extent[]> {
  const all: Extent[] = [];
  for await (const extent of extents) all.push(extent);
  return all;
}

async function pour<T>(extents: AsyncIterable<Extent>, sink: ExtentSink<T>): Promise<T> {
  let size = 0;
  for await (const extent of extents) {
    await sink.write(extent);
    size = extent.offset + extent.data.length;
  }
  return sink.finish(size);
}

describe('raw files: only the data travels, the holes stay holes', () => {
  it('reads the data extents of a sparse file in pieces of at most 1 MiB, and nothing of an empty one', async () => {
    const file = join(tempDir(), 'thin.img');
    const handle = await open(file, 'w');
    await handle.truncate(64 * MiB);
    const big = randomBytes(MiB + 512 * KiB);
    await handle.write(big, 0, big.length, 8 * MiB);
    await handle.write(Buffer.from('end'), 0, 3, 64 * MiB - 3);
    await handle.close();
    const extents = await collect(dataExtents(file, 64 * MiB));
    expect(extents.map((extent) => [extent.offset, extent.data.length])).toEqual([
      [8 * MiB, MiB],
      [9 * MiB, 512 * KiB],
      // The last block: the filesystem keeps data at block granularity.
      [64 * MiB - 4 * KiB, 4 * KiB],
    ]);
    expect(Buffer.concat(extents.slice(0, 2).map((extent) => extent.data)).equals(big)).toBe(true);
    await writeFile(join(tempDir(), 'empty.img'), '');
    expect(await collect(dataExtents(join(tempDir(), 'empty.img'), 0))).toEqual([]);
  });

  it('lands extents in a file of the full size that keeps its holes, and a discarded one leaves nothing', async () => {
    const raw = new RawShipping();
    const path = join(tempDir(), 'landed.img');
    const sink = await raw.receiveFile(path, 256 * MiB);
    await sink.write({ offset: 128 * MiB, data: Buffer.alloc(MiB, 7) });
    await sink.finish(256 * MiB);
    const landed = await stat(path);
    expect([landed.size, landed.blocks * 512]).toEqual([256 * MiB, MiB]);
    const discarded = await raw.receiveFile(join(tempDir(), 'gone.img'), MiB);
    await discarded.write({ offset: 0, data: Buffer.alloc(KiB) });
    await discarded.discard();
    await expect(stat(join(tempDir(), 'gone.img'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

/** A VM's home: a dataset of `pool` holding `files` (name → bytes), and what else is put there. */
async function home(pool: string, name: string, files: Readonly<Record<string, Buffer>>): Promise<{ dataset: string; dir: string }> {
  const dataset = `${pool}/${name}`;
  await zfsCreate(dataset, {});
  const dir = (await zfsGet(dataset, ['mountpoint']))?.get('mountpoint') ?? '';
  for (const [file, bytes] of Object.entries(files)) await writeFile(join(dir, file), bytes);
  return { dataset, dir };
}

const datasets = async () => (await run('zfs', ['list', '-H', '-o', 'name'])).stdout.split('\n');
const snapshotsOf = async (pool: string) => (await zfsSnapshots()).filter((name) => name.startsWith(`${pool}/`));

describe('ZFS datasets: a VM whose disks are a dataset of their own travels with it', { timeout: 60_000 }, () => {
  it('ships such a dataset as a zfs send stream; it arrives as the disks home, which leaves with the VM the next time, even as raw files', async () => {
    const { pool } = await freshPool();
    await zfsCreate(`${pool.name}/incoming`, {});
    const disk = randomBytes(300 * KiB);
    const { dataset, dir } = await home(pool.name, 'vm-g1', { 'root.raw': disk });
    const source = new ZfsShipping(new RawShipping());
    const target = new ZfsShipping(new RawShipping(), `${pool.name}/incoming`);
    const revert = new Revert();
    const out = await source.outgoing('m1', [{ id: 'root', file: join(dir, 'root.raw') }], target.receivesDatasets, revert);
    expect(out.note).toBeUndefined();
    const stream = out.streams[0] as Extract<Outgoing, { kind: 'dataset' }>;
    expect([out.streams.length, stream.kind, stream.snapshot, stream.files]).toEqual([1, 'dataset', `${dataset}@cowbuf-m1`, { root: 'root.raw' }]);
    const received = target.datasetFor('m1');
    const mountpoint = await pour(stream.extents, await target.receiveDataset(received));
    expect(received).toBe(`${pool.name}/incoming/m1`);
    expect((await readFile(join(mountpoint, 'root.raw'))).equals(disk)).toBe(true);
    await target.arrived(received, 'm1');
    await source.release('m1');
    // The source's dataset was an admin's: only the snapshot goes.
    expect(await snapshotsOf(pool.name)).toEqual([]);
    expect(await datasets()).toContain(dataset);

    // Leaving again, to a target that takes files only: its home still goes once the guest runs there.
    const again = await target.outgoing('m2', [{ id: 'root', file: join(mountpoint, 'root.raw') }], false, new Revert());
    expect(again.note).toBe(`the target receives no ZFS datasets; ${received} goes once the guest runs there`);
    expect(again.streams.map((each) => each.kind)).toEqual(['file']);
    expect(await snapshotsOf(pool.name)).toEqual([`${received}@cowbuf-m2`]);
    await target.release('m2');
    expect(await datasets()).not.toContain(received);
  });

  it('ships raw files, saying why, for a dataset holding more than the disks, and for disks in no dataset; a rollback drops the snapshot', async () => {
    const { pool, scratch } = await freshPool();
    const { dir } = await home(pool.name, 'shared', { 'a.raw': Buffer.alloc(KiB), 'b.raw': Buffer.alloc(KiB) });
    const shipping = new ZfsShipping(new RawShipping());
    const shared = await shipping.outgoing('m1', [{ id: 'a', file: join(dir, 'a.raw') }], true, new Revert());
    expect(shared.note).toBe(`ZFS dataset ${pool.name}/shared holds more than this VM's disks (b.raw)`);
    expect(shared.streams.map((each) => each.kind)).toEqual(['file']);
    await mkdir(join(scratch, 'plain'));
    await writeFile(join(scratch, 'plain', 'c.raw'), Buffer.alloc(KiB));
    const plain = await shipping.outgoing('m2', [{ id: 'c', file: join(scratch, 'plain', 'c.raw') }], true, new Revert());
    expect(plain.note).toBe(`${join(scratch, 'plain')} is not the mountpoint of a ZFS dataset`);
    expect((await shipping.outgoing('m3', [{ id: 'c', file: join(scratch, 'plain', 'c.raw') }], false, new Revert())).note).toBeUndefined();

    const { dir: own } = await home(pool.name, 'own', { 'd.raw': Buffer.alloc(KiB) });
    const revert = new Revert();
    await shipping.outgoing('m4', [{ id: 'd', file: join(own, 'd.raw') }], true, revert);
    expect(await snapshotsOf(pool.name)).toEqual([`${pool.name}/own@cowbuf-m4`]);
    expect(await revert.fail()).toEqual([]);
    expect(await snapshotsOf(pool.name)).toEqual([]);
  });

  it('fails a stream it cannot receive with what zfs said, and keeps nothing of it', async () => {
    const { pool } = await freshPool();
    const { dir } = await home(pool.name, 'vm-g2', { 'root.raw': randomBytes(MiB) });
    const out = await new ZfsShipping(new RawShipping()).outgoing('m1', [{ id: 'root', file: join(dir, 'root.raw') }], true, new Revert());
    const target = new ZfsShipping(new RawShipping(), `${pool.name}/missing`);
    const sink = await target.receiveDataset(target.datasetFor('m1'));
    await expect(pour((out.streams[0] as Outgoing).extents, sink)).rejects.toThrow(new RegExp(`^\`zfs receive ${pool.name}/missing/m1\` exited with 1: .*does not exist`));
    await sink.discard();
    expect((await datasets()).filter((name) => name.startsWith(`${pool.name}/missing`))).toEqual([]);
  });
});
