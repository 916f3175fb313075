import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { freemem, tmpdir, totalmem } from 'node:os';
import { describe, expect, it } from 'vitest';
import { mountOf, systemInventory } from '../../src/host/inventory-systeminformation.js';

describe('mountOf', () => {
  const mounts = [{ mount: '/' }, { mount: '/srv' }, { mount: '/srv/pool' }, { mount: '/srv/pool-b' }];
  it.each([
    ['/srv/pool/vms/m1', '/srv/pool'],
    ['/srv/pool', '/srv/pool'],
    ['/srv/pool-b/x', '/srv/pool-b'],
    ['/srv/poolx', '/srv'],
    ['/srv/pool/../other', '/srv'],
    ['/var/lib/cowbuf', '/'],
  ])('%s lies on %s (a path that does not exist yet too)', (path, mount) => {
    expect(mountOf(mounts, path)?.mount).toBe(mount);
  });
  it('finds none without a root mount to fall back on', () => {
    expect(mountOf([{ mount: '/srv' }], '/var')).toBeUndefined();
  });
});

describe('the systeminformation inventory of this host', () => {
  it('reads available memory between free and total', async () => {
    const available = await systemInventory.availableMemory();
    expect(available).toBeGreaterThan(0);
    expect(available).toBeLessThanOrEqual(totalmem());
    expect(available).toBeGreaterThanOrEqual(freemem() * 0.5);
  });

  it('reads free disk space of the filesystem holding a path', async () => {
    await expect(systemInventory.availableDisk(`${tmpdir()}/not-there-yet/disk.img`)).resolves.toBeGreaterThan(0);
  });

  it("reads the CPU's virtualisation flag as /proc/cpuinfo states it", async () => {
    const cpuinfo = await readFile('/proc/cpuinfo', 'utf8');
    expect(await systemInventory.cpuVirtualization()).toBe(/^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo));
  });

  it('finds the interface of a local address and reads its counters', async () => {
    expect(await systemInventory.interfaceOf('127.0.0.1')).toBe('lo');
    expect(await systemInventory.interfaceOf('::ffff:127.0.0.1')).toBe('lo');
    expect(await systemInventory.interfaceOf('192.0.2.77')).toBeUndefined();
    const counters = await systemInventory.interfaceCounters('lo');
    expect(counters.txBytes).toBeGreaterThanOrEqual(0);
    await expect(systemInventory.interfaceCounters('../etc')).rejects.toThrow('Expected `interface` to be a name');
  });

  it('finds the interface the kernel routes an address by, and reads no speed a loopback does not have', async () => {
    expect(await systemInventory.interfaceTo('127.0.0.1:9')).toBe('lo');
    await expect(systemInventory.interfaceTo('127.0.0.1:9', AbortSignal.abort(new Error('stop')))).rejects.toThrow('stop');
    expect(await systemInventory.interfaceSpeed('lo')).toBeUndefined();
  });

  it('tells a bridge from an interface that is none, or is not there', async () => {
    const bridges = (await readdir('/sys/class/net')).filter((name) => existsSync(`/sys/class/net/${name}/bridge`));
    for (const bridge of bridges) expect(await systemInventory.isBridge(bridge)).toBe(true);
    expect(await systemInventory.isBridge('lo')).toBe(false);
    expect(await systemInventory.isBridge('cowbuf-nobr')).toBe(false);
    await expect(systemInventory.isBridge('../lo')).rejects.toThrow('Expected `bridge` to be a name');
  });

  it('gives up waiting when the signal aborts', async () => {
    await expect(systemInventory.availableDisk('/', AbortSignal.abort(new Error('stop')))).rejects.toThrow('stop');
  });
});
