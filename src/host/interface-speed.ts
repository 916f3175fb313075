/**
 * An interface's link speed, from sysfs. Only a NIC's (an interface with a `device`) or a bond's
 * (the sum of its links that can send) is a speed it really has: a veth reports 10000 Mbit/s
 * whatever shapes it, a tap 10, and a virtual NIC -1; a bridge or a VLAN is followed down to the
 * interfaces under it (`lower_*`), the fastest of which is the most it can send at. Read straight
 * from sysfs, as interface-counters.ts reads counters: systeminformation's `networkInterfaces`
 * runs a shell chain (and nmcli) per interface through execSync, which would stall the event loop,
 * control ticks included.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkName } from '../exec/run.js';

/** Bytes/s; undefined when neither it nor anything under it reports a speed of its own (or it is gone). */
export async function readInterfaceSpeed(iface: string, root = '/sys/class/net'): Promise<number | undefined> {
  const dir = join(root, checkName('interface', iface));
  const entries = await readdir(dir).catch(() => undefined);
  if (!entries) return undefined;
  if (entries.includes('device') || entries.includes('bonding')) {
    // A link that is down answers EINVAL, or -1.
    const mbits = Number((await readFile(join(dir, 'speed'), 'utf8').catch(() => '')).trim());
    return mbits > 0 ? (mbits * 1e6) / 8 : undefined;
  }
  const lowers = entries.filter((entry) => entry.startsWith('lower_')).map((entry) => entry.slice('lower_'.length));
  const speeds = (await Promise.all(lowers.map((lower) => readInterfaceSpeed(lower, root)))).filter((speed) => speed !== undefined);
  return speeds.length > 0 ? Math.max(...speeds) : undefined;
}
