import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { run } from '../../src/exec/run.js';
import { TapError, bridgeExists, createTap, deleteTap } from '../../src/host/tap.js';
import { createTwoHosts, sweepStaleHosts, type TwoHosts } from '../../src/testbed/netns.js';

// Real taps on the test bed's real bridge, in a namespace of its own: `ip` is the contract here.
let hosts: TwoHosts;
beforeAll(async () => {
  await sweepStaleHosts();
  hosts = await createTwoHosts();
});
afterAll(async () => {
  await hosts.destroy();
});

async function show(name: string): Promise<{ master?: string; flags: string[]; linkinfo: { info_kind: string; info_data: { type: string } } }> {
  const { stdout } = await run('ip', ['-j', '-d', 'link', 'show', 'dev', name], { netns: hosts.src.ns });
  return (JSON.parse(stdout) as [Awaited<ReturnType<typeof show>>])[0];
}

describe('tap devices on a bridge', () => {
  it('creates a tap on the bridge, up; again is a no-op; delete twice is too', async () => {
    const netns = hosts.src.ns;
    await createTap('cbtap0', hosts.src.bridge, { netns });
    const tap = await show('cbtap0');
    expect(tap).toMatchObject({ master: hosts.src.bridge, linkinfo: { info_kind: 'tun', info_data: { type: 'tap' } } });
    expect(tap.flags).toContain('UP');
    await run('ip', ['link', 'set', 'dev', 'cbtap0', 'down'], { netns });
    await createTap('cbtap0', hosts.src.bridge, { netns });
    expect((await show('cbtap0')).flags).toContain('UP');
    await deleteTap('cbtap0', { netns });
    await deleteTap('cbtap0', { netns });
    await expect(show('cbtap0')).rejects.toThrow('does not exist');
  });

  it('finishes a tap left off its bridge (a crash between the two steps)', async () => {
    const netns = hosts.src.ns;
    await run('ip', ['tuntap', 'add', 'dev', 'cbtap1', 'mode', 'tap'], { netns });
    await createTap('cbtap1', hosts.src.bridge, { netns });
    expect((await show('cbtap1')).master).toBe(hosts.src.bridge);
    await deleteTap('cbtap1', { netns });
  });

  it('names the bridge when it is missing or not a bridge, and creates nothing', async () => {
    const netns = hosts.src.ns;
    const missing = await createTap('cbtap2', 'nobr0', { netns }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(TapError);
    expect(missing).toMatchObject({ tap: 'cbtap2', bridge: 'nobr0', message: `cannot attach tap cbtap2: bridge nobr0 does not exist in network namespace ${netns}` });
    await expect(createTap('cbtap2', 'lo', { netns })).rejects.toThrow('cannot attach tap cbtap2: bridge lo is not a bridge (a plain device)');
    await expect(show('cbtap2')).rejects.toThrow('does not exist');
  });

  it('refuses a name taken by another device or by a tap on another bridge, and never deletes a non-tap', async () => {
    const netns = hosts.src.ns;
    await expect(createTap(hosts.src.veth, hosts.src.bridge, { netns })).rejects.toThrow(`cannot create tap ${hosts.src.veth} in network namespace ${netns}: a veth device has that name`);
    await run('ip', ['link', 'add', 'br1', 'type', 'bridge'], { netns });
    await createTap('cbtap3', 'br1', { netns });
    await expect(createTap('cbtap3', hosts.src.bridge, { netns })).rejects.toThrow(`cannot attach tap cbtap3 to bridge ${hosts.src.bridge} in network namespace ${netns}: it is on bridge br1`);
    await expect(deleteTap(hosts.src.bridge, { netns })).rejects.toThrow(`refusing to delete ${hosts.src.bridge} in network namespace ${netns}: it is a bridge device, not a tap`);
    expect(await bridgeExists(hosts.src.bridge, { netns })).toBe(true);
    await deleteTap('cbtap3', { netns });
  });

  it('tells a bridge from other devices and from nothing', async () => {
    const netns = hosts.dst.ns;
    expect(await bridgeExists(hosts.dst.bridge, { netns })).toBe(true);
    expect(await bridgeExists(hosts.dst.veth, { netns })).toBe(false);
    expect(await bridgeExists('nobr0', { netns })).toBe(false);
  });

  it('validates interface names before they reach ip', async () => {
    await expect(createTap('tap-name-too-long', 'br0')).rejects.toThrow(ValidationError);
    await expect(createTap('tap0', '-br0')).rejects.toThrow('Expected `bridge` to be');
    await expect(deleteTap('a b')).rejects.toThrow('Expected `tap` to be');
  });
});
