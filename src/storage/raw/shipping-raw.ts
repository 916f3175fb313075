/**
 * Raw-file shipping, which works on any filesystem: each disk file travels on its own as its
 * data extents, and lands as a sparse file of the same size. It freezes nothing (the base is
 * frozen by the overlay above it) and keeps nothing behind, and it receives no datasets.
 */
import { stat } from 'node:fs/promises';
import { StorageError } from '../../errors.js';
import type { DiskShipping, ExtentSink, OutgoingBases, ShippedDisk } from '../shipping.js';
import { dataExtents, sparseFile } from './sparse.js';

export class RawShipping implements DiskShipping {
  readonly receivesDatasets = false;

  async outgoing(_migration: string, disks: readonly ShippedDisk[]): Promise<OutgoingBases> {
    const streams = await Promise.all(
      disks.map(async (disk) => {
        const { size } = await stat(disk.file);
        return { kind: 'file' as const, disk: disk.id, size, extents: dataExtents(disk.file, size) };
      }),
    );
    return { streams };
  }

  async release(): Promise<void> {}

  async abandon(): Promise<void> {}

  async landing(dir: string): Promise<string> {
    return dir;
  }

  receiveFile(path: string, size: number): Promise<ExtentSink> {
    return sparseFile(path, size);
  }

  datasetFor(): string {
    throw new StorageError('this host receives no ZFS datasets');
  }

  receiveDataset(): Promise<ExtentSink<string>> {
    return Promise.reject(new StorageError('this host receives no ZFS datasets'));
  }

  async arrived(): Promise<void> {}

  async discard(): Promise<void> {}
}
