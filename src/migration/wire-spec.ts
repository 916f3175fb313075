/**
 * The device model crossing in `prepare`, both ways: the source describes its VM (`wireVm`), the
 * target rebuilds the same VM around the files it holds (`incomingSpec`). Everything that shapes
 * the guest survives the trip (machine, CPU, firmware, buses, cache modes, cdroms, NICs with their
 * MACs and bridges); only the paths of host-local files are the target's own.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileDigest } from '../host/file-digest.js';
import type { WireVm } from '../peer/protocol.js';
import type { IoLimits } from '../qmp/commands.js';
import { defined } from '../validate.js';
import type { Accel, FirmwareSpec, VmSpec } from '../vm/spec.js';

/**
 * @param sizes virtual size of each disk's format node, by node name
 * @param limits the I/O limits an admin set, by disk id (only drives that have any)
 * @throws the file system's error when a firmware file or a cdrom cannot be read
 */
export async function wireVm(spec: VmSpec, accel: Accel, sizes: ReadonlyMap<string, number>, limits: ReadonlyMap<string, IoLimits>, signal?: AbortSignal): Promise<WireVm> {
  const { firmware, cdroms } = spec;
  return defined({
    ...guestModel(spec),
    accel,
    disks: spec.disks.map((disk) => defined({ id: disk.id, nodeName: disk.nodeName, format: disk.format, bus: disk.bus, cache: disk.cache, aio: disk.aio, discard: disk.discard, virtualSize: sizes.get(disk.nodeName) ?? 0, limits: limits.get(disk.id) })),
    cdroms: cdroms && (await Promise.all(cdroms.map(async ({ id, file, bus }) => ({ id, file, bus, ...(await fileDigest(file, signal)) })))),
    firmware: firmware && { code: firmware.code, codeSize: (await stat(firmware.code)).size, varsBase64: (await readFile(firmware.vars, signal ? { signal } : {})).toString('base64') },
  });
}

/** What shapes the guest and crosses as it is, both ways. */
function guestModel({ name, memoryMiB, vcpus, machine, cpu, kernel, initrd, append, nics }: WireVm | VmSpec) {
  return { name, memoryMiB, vcpus, machine, cpu, kernel, initrd, append, nics };
}

/** The variable store's file in an incoming VM's directory (its home once it arrived). */
export const VARS_FILE = 'vars.fd';

/**
 * The spec this host starts an incoming VM from, at home in `dir`: the source's device model,
 * its disks where they were received, its variable store written into `dir`.
 */
export async function incomingSpec(wire: WireVm, dir: string, diskFile: (disk: string) => string): Promise<VmSpec> {
  let firmware: FirmwareSpec | undefined;
  if (wire.firmware) {
    firmware = { code: wire.firmware.code, vars: join(dir, VARS_FILE) };
    await writeFile(firmware.vars, Buffer.from(wire.firmware.varsBase64, 'base64'), { mode: 0o600 });
  }
  return defined({
    ...guestModel(wire),
    firmware,
    disks: wire.disks.map((disk) => defined({ id: disk.id, nodeName: disk.nodeName, file: diskFile(disk.id), format: disk.format, werror: 'stop' as const, bus: disk.bus, cache: disk.cache, aio: disk.aio, discard: disk.discard })),
    cdroms: wire.cdroms?.map(({ id, file, bus }) => ({ id, file, bus })),
    qmpSocket: join(dir, 'qmp.sock'),
    serialLog: join(dir, 'serial.log'),
    incoming: true,
  });
}
