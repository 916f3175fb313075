import { access } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.js';
import { ControlClient } from '../../src/peer/channel.js';
import type { WireVm } from '../../src/peer/protocol.js';
import type { TrustedPeer } from '../../src/peer/trust.js';
import { cli, dirDaemon } from '../support/daemons.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('preflight');
let source: Daemon;
let target: Daemon;

const text = async (on: Daemon, ...args: string[]) => (await cli(on, ...args)).stdout.trim();

beforeAll(async () => {
  source = await dirDaemon(tempDir(), 'source');
  target = await dirDaemon(tempDir(), 'target');
  await text(source, 'trust', 'add', 'target', '--token', await text(target, 'trust', 'token', 'source'));
});
afterAll(async () => {
  await source.close();
  await target.close();
});

const MiB = 1024 ** 2;
const disk = (virtualSize: number) => ({ id: 'root', nodeName: 'root', format: 'raw' as const, virtualSize });

async function prepare(migration: string, vm: WireVm): Promise<unknown> {
  const client = await ControlClient.open(source.trust.get('target') as TrustedPeer, source.identity);
  try {
    return await client.request({ method: 'prepare', migration, vm });
  } finally {
    client.close();
  }
}

describe("the target's preflight over the real peer API (this host's own inventory)", () => {
  it('refuses a guest bigger than this machine, naming both numbers, and keeps nothing of it', async () => {
    const memoryMiB = 4 * Math.ceil(totalmem() / MiB);
    const refused = prepare('too-big', { name: 'huge', memoryMiB, vcpus: 1, disks: [disk(MiB)] });
    await expect(refused).rejects.toThrow(new RegExp(`^peer target: target cannot take huge: short of memory: [0-9.]+ [GM]iB \\(\\d+ bytes\\) available, the guest needs ${memoryMiB} MiB \\+ 64 MiB for QEMU \\(${memoryMiB * MiB + 64 * MiB} bytes\\)$`));
    await expect(access(join(target.config.stateDir, 'vms', 'too-big'))).rejects.toThrow(/ENOENT/);
    expect(target.engine.list()).toEqual([]);
  });

  it('refuses bases larger than the free space where they would land', async () => {
    await expect(prepare('too-wide', { name: 'wide', memoryMiB: 16, vcpus: 1, disks: [disk(2 ** 52)] })).rejects.toThrow(
      new RegExp(`target cannot take wide: short of disk at ${join(target.config.stateDir, 'vms', 'too-wide')}: .* free, its bases need up to 4096.0 TiB \\(${2 ** 52} bytes: root ${2 ** 52}\\)$`),
    );
  });

  it('takes a guest that fits, and can be told to drop it', async () => {
    await expect(prepare('fits', { name: 'small', memoryMiB: 16, vcpus: 1, disks: [disk(MiB)] })).resolves.toEqual({ zfs: false });
    const client = await ControlClient.open(source.trust.get('target') as TrustedPeer, source.identity);
    await client.request({ method: 'abort', migration: 'fits' });
    client.close();
    await expect(access(join(target.config.stateDir, 'vms', 'fits'))).rejects.toThrow(/ENOENT/);
  });
});
