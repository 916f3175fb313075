/**
 * What a VM cowbuf did not start must have before it can migrate: every disk of its definition
 * present in QEMU under the same device id and node name, and every such drive stopping the guest
 * on a write error (`werror=stop`). QEMU's default (`enospc`, shown as `auto`) would hand the
 * EDQUOT of a full buffer to the guest as an I/O error, the one failure cowbuf exists to prevent.
 */
import type { ManagedVm } from './provider.js';
import { deviceIdOf } from './spec.js';

export interface AdoptProblem {
  readonly kind: 'missing' | 'error-policy';
  readonly field: string;
  readonly value: unknown;
  readonly expected: string;
}

export async function checkAdoptable(vm: Pick<ManagedVm, 'spec' | 'commands'>, signal?: AbortSignal): Promise<AdoptProblem[]> {
  const options = signal ? { signal } : {};
  const [devices, nodes] = await Promise.all([vm.commands.queryIoThrottles(options), vm.commands.queryNamedBlockNodes(options)]);
  const qdevs = new Set(devices.map((device) => deviceIdOf(device.qdev)));
  const names = new Set(nodes.map((node) => node['node-name']));
  const problems: AdoptProblem[] = [];
  for (const [index, disk] of vm.spec.disks.entries()) {
    const field = `vm.disks[${index}]`;
    if (!qdevs.has(disk.id)) {
      problems.push({ kind: 'missing', field: `${field}.id`, value: disk.id, expected: `a drive of this QEMU (${[...qdevs].join(', ') || 'none'})` });
      continue;
    }
    if (!names.has(disk.nodeName)) {
      problems.push({ kind: 'missing', field: `${field}.nodeName`, value: disk.nodeName, expected: `a block node of this QEMU (${[...names].join(', ')})` });
      continue;
    }
    const werror = await vm.commands.qomGet(`/machine/peripheral/${disk.id}`, 'werror', options);
    if (werror !== 'stop') problems.push({ kind: 'error-policy', field: `${field}.werror`, value: werror, expected: 'stop (a full buffer must pause the guest, not fail its writes)' });
  }
  return problems;
}
