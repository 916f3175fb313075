/**
 * The device-model part of a VM body (`POST /1.0/vms`): the schema fields that document and
 * check it, and their mapping onto the spec. Cross-field rules (vcpus against the topology, one
 * id per device, native AIO only with O_DIRECT) are `checkVmSpec`'s, run on the whole spec.
 */
import { defined } from '../validate.js';
import { checkCpuModel, checkIfname, checkMac, checkMachine, checkQemuId } from '../vm/check.js';
import { AIO, CACHE, CDROM_BUSES, DISCARD, DISK_BUSES, type DiskSpec, type VmSpec } from '../vm/spec.js';
import { checked, integer, listOf, objectOf, oneOf, optional, path, type Parsed } from './schema.js';

const id = (doc: string) => checked('id', doc, checkQemuId);
const ifname = (doc: string) => checked('interface name', doc, checkIfname);

export const DISK_OPTIONS = {
  bus: optional(oneOf('What the guest sees the disk on (default `virtio-blk`); `virtio-scsi` disks and cdroms share one virtio-scsi controller.', DISK_BUSES)),
  cache: optional(oneOf("Host cache mode, as `-drive cache=` names it (default QEMU's, `writeback`).", CACHE)),
  aio: optional(oneOf("Asynchronous I/O on the image (default QEMU's, `threads`); `native` needs `cache` `none` or `directsync`.", AIO)),
  discard: optional(oneOf("Whether the guest's discards free space in the image (default `ignore`).", DISCARD)),
};

export const DEVICE_MODEL = {
  machine: optional(checked('machine type', "A versioned machine type such as `pc-q35-7.2` or `pc-i440fx-7.2` (default: the host QEMU's default, the newest `pc-i440fx`, which differs between QEMU versions: a VM that migrates should name one).", checkMachine)),
  cpu: optional(
    objectOf("CPU model and topology (default: QEMU's default model, `vcpus` sockets).", {
      model: checked('CPU model', 'A model `qemu-system-x86_64 -cpu help` lists; every target must know it.', checkCpuModel),
      sockets: optional(integer('Sockets (default 1).', 1, 1024)),
      cores: optional(integer('Cores per socket (default 1).', 1, 1024)),
      threads: optional(integer('Threads per core (default 1).', 1, 1024)),
    }),
  ),
  firmware: optional(
    objectOf('UEFI firmware as two flash drives (default: the BIOS).', {
      code: path('Read-only firmware code, e.g. `/usr/share/OVMF/OVMF_CODE_4M.fd`; every target must hold the same file.'),
      vars: path("This VM's own variable store (start from a copy of `OVMF_VARS_4M.fd`); it migrates with the VM."),
    }),
  ),
  cdroms: optional(
    listOf(
      'Read-only images. Never migrated: every target must hold the same file at the same path (it checks the sha256).',
      {
        id: id('Device id of the cdrom in the guest.'),
        file: path('The image (raw, e.g. an ISO).'),
        bus: optional(oneOf('`ide-cd` on the IDE/SATA controller of the machine, or `scsi-cd` on the virtio-scsi controller (default `ide`).', CDROM_BUSES), 'ide'),
      },
      0,
    ),
  ),
  nics: optional(
    listOf(
      'virtio-net NICs, each on a tap device that joins a bridge.',
      {
        id: id('Device id of the NIC in the guest.'),
        mac: checked('MAC address', 'Fixed unicast MAC, e.g. `52:54:00:12:34:56`: the guest keeps it, and its addresses, on every host.', checkMac),
        bridge: ifname('The bridge the tap joins; every target must have a bridge of that name.'),
        tap: optional(ifname('The tap interface (default `cb-` and a hash of the VM and NIC ids, the same on every host).')),
      },
      0,
    ),
  ),
};

/** The spec's fields of a body's device model; `vcpus` given, or else the topology's product. */
export function deviceModel(body: Parsed<typeof DEVICE_MODEL> & { readonly vcpus: number | undefined }): Pick<VmSpec, 'vcpus' | 'machine' | 'cpu' | 'firmware' | 'cdroms' | 'nics'> {
  const cpu = body.cpu && defined(body.cpu);
  const topology = cpu && (cpu.sockets ?? 1) * (cpu.cores ?? 1) * (cpu.threads ?? 1);
  return defined({ vcpus: body.vcpus ?? topology ?? 1, machine: body.machine, cpu, firmware: body.firmware, cdroms: body.cdroms, nics: body.nics?.map((nic) => defined(nic)) });
}

export function diskOptions(disk: Parsed<typeof DISK_OPTIONS>): Pick<DiskSpec, 'bus' | 'cache' | 'aio' | 'discard'> {
  return defined(disk);
}
