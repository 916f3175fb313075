/**
 * The host inventory as `systeminformation` reads it: MemAvailable from /proc/meminfo, free
 * space per mount from `df` (and `zfs list` for native ZFS mounts), the CPU flags from `lscpu`.
 * Those subprocesses are the library's own, outside the cowbuf chokepoint, and cannot be
 * cancelled, so each answer is raced against the caller's signal; they serve one-off checks
 * (a target's preflight, choosing an accelerator), never a tick. Interface counters, read every
 * tick, come straight from sysfs instead: the library would spawn a shell `cat` chain per sample.
 */
import { access } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { resolve, sep } from 'node:path';
import si from 'systeminformation';
import { orAbort } from '../abort.js';
import { CowbufError } from '../errors.js';
import { checkName } from '../exec/run.js';
import { readInterfaceCounters } from './interface-counters.js';
import type { HostInventory } from './inventory.js';

/** The mount holding `path`: the longest mount point that is `path` or one of its ancestors. */
export function mountOf<T extends { readonly mount: string }>(mounts: readonly T[], path: string): T | undefined {
  const absolute = resolve(path);
  const holds = (mount: string) => mount === sep || absolute === mount || absolute.startsWith(`${mount}${sep}`);
  return mounts.filter((entry) => holds(entry.mount)).sort((a, b) => b.mount.length - a.mount.length)[0];
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
  interfaceOf: (address) => {
    // IPv4-mapped IPv6 (`::ffff:10.0.0.1`) is how a dual-stack socket names an IPv4 peer.
    const plain = address.replace(/^::ffff:/, '');
    const found = Object.entries(networkInterfaces()).find(([, addresses]) => addresses?.some((entry) => entry.address === plain));
    return Promise.resolve(found?.[0]);
  },
};
