/** The contract every buffer-volume backend must honour; run by each backend's test file. */
import { describe, expect, it } from 'vitest';
import { InsufficientSpaceError, ShrinkBelowUsedError, StorageError, VolumeExistsError, VolumeMissingError } from '../../src/errors.js';
import { run } from '../../src/exec/run.js';
import { createOverlay, overlayBytes, removeOverlay } from '../../src/storage/overlays.js';
import type { BufferVolume } from '../../src/storage/volume.js';

const MiB = 1024 ** 2;

export interface ContractFixture {
  /** A fresh, not yet created volume, plus a scratch dir for base images. */
  readonly volume: BufferVolume;
  readonly scratch: string;
  /** More than the backing store can hold. */
  readonly tooBig: number;
}

export function volumeContract(name: string, fixture: () => Promise<ContractFixture>): void {
  describe(`buffer volume contract: ${name}`, { timeout: 60_000 }, () => {
    it('is created once, reports its size, and refuses a second init without changing anything', async () => {
      const { volume } = await fixture();
      expect(await volume.exists()).toBe(false);
      await expect(volume.status()).rejects.toBeInstanceOf(VolumeMissingError);
      await volume.create(64 * MiB);
      expect(await volume.exists()).toBe(true);
      const status = await volume.status();
      expect(status).toMatchObject({ driver: volume.driver, size: 64 * MiB, overlays: [] });
      expect(status.used).toBeLessThan(MiB);
      expect(status.available).toBeGreaterThan(60 * MiB);
      await expect(volume.create(128 * MiB)).rejects.toBeInstanceOf(VolumeExistsError);
      expect((await volume.status()).size).toBe(64 * MiB);
    });

    it('holds overlays whose allocated bytes grow as they are written, and removes them', async () => {
      const { volume, scratch } = await fixture();
      await volume.create(64 * MiB);
      const base = `${scratch}/base.qcow2`;
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '32M']);
      const path = await createOverlay(volume.mountpoint, 'vm1-disk0', { path: base, format: 'qcow2', virtualSize: 32 * MiB });
      const empty = await overlayBytes(volume.mountpoint, 'vm1-disk0');
      await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 7 0 4M', path]);
      const written = await overlayBytes(volume.mountpoint, 'vm1-disk0');
      // zfs-fuse accounts blocks of a still-open transaction group late, so only real growth is asserted.
      expect(written - empty).toBeGreaterThan(2 * MiB);
      const status = await volume.status();
      expect(status.overlays.map((o) => o.name)).toEqual(['vm1-disk0']);
      expect(status.overlays[0]?.allocated).toBeGreaterThanOrEqual(written);
      await removeOverlay(volume.mountpoint, 'vm1-disk0');
      expect((await volume.status()).overlays).toEqual([]);
    });

    it('grows at any time and shrinks only down to the bytes in use, naming both numbers', async () => {
      const { volume, scratch } = await fixture();
      await volume.create(64 * MiB);
      await volume.resize(96 * MiB);
      expect((await volume.status()).size).toBe(96 * MiB);
      const base = `${scratch}/base.qcow2`;
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '32M']);
      const path = await createOverlay(volume.mountpoint, 'big', { path: base, format: 'qcow2', virtualSize: 32 * MiB });
      await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 0 16M', path]);
      const attempt = volume.resize(8 * MiB);
      await expect(attempt).rejects.toBeInstanceOf(ShrinkBelowUsedError);
      const error = (await attempt.catch((e: unknown) => e)) as ShrinkBelowUsedError;
      expect(error.requested).toBe(8 * MiB);
      expect(error.floor).toBeGreaterThanOrEqual(16 * MiB);
      expect(error.message).toBe(`cannot shrink the buffer to ${8 * MiB} bytes: ${error.floor} bytes are in use`);
      expect((await volume.status()).size).toBe(96 * MiB);
      await volume.resize(48 * MiB);
      expect((await volume.status()).size).toBe(48 * MiB);
      await expect(volume.destroy()).rejects.toBeInstanceOf(StorageError);
      await removeOverlay(volume.mountpoint, 'big');
      await volume.destroy();
      expect(await volume.exists()).toBe(false);
    });

    it('refuses a size larger than the backing store, creating nothing', async () => {
      const { volume, tooBig } = await fixture();
      const error = await volume.create(tooBig).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InsufficientSpaceError);
      expect((error as InsufficientSpaceError).requested).toBe(tooBig);
      expect(await volume.exists()).toBe(false);
      await volume.create(16 * MiB);
      await expect(volume.resize(tooBig)).rejects.toBeInstanceOf(InsufficientSpaceError);
      expect((await volume.status()).size).toBe(16 * MiB);
    });

    it('verifies its room before an admission', async () => {
      const { volume } = await fixture();
      await volume.create(16 * MiB);
      await expect(volume.verifyRoom()).resolves.toBeUndefined();
    });
  });
}
