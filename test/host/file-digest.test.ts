import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileDigest } from '../../src/host/file-digest.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir('digest');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('fileDigest', () => {
  it('hashes the whole file, and hashes it again once it changed', async () => {
    const path = join(dir(), 'image.iso');
    const first = Buffer.alloc(3 * 1024 * 1024 + 5, 1);
    await writeFile(path, first);
    expect(await fileDigest(path)).toEqual({ size: first.length, sha256: sha256(first) });
    expect(await fileDigest(path)).toEqual({ size: first.length, sha256: sha256(first) });
    const second = Buffer.from('another image');
    await writeFile(path, second);
    expect(await fileDigest(path)).toEqual({ size: second.length, sha256: sha256(second) });
  });

  it('says when the file is missing', async () => {
    await expect(fileDigest(join(dir(), 'missing.iso'))).rejects.toThrow(/ENOENT/);
  });
});
