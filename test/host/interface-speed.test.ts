import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readInterfaceSpeed } from '../../src/host/interface-speed.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('iface-speed');
const Mbit = 1e6 / 8;

/** An interface in a sysfs-like tree: `speed` as the kernel reports it, `device` for a NIC, `bonding` for a bond, `lower_*` for what lies under it. */
async function iface(name: string, shape: { speed?: string; device?: boolean; bond?: boolean; lowers?: string[] }): Promise<void> {
  const dir = join(tempDir(), name);
  await mkdir(dir, { recursive: true });
  if (shape.speed !== undefined) await writeFile(join(dir, 'speed'), `${shape.speed}\n`);
  if (shape.device) await mkdir(join(dir, 'device'));
  if (shape.bond) await mkdir(join(dir, 'bonding'));
  for (const lower of shape.lowers ?? []) await symlink(join(tempDir(), lower), join(dir, `lower_${lower}`));
}

beforeAll(async () => {
  await iface('eth0', { speed: '25000', device: true });
  await iface('eth1', { speed: '10000', device: true });
  await iface('eth2', { speed: '-1', device: true });
  await iface('veth0', { speed: '10000' });
  await iface('tap0', { speed: '10' });
  await iface('bond0', { speed: '50000', bond: true, lowers: ['eth0', 'eth3'] });
  await iface('eth3', { speed: '25000', device: true });
  await iface('br0', { lowers: ['eth1', 'tap0'] });
  await iface('br1', { lowers: ['veth0', 'tap0'] });
  await iface('vlan7', { speed: '10000', lowers: ['bond0'] });
});

describe("an interface's link speed", () => {
  it.each<[string, number | undefined]>([
    ['eth0', 25_000 * Mbit],
    ['eth2', undefined],
    ['veth0', undefined],
    ['tap0', undefined],
    ['bond0', 50_000 * Mbit],
    ['br0', 10_000 * Mbit],
    ['br1', undefined],
    ['vlan7', 50_000 * Mbit],
    ['gone0', undefined],
  ])('%s: %s bytes/s', async (name, speed) => {
    expect(await readInterfaceSpeed(name, tempDir())).toBe(speed);
  });

  it('refuses a name that is not one', async () => {
    await expect(readInterfaceSpeed('../etc', tempDir())).rejects.toThrow('Expected `interface` to be a name');
  });
});
