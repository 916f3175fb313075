import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DirVolume } from '../../src/storage/dir/driver-dir.js';
import { volumeContract } from './contract.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

volumeContract('dir', async () => {
  const scratch = await mkdtemp(join(tmpdir(), 'cowbuf-dir-'));
  dirs.push(scratch);
  return { volume: new DirVolume({ path: join(scratch, 'buffer') }), scratch, tooBig: 2 ** 52 };
});

describe('dir backend', () => {
  it('says what it cannot do: no hard limit, no reservation', () => {
    expect(new DirVolume({ path: '/x' }).capabilities).toEqual({ hardLimit: false, reserved: false, fullErrno: 'ENOSPC' });
  });
});
