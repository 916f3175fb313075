/**
 * Interface byte counters, read straight from sysfs (the same files `systeminformation` reads,
 * but without the shell `cat` chain it spawns per sample, which would bypass the subprocess
 * chokepoint and cost a process per tick). Inside a network namespace, `ip netns exec` remounts
 * /sys so these are the namespace's own interfaces.
 */
import { readFile } from 'node:fs/promises';
import { checkName } from '../exec/run.js';

export interface InterfaceCounters {
  readonly txBytes: number;
  readonly rxBytes: number;
}

export async function readInterfaceCounters(iface: string): Promise<InterfaceCounters> {
  const dir = `/sys/class/net/${checkName('interface', iface)}/statistics`;
  const [tx, rx] = await Promise.all([readFile(`${dir}/tx_bytes`, 'utf8'), readFile(`${dir}/rx_bytes`, 'utf8')]);
  return { txBytes: Number(tx.trim()), rxBytes: Number(rx.trim()) };
}
