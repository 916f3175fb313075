/**
 * The target's preflight, on `prepare` and before anything moves: an incoming guest is refused
 * when this host cannot give it its memory, room for its bases or, for a guest that runs under
 * KVM on the source, hardware virtualisation (QEMU cannot load a KVM guest's state into TCG).
 * Refusing here costs the source nothing; finding out after the bases crossed costs the link.
 */
import { PeerError } from '../errors.js';
import type { HostInventory } from '../host/inventory.js';
import type { WireVm } from '../peer/protocol.js';
import { formatBytes } from '../units.js';

const MiB = 1024 ** 2;
/** QEMU's own allocations on top of guest RAM (device state, TCG translation cache, NBD). */
export const MEMORY_MARGIN = 64 * MiB;

/**
 * @param basesAt where the bases will be written (a path on their filesystem)
 * @throws PeerError naming what is short, by how much
 */
export async function preflight(inventory: HostInventory, vm: WireVm, basesAt: string, signal?: AbortSignal): Promise<void> {
  // The bounds: a raw base is its virtual size; a qcow2 base is at most that plus a little
  // metadata, and usually far less, so the sum refuses only a host that may really run out.
  const diskNeed = vm.disks.reduce((sum, disk) => sum + disk.virtualSize, 0);
  const memoryNeed = vm.memoryMiB * MiB + MEMORY_MARGIN;
  const [memory, disk, virtualization] = await Promise.all([
    inventory.availableMemory(signal),
    inventory.availableDisk(basesAt, signal),
    vm.accel === 'kvm' ? inventory.cpuVirtualization(signal) : Promise.resolve(true),
  ]);
  const short: string[] = [];
  if (memory < memoryNeed) short.push(`memory: ${formatBytes(memory)} (${memory} bytes) available, the guest needs ${vm.memoryMiB} MiB + ${MEMORY_MARGIN / MiB} MiB for QEMU (${memoryNeed} bytes)`);
  if (disk < diskNeed) short.push(`disk at ${basesAt}: ${formatBytes(disk)} (${disk} bytes) free, its bases need up to ${formatBytes(diskNeed)} (${diskNeed} bytes: ${vm.disks.map((d) => `${d.id} ${d.virtualSize}`).join(', ')})`);
  if (!virtualization) short.push('hardware virtualisation: the guest runs under KVM on the source, and this CPU advertises neither vmx nor svm');
  if (short.length > 0) throw new PeerError(`target cannot take ${vm.name}: short of ${short.join('; ')}`);
}
