/**
 * A VM's NICs on the host: each is a tap on its named bridge, created before QEMU opens it
 * (`ifname=…,script=no`) and removed once that QEMU has quit, so the guest's network goes with
 * the copy that runs. A copy that is discarded or rolled back takes only its own taps: the
 * source's stay as they were until its QEMU is gone.
 */
import { createTap, deleteTap } from '../host/tap.js';
import type { ManagedVm } from './provider.js';
import { tapName, type VmSpec } from './spec.js';

function netns(spec: VmSpec): { netns?: string } {
  return spec.netns ? { netns: spec.netns } : {};
}

/** @throws TapError naming a missing bridge (nothing is left behind) */
export async function plugNics(spec: VmSpec, signal?: AbortSignal): Promise<void> {
  const made: string[] = [];
  try {
    for (const nic of spec.nics ?? []) {
      await createTap(tapName(spec.name, nic), nic.bridge, { ...netns(spec), ...(signal ? { signal } : {}) });
      made.push(tapName(spec.name, nic));
    }
  } catch (error) {
    for (const tap of made) await deleteTap(tap, netns(spec)).catch(() => undefined);
    throw error;
  }
}

export async function unplugNics(spec: VmSpec): Promise<void> {
  for (const nic of spec.nics ?? []) await deleteTap(tapName(spec.name, nic), netns(spec));
}

/** The same VM, whose `stop` also removes its taps once its QEMU has quit. */
export function withNics<T extends ManagedVm>(vm: T): T {
  if (!vm.spec.nics?.length) return vm;
  let stopping: Promise<void> | undefined;
  const stop = (timeoutMs?: number) =>
    (stopping ??= (async () => {
      await vm.stop(timeoutMs);
      await unplugNics(vm.spec);
    })());
  return { ...vm, stop };
}
