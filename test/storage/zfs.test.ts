import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StorageError, ValidationError } from '../../src/errors.js';
import { ZfsVolume } from '../../src/storage/zfs/driver-zfs.js';
import { checkDataset, zfsGet } from '../../src/storage/zfs/zfs-commands.js';
import { detectZfsFeatures } from '../../src/storage/zfs/zfs-features.js';
import { usePools } from '../support/pools.js';
import { report } from '../support/report.js';
import { volumeContract } from './contract.js';

const MiB = 1024 ** 2;
const freshPool = usePools(512 * MiB);

volumeContract('zfs (zfs-fuse on a sparse file)', async () => {
  const { pool, scratch } = await freshPool();
  return { volume: new ZfsVolume({ pool: pool.name, mountpoint: join(scratch, 'buffer') }), scratch, tooBig: 4 * 1024 * MiB };
});

describe('zfs backend', { timeout: 60_000 }, () => {
  it('creates a hidden, marked dataset with refquota = refreservation = size', async () => {
    const { pool, scratch } = await freshPool();
    const volume = new ZfsVolume({ pool: pool.name, mountpoint: join(scratch, 'buffer') });
    const timings: Record<string, number> = {};
    const timed = async (label: string, step: () => Promise<unknown>) => {
      const began = performance.now();
      await step();
      timings[label] = Number((performance.now() - began).toFixed(1));
    };
    await timed('createMs', () => volume.create(64 * MiB));
    const props = await zfsGet(volume.dataset, ['refquota', 'refreservation', 'mountpoint', 'cowbuf:role']);
    expect(Object.fromEntries(props ?? [])).toEqual({
      refquota: String(64 * MiB),
      refreservation: String(64 * MiB),
      mountpoint: join(scratch, 'buffer'),
      'cowbuf:role': 'buffer',
    });
    expect(volume.dataset).toBe(`${pool.name}/migration-cow-buffer`);
    await timed('statusMs', () => volume.status());
    await timed('growMs', () => volume.resize(96 * MiB));
    await timed('shrinkMs', () => volume.resize(32 * MiB));
    await timed('destroyMs', () => volume.destroy());
    await report('zfs-timings', timings);
  });

  it('detects what the installed ZFS supports instead of assuming', async () => {
    const { pool } = await freshPool();
    const features = await detectZfsFeatures(pool.name);
    expect(features.refQuota).toBe(true);
    if (features.implementation === 'zfs-fuse') expect(features).toMatchObject({ parsableList: false, zvols: false });
    if (features.implementation === 'openzfs') expect(features).toMatchObject({ parsableList: true, zvols: true });
    expect(features.implementation).not.toBe('unknown');
  });

  it('stops a writer at the size with EDQUOT (errno 122), not ENOSPC', async () => {
    const { pool, scratch } = await freshPool();
    const volume = new ZfsVolume({ pool: pool.name, mountpoint: join(scratch, 'buffer') });
    await volume.create(16 * MiB);
    const file = await open(join(volume.mountpoint, 'fill'), 'w');
    const chunk = Buffer.alloc(MiB, 7);
    let written = 0;
    let failure: NodeJS.ErrnoException | undefined;
    try {
      for (let i = 0; i < 64; i += 1) written += (await file.write(chunk)).bytesWritten;
    } catch (error) {
      failure = error as NodeJS.ErrnoException;
    } finally {
      await file.close().catch(() => undefined);
      await rm(join(volume.mountpoint, 'fill'), { force: true });
    }
    expect(failure?.errno).toBe(-122);
    expect(volume.capabilities.fullErrno).toBe('EDQUOT');
    expect(written).toBeLessThanOrEqual(16 * MiB);
    await report('zfs-full-errno', { errno: failure?.errno, code: failure?.code ?? null, writtenMiB: written / MiB, sizeMiB: 16 });
  });

  it.each(['tank/..', 'tank/../x', 'my pool', 'tank;rm', '-tank', '', 'tank//x'])('rejects the dataset name %j before any command runs', (name) => {
    expect(() => checkDataset('pool', name)).toThrow(ValidationError);
    expect(() => new ZfsVolume({ pool: name, mountpoint: '/x' })).toThrow(`Expected \`pool\` to be a ZFS dataset name`);
  });

  it('names a missing pool', async () => {
    const volume = new ZfsVolume({ pool: 'cowbufnosuchpool', mountpoint: '/tmp/none' });
    await expect(volume.create(MiB)).rejects.toThrow('ZFS pool or dataset cowbufnosuchpool not found');
  });

  it('says so when the zfs binary is missing', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const error = await zfsGet('tank', ['name']).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageError);
      expect((error as Error).message).toMatch(/^`zfs` is not installed or cannot run/);
    } finally {
      process.env.PATH = path;
    }
  });
});
