import { describe, expect, it } from 'vitest';
import { interfaceUplink } from '../../src/evacuation/uplink.js';
import type { HostInventory } from '../../src/host/inventory.js';

const MB = 1e6;

/** Routes each address by `routes` (none: unroutable), each interface at `speeds` (none: unknown). */
function inventory(routes: Record<string, string>, speeds: Record<string, number>): Pick<HostInventory, 'interfaceTo' | 'interfaceSpeed'> & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    interfaceTo: (address) => Promise.resolve(routes[address]),
    interfaceSpeed: (iface) => (asked.push(iface), Promise.resolve(speeds[iface])),
  };
}

const signal = new AbortController().signal;

describe("the uplink from this host's interfaces", () => {
  it('adds up the interfaces the targets are reached by, each counted once', async () => {
    const host = inventory({ 'a:1': 'eth0', 'b:1': 'eth0', 'c:1': 'eth1' }, { eth0: 1250 * MB, eth1: 125 * MB });
    expect(await interfaceUplink(['a:1', 'b:1', 'c:1'], host, signal)).toBe(1375 * MB);
    expect(host.asked.sort()).toEqual(['eth0', 'eth1']);
  });

  it('is unknown when one target has no route, or its interface no speed of its own', async () => {
    expect(await interfaceUplink(['a:1', 'b:1'], inventory({ 'a:1': 'eth0' }, { eth0: 1250 * MB }), signal)).toBeUndefined();
    expect(await interfaceUplink(['a:1', 'b:1'], inventory({ 'a:1': 'eth0', 'b:1': 'veth1' }, { eth0: 1250 * MB }), signal)).toBeUndefined();
    expect(await interfaceUplink([], inventory({}, {}), signal)).toBeUndefined();
  });

  it('passes the signal on to the route lookups', async () => {
    const seen: (AbortSignal | undefined)[] = [];
    const host = { ...inventory({ 'a:1': 'eth0' }, { eth0: MB }), interfaceTo: (_: string, given?: AbortSignal) => (seen.push(given), Promise.resolve('eth0')) };
    await interfaceUplink(['a:1'], host, signal);
    expect(seen).toEqual([signal]);
  });
});
