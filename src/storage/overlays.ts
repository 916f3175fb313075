/**
 * Overlay files inside a buffer volume's mountpoint, shared by every backend: a qcow2 whose
 * backing file is the VM's disk (never opened by qemu-img: `-u`, the running QEMU owns it), and
 * its allocated bytes, the s_cow the control loop partitions.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkName, run } from '../exec/run.js';
import type { CallOptions } from './volume.js';

export const OVERLAY_SUFFIX = '.qcow2';

export interface OverlayFile {
  readonly name: string;
  readonly path: string;
  /** Allocated bytes on disk (st_blocks × 512). */
  readonly allocated: number;
}

export interface OverlayBase {
  readonly path: string;
  readonly format: 'qcow2' | 'raw';
  readonly virtualSize: number;
}

export function overlayPath(mountpoint: string, name: string): string {
  return join(mountpoint, `${checkName('overlay', name)}${OVERLAY_SUFFIX}`);
}

/** @throws ValidationError (bad name), CommandError */
export async function createOverlay(mountpoint: string, name: string, base: OverlayBase, options: CallOptions = {}): Promise<string> {
  const path = overlayPath(mountpoint, name);
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', base.path, '-F', base.format, path, String(base.virtualSize)], options);
  return path;
}

export async function removeOverlay(mountpoint: string, name: string): Promise<void> {
  await rm(overlayPath(mountpoint, name), { force: true });
}

export async function overlayBytes(mountpoint: string, name: string): Promise<number> {
  return (await stat(overlayPath(mountpoint, name))).blocks * 512;
}

export async function listOverlays(mountpoint: string): Promise<OverlayFile[]> {
  const names = (await readdir(mountpoint)).filter((file) => file.endsWith(OVERLAY_SUFFIX)).sort();
  return Promise.all(
    names.map(async (file) => {
      const path = join(mountpoint, file);
      return { name: file.slice(0, -OVERLAY_SUFFIX.length), path, allocated: (await stat(path)).blocks * 512 };
    }),
  );
}
