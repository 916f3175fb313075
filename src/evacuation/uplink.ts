/**
 * What this host's interfaces can send to an evacuation's targets at in all: the planner's uplink
 * when the kernel knows it (batch.ts falls back otherwise).
 */
import type { HostInventory } from '../host/inventory.js';

/**
 * The speeds of the distinct interfaces the kernel routes `addresses` (`host:port`) by, added up:
 * targets behind one interface share it, targets behind interfaces of their own do not. Undefined
 * when any address has no route or its interface no speed of its own: a guess for that one could
 * be the very bottleneck.
 */
export async function interfaceUplink(addresses: readonly string[], inventory: Pick<HostInventory, 'interfaceTo' | 'interfaceSpeed'>, signal: AbortSignal): Promise<number | undefined> {
  const interfaces = await Promise.all(addresses.map((address) => inventory.interfaceTo(address, signal)));
  if (interfaces.length === 0 || interfaces.includes(undefined)) return undefined;
  const speeds = await Promise.all([...new Set(interfaces as string[])].map((iface) => inventory.interfaceSpeed(iface)));
  return speeds.includes(undefined) ? undefined : (speeds as number[]).reduce((sum, speed) => sum + speed, 0);
}
