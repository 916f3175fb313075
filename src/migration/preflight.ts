/**
 * The target's preflight, on `prepare` and before anything moves. An incoming guest is refused
 * when this host cannot give it its memory or room for its bases, or cannot rebuild the same
 * guest: its QEMU lacks the machine type or CPU model, it would run the guest under another
 * accelerator (QEMU cannot load a KVM guest's CPU state into TCG, nor the reverse), a NIC's bridge
 * is missing, a file the guest starts from is missing or differs (firmware code, kernel, initrd,
 * cdrom), or a VM of that name is already here. Refusing here costs the source nothing; finding
 * out after the bases crossed costs the link, after the RAM crossed a failed switchover.
 */
import { stat } from 'node:fs/promises';
import { orAbort } from '../abort.js';
import { PeerError } from '../errors.js';
import { fileDigest } from '../host/file-digest.js';
import type { HostInventory } from '../host/inventory.js';
import type { WireVm } from '../peer/protocol.js';
import { formatBytes } from '../units.js';
import { detectAccel } from '../vm/accel.js';
import { qemuCatalog, type QemuCatalog } from '../vm/qemu-catalog.js';
import type { Accel } from '../vm/spec.js';

const MiB = 1024 ** 2;
/** QEMU's own allocations on top of guest RAM (device state, TCG translation cache, NBD). */
export const MEMORY_MARGIN = 64 * MiB;

/** What the preflight asks of the target besides its inventory: its QEMU, its VMs. */
export interface TargetFacts {
  /** The accelerator an incoming guest would run under here. */
  readonly accel: (signal?: AbortSignal) => Promise<Accel>;
  /** What this host's QEMU knows; asked only for a guest that names a machine type or CPU model. */
  readonly qemu: (signal?: AbortSignal) => Promise<QemuCatalog>;
  /** Whether a VM of that name runs here (or is arriving by another migration). */
  readonly hasVm: (name: string) => boolean;
}

/** The facts as cowbuf's own launcher sees this host: `binary` is its QEMU, `accel` its choice if forced. */
export function localFacts(options: { readonly binary: string; readonly accel?: Accel; readonly inventory: HostInventory; readonly hasVm: (name: string) => boolean }): TargetFacts {
  const { binary, accel, inventory, hasVm } = options;
  return { accel: () => (accel ? Promise.resolve(accel) : detectAccel(process.env, inventory)), qemu: (signal) => qemuCatalog(binary, signal), hasVm };
}

/**
 * Host checks answer from local reads, a `df` and QEMU's help; a cdrom is read whole to hash it,
 * counted at a pessimistic 100 MiB/s (once: its digest is kept). The cap stays under the 120 s
 * the source waits for `prepare`'s answer, so the source hears the refusal rather than a timeout.
 */
export function preflightTimeoutMs(vm: WireVm): number {
  const cdromBytes = (vm.cdroms ?? []).reduce((sum, cdrom) => sum + cdrom.size, 0);
  return Math.min(100_000, 10_000 + Math.ceil(cdromBytes / (100 * MiB)) * 1000);
}

const upper = (accel: Accel) => accel.toUpperCase();

/** Why a file the guest needs cannot serve here, if it cannot. */
async function fileProblem(what: string, path: string, signal: AbortSignal | undefined, expected?: { readonly size: number; readonly sha256?: string; readonly why: string }): Promise<string | undefined> {
  let size: number;
  try {
    size = (await orAbort(stat(path), signal)).size;
  } catch (error) {
    if (signal?.aborted) throw error;
    return `${what} ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing on this host' : (error as Error).message}`;
  }
  if (!expected) return undefined;
  if (size !== expected.size) return `${what} ${path}: ${size} bytes here, ${expected.size} on the source (${expected.why})`;
  if (expected.sha256 === undefined) return undefined;
  const here = (await fileDigest(path, signal)).sha256;
  return here === expected.sha256 ? undefined : `${what} ${path}: differs from the source's (sha256 ${here.slice(0, 12)}… here, ${expected.sha256.slice(0, 12)}… there; ${expected.why})`;
}

/** What cannot be rebuilt here as the source runs it, one line each. */
async function deviceModelProblems(inventory: HostInventory, facts: TargetFacts, vm: WireVm, signal: AbortSignal | undefined): Promise<string[]> {
  const catalog = async (): Promise<string[]> => {
    if (vm.machine === undefined && vm.cpu === undefined) return [];
    let known: QemuCatalog;
    try {
      known = await facts.qemu(signal);
    } catch (error) {
      if (signal?.aborted) throw error;
      return [`QEMU: cannot tell what this host's QEMU knows (${(error as Error).message})`];
    }
    return [
      ...(vm.machine !== undefined && !known.machines.has(vm.machine) ? [`machine type ${vm.machine}: this host's QEMU does not know it (\`-machine help\`)`] : []),
      ...(vm.cpu && !known.cpuModels.has(vm.cpu.model) ? [`CPU model ${vm.cpu.model}: this host's QEMU does not know it (\`-cpu help\`)`] : []),
    ];
  };
  const accel = async (): Promise<string[]> => {
    if (vm.accel === undefined) return [];
    const here = await facts.accel(signal);
    return here === vm.accel ? [] : [`accelerator: the guest runs under ${upper(vm.accel)} on the source and would run under ${upper(here)} here (QEMU cannot load one's CPU state into the other)`];
  };
  const bridges = [...new Set((vm.nics ?? []).map((nic) => nic.bridge))].map(async (bridge) => {
    const nics = (vm.nics ?? []).filter((nic) => nic.bridge === bridge).map((nic) => nic.id);
    return (await inventory.isBridge(bridge, signal)) ? undefined : `bridge ${bridge} (NIC ${nics.join(', ')}): no such bridge on this host`;
  });
  const firmware = vm.firmware;
  const files = [
    vm.kernel !== undefined ? fileProblem('kernel', vm.kernel, signal) : undefined,
    vm.initrd !== undefined ? fileProblem('initrd', vm.initrd, signal) : undefined,
    firmware ? fileProblem('firmware code', firmware.code, signal, { size: firmware.codeSize, why: 'QEMU migrates the flash as RAM of that size' }) : undefined,
    ...(vm.cdroms ?? []).map((cdrom) => fileProblem(`cdrom ${cdrom.id}`, cdrom.file, signal, { size: cdrom.size, sha256: cdrom.sha256, why: 'a cdrom is not shipped: the guest must find the same image here' })),
  ];
  const found = await Promise.all([catalog(), accel(), Promise.all(bridges), Promise.all(files)]);
  return found.flat().filter((problem): problem is string => problem !== undefined);
}

/**
 * @param basesAt where the bases will be written (a path on their filesystem)
 * @throws PeerError naming everything that is short or differs, with the values
 */
export async function preflight(inventory: HostInventory, facts: TargetFacts, vm: WireVm, basesAt: string, signal?: AbortSignal): Promise<void> {
  // The bounds: a raw base is its virtual size; a qcow2 base is at most that plus a little
  // metadata, and usually far less, so the sum refuses only a host that may really run out.
  const diskNeed = vm.disks.reduce((sum, disk) => sum + disk.virtualSize, 0);
  const memoryNeed = vm.memoryMiB * MiB + MEMORY_MARGIN;
  const taken = facts.hasVm(vm.name) ? [`name: a VM named ${vm.name} is already on this host`] : [];
  const [memory, disk, problems] = await Promise.all([inventory.availableMemory(signal), inventory.availableDisk(basesAt, signal), deviceModelProblems(inventory, facts, vm, signal)]);
  const short: string[] = [];
  if (memory < memoryNeed) short.push(`memory: ${formatBytes(memory)} (${memory} bytes) available, the guest needs ${vm.memoryMiB} MiB + ${MEMORY_MARGIN / MiB} MiB for QEMU (${memoryNeed} bytes)`);
  if (disk < diskNeed) short.push(`disk at ${basesAt}: ${formatBytes(disk)} (${disk} bytes) free, its bases need up to ${formatBytes(diskNeed)} (${diskNeed} bytes: ${vm.disks.map((d) => `${d.id} ${d.virtualSize}`).join(', ')})`);
  const all = [...(short.length > 0 ? [`short of ${short.join('; ')}`] : []), ...taken, ...problems];
  if (all.length > 0) throw new PeerError(`target cannot take ${vm.name}: ${all.join('; ')}`);
}
