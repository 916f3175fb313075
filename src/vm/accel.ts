/**
 * Which accelerator to use. A `/dev/kvm` node is not enough: some hosts expose a software KVM
 * with no hardware virtualisation (no vmx/svm) that cannot boot Linux, so KVM is chosen only
 * when the CPU advertises it too. `COWBUF_ACCEL=kvm|tcg` overrides.
 */
import { access, constants } from 'node:fs/promises';
import { ValidationError } from '../errors.js';
import type { HostInventory } from '../host/inventory.js';
import { systemInventory } from '../host/inventory-systeminformation.js';
import type { Accel } from './spec.js';

export async function detectAccel(env: NodeJS.ProcessEnv = process.env, inventory: Pick<HostInventory, 'cpuVirtualization'> = systemInventory): Promise<Accel> {
  const forced = env.COWBUF_ACCEL;
  if (forced !== undefined) {
    if (forced === 'kvm' || forced === 'tcg') return forced;
    throw new ValidationError('COWBUF_ACCEL', forced, '`kvm` or `tcg`');
  }
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    return (await inventory.cpuVirtualization()) ? 'kvm' : 'tcg';
  } catch {
    return 'tcg';
  }
}
