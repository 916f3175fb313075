/**
 * The host inventory as `systeminformation` reads it: MemAvailable from /proc/meminfo, free
 * space per mount from `df` (and `zfs list` for native ZFS mounts), the CPU flags from `lscpu`.
 * Those subprocesses are the library's own, outside the cowbuf chokepoint, and cannot be
 * cancelled, so each answer is raced against the caller's signal; they serve one-off checks
 * (a target's preflight, choosing an accelerator), never a tick. Interface counters, read every
 * tick, come straight from sysfs instead: the library would spawn a shell `cat` chain per sample;
 * so do interface speeds (interface-speed.ts). Routes are the kernel's own answer to a UDP
 * socket's connect.
 */
import { createSocket } from 'node:dgram';
import { access } from 'node:fs/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { resolve, sep } from 'node:path';
import si from 'systeminformation';
import { orAbort } from '../abort.js';
import { CowbufError } from '../errors.js';
import { checkName } from '../exec/run.js';
import { hostPort } from '../peer/trust.js';
import { readInterfaceCounters } from './interface-counters.js';
import { readInterfaceSpeed } from './interface-speed.js';
import type { HostInventory } from './inventory.js';

/** The mount holding `path`: the longest mount point that is `path` or one of its ancestors. */
export function mountOf<T extends { readonly mount: string }>(mounts: readonly T[], path: string): T | undefined {
  const absolute = resolve(path);
  const holds = (mount: string) => mount === sep || absolute === mount || absolute.startsWith(`${mount}${sep}`);
  return mounts.filter((entry) => holds(entry.mount)).sort((a, b) => b.mount.length - a.mount.length)[0];
}

function interfaceOf(address: string): Promise<string | undefined> {
  // IPv4-mapped IPv6 (`::ffff:10.0.0.1`) is how a dual-stack socket names an IPv4 peer.
  const plain = address.replace(/^::ffff:/, '');
  const found = Object.entries(networkInterfaces()).find(([, addresses]) => addresses?.some((entry) => entry.address === plain));
  // An IPv4 alias is listed by its label (`eth0:1`); the interface is what comes before it.
  return Promise.resolve(found?.[0].split(':')[0]);
}

/** The local address the kernel picks to reach `address`: a UDP socket's connect routes it and sends nothing. */
async function localAddressTo(address: string, signal: AbortSignal | undefined): Promise<string | undefined> {
  const { host, port } = hostPort(address);
  const socket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
  try {
    const connected = new Promise<boolean>((resolve) => {
      socket.once('error', () => resolve(false));
      socket.connect(port, host, () => resolve(true));
    });
    return (await orAbort(connected, signal)) ? socket.address().address : undefined;
  } finally {
    socket.close();
  }
}

export const systemInventory: HostInventory = {
  availableMemory: async (signal) => (await orAbort(si.mem(), signal)).available,
  availableDisk: async (path, signal) => {
    const mounts = await orAbort(si.fsSize(), signal);
    const mount = mountOf(mounts, path);
    if (!mount) throw new CowbufError(`no mounted filesystem holds ${path} (mounts: ${mounts.map((m) => m.mount).join(', ') || 'none'})`);
    return mount.available;
  },
  cpuVirtualization: async (signal) => /\b(vmx|svm)\b/.test(await orAbort(si.cpuFlags(), signal)),
  interfaceCounters: readInterfaceCounters,
  // A bridge has a `bridge` directory in sysfs (in a namespace, the namespace's own /sys).
  isBridge: async (name) => {
    const dir = `/sys/class/net/${checkName('bridge', name)}/bridge`;
    return access(dir).then(
      () => true,
      () => false,
    );
  },
  interfaceOf,
  interfaceTo: async (address, signal) => {
    const local = await localAddressTo(address, signal);
    return local === undefined ? undefined : interfaceOf(local);
  },
  interfaceSpeed: (iface) => readInterfaceSpeed(iface),
};
