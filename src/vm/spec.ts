/**
 * A typed VM description and the QEMU command line it becomes. Pure, so the argv can be tested
 * without starting anything. Every guest drive gets `werror=stop` by default: when the overlay's
 * quota is hit QEMU sees EDQUOT, which the default policy (`enospc`) would hand to the guest as an
 * I/O error; `stop` pauses the VM instead, and `cont` resumes it once space is given (DESIGN §5).
 *
 * The spec alone fixes the guest's device model: a versioned machine type, a named CPU model with
 * its topology, every device with its id, so two hosts whose QEMU know those names build the same
 * guest from it. That is what lets a target rebuild a migrating VM; fields left out (older
 * definitions) fall back to the host QEMU's defaults as before.
 */
import { createHash } from 'node:crypto';
import { checkVmSpec, RESERVED_PREFIX } from './check.js';

export type Accel = 'kvm' | 'tcg';
export type WriteErrorPolicy = 'stop' | 'enospc' | 'report' | 'ignore';

export const DISK_BUSES = ['virtio-blk', 'virtio-scsi'] as const;
export type DiskBus = (typeof DISK_BUSES)[number];
export const CDROM_BUSES = ['ide', 'virtio-scsi'] as const;
export type CdromBus = (typeof CDROM_BUSES)[number];
/** `-drive cache=` names; with `-blockdev` each is three settings (see `CACHE_MODES`). */
export const CACHE = ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'] as const;
export type CacheMode = (typeof CACHE)[number];
export const AIO = ['threads', 'native', 'io_uring'] as const;
export type AioMode = (typeof AIO)[number];
export const DISCARD = ['ignore', 'unmap'] as const;
export type DiscardMode = (typeof DISCARD)[number];

export interface DiskSpec {
  /** qdev id of the disk's device; `throttleTarget` derives the throttle path from it and the bus. */
  readonly id: string;
  /** Node name of the format layer (the file layer is `<nodeName>-file`). */
  readonly nodeName: string;
  readonly file: string;
  readonly format: 'qcow2' | 'raw';
  readonly werror?: WriteErrorPolicy;
  /** Default `virtio-blk`. */
  readonly bus?: DiskBus;
  /** Default: QEMU's own (`writeback`). */
  readonly cache?: CacheMode;
  readonly aio?: AioMode;
  readonly discard?: DiscardMode;
}

/** A read-only image (an installer, a config drive): never migrated, so both hosts must hold it. */
export interface CdromSpec {
  readonly id: string;
  readonly file: string;
  readonly bus: CdromBus;
}

/** Topology fields left out count as 1; when any is given, vcpus must be their product. */
export interface CpuSpec {
  readonly model: string;
  readonly sockets?: number;
  readonly cores?: number;
  readonly threads?: number;
}

/** UEFI: OVMF's read-only code, and this VM's own copy of the variable store (its NVRAM). */
export interface FirmwareSpec {
  readonly code: string;
  readonly vars: string;
}

/** A virtio-net NIC on a tap device that joins `bridge` (the tap's plumbing is not the spec's). */
export interface NicSpec {
  readonly id: string;
  /** Fixed, so the guest keeps its address (and its DHCP lease) across a migration. */
  readonly mac: string;
  readonly bridge: string;
  /** The tap's interface name; default `tapName()`. */
  readonly tap?: string;
}

export interface VmSpec {
  readonly name: string;
  readonly memoryMiB: number;
  readonly vcpus: number;
  /** A versioned machine type (`pc-q35-7.2`); absent: the host QEMU's default. */
  readonly machine?: string;
  readonly cpu?: CpuSpec;
  readonly firmware?: FirmwareSpec;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly append?: string;
  readonly disks: readonly DiskSpec[];
  readonly cdroms?: readonly CdromSpec[];
  readonly nics?: readonly NicSpec[];
  readonly qmpSocket: string;
  readonly serialLog: string;
  /** Receiving side: start paused (`-S`) and wait for `migrate-incoming` (`-incoming defer`). */
  readonly incoming?: boolean;
  /** Network namespace to run in (the test bed's hosts). */
  readonly netns?: string;
}

/**
 * The path `block_set_io_throttle` (and HMP `qemu-io -d`) resolves to a disk's BlockBackend, under
 * /machine/peripheral: virtio-blk-pci is a PCI proxy whose block device is its `virtio-backend`
 * child, while scsi-hd is itself the block device, so its qdev id names it.
 */
export function throttleTarget(disk: Pick<DiskSpec, 'id' | 'bus'>): string {
  const bus = disk.bus ?? 'virtio-blk';
  switch (bus) {
    case 'virtio-blk':
      return `${disk.id}/virtio-backend`;
    case 'virtio-scsi':
      return disk.id;
    default:
      return bus satisfies never;
  }
}

/** The device id in a qdev path as `query-block` reports it (`/machine/peripheral/<id>/virtio-backend`, or `<id>`). */
export function deviceIdOf(qdev: string): string {
  return qdev.replace(/^\/machine\/peripheral\//, '').replace(/\/virtio-backend$/, '');
}

/**
 * A NIC's tap interface: the one the spec names, else `cb-` and 12 hex digits of a hash of the VM
 * and NIC ids. Interface names hold 15 bytes, fewer than a VM name may have; the hash is unique
 * on a host as long as VM names are, and the same on every host, so a migrated NIC finds its tap
 * under the same name on the target.
 */
export function tapName(vm: string, nic: Pick<NicSpec, 'id' | 'tap'>): string {
  return nic.tap ?? `cb-${createHash('sha256').update(`${vm}\0${nic.id}`).digest('hex').slice(0, 12)}`;
}

const SCSI_CONTROLLER = `${RESERVED_PREFIX}scsi`;
const SCSI_BUS = `${SCSI_CONTROLLER}.0`;
const FW_CODE = `${RESERVED_PREFIX}fw-code`;
const FW_VARS = `${RESERVED_PREFIX}fw-vars`;

/** What each cache mode sets: O_DIRECT on the image, flushes ignored, the guest-visible write cache. */
const CACHE_MODES: Readonly<Record<CacheMode, { readonly direct: boolean; readonly noFlush: boolean; readonly writeCache: boolean }>> = {
  writeback: { direct: false, noFlush: false, writeCache: true },
  none: { direct: true, noFlush: false, writeCache: true },
  writethrough: { direct: false, noFlush: false, writeCache: false },
  directsync: { direct: true, noFlush: false, writeCache: false },
  unsafe: { direct: false, noFlush: true, writeCache: true },
};

/** QEMU's option parser splits on commas; a literal comma in a value is written twice. */
function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

const onOff = (value: boolean) => (value ? 'on' : 'off');

/** One `-blockdev`/`-device` option string from its present parts. */
const options = (...parts: ReadonlyArray<string | false | undefined>) => parts.filter(Boolean).join(',');

/** A file node and the format node over it. */
function blockdevs(node: string, file: string, format: string, extra: { readonly readOnly?: boolean; readonly aio?: AioMode; readonly shared?: string } = {}): string[] {
  const readOnly = extra.readOnly === true && 'read-only=on';
  return [
    '-blockdev',
    options(`driver=file,filename=${optionValue(file)},node-name=${node}-file`, extra.aio && `aio=${extra.aio}`, extra.shared, readOnly),
    '-blockdev',
    options(`driver=${format},file=${node}-file,node-name=${node}`, extra.shared, readOnly),
  ];
}

function diskArgs(disk: DiskSpec): string[] {
  const cache = disk.cache && CACHE_MODES[disk.cache];
  // Cache and discard are per node with -blockdev: both layers get them, as `-drive` would set.
  const shared = options(cache && `cache.direct=${onOff(cache.direct)},cache.no-flush=${onOff(cache.noFlush)}`, disk.discard && `discard=${disk.discard}`);
  const device = (disk.bus ?? 'virtio-blk') === 'virtio-scsi' ? `scsi-hd,bus=${SCSI_BUS}` : 'virtio-blk-pci';
  return [
    ...blockdevs(disk.nodeName, disk.file, disk.format, { ...(disk.aio ? { aio: disk.aio } : {}), shared }),
    '-device',
    options(`${device},drive=${disk.nodeName},id=${disk.id},werror=${disk.werror ?? 'stop'}`, cache && `write-cache=${onOff(cache.writeCache)}`),
  ];
}

function cdromArgs(cdrom: CdromSpec, index: number): string[] {
  const node = `${RESERVED_PREFIX}cd${index}`;
  const device = cdrom.bus === 'virtio-scsi' ? `scsi-cd,bus=${SCSI_BUS}` : 'ide-cd';
  return [...blockdevs(node, cdrom.file, 'raw', { readOnly: true }), '-device', `${device},drive=${node},id=${cdrom.id}`];
}

function nicArgs(vm: string, nic: NicSpec): string[] {
  const netdev = `netdev-${nic.id}`;
  return ['-netdev', `tap,id=${netdev},ifname=${tapName(vm, nic)},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=${netdev},mac=${nic.mac},id=${nic.id}`];
}

function smp(spec: VmSpec): string {
  const cpu = spec.cpu;
  if (cpu?.sockets === undefined && cpu?.cores === undefined && cpu?.threads === undefined) return String(spec.vcpus);
  // All three, always: QEMU fills in missing ones differently across versions.
  return `${spec.vcpus},sockets=${cpu.sockets ?? 1},cores=${cpu.cores ?? 1},threads=${cpu.threads ?? 1}`;
}

/** `-machine`: its versioned type, and the firmware's flash drives (both PC machines take them). */
function machineArgs(spec: VmSpec): string[] {
  const parts = options(spec.machine && `type=${spec.machine}`, spec.firmware && `pflash0=${FW_CODE},pflash1=${FW_VARS}`);
  return parts ? ['-machine', parts] : [];
}

/** @throws ValidationError naming the bad field (`checkVmSpec`) */
export function qemuArgv(spec: VmSpec, accel: Accel): string[] {
  checkVmSpec(spec);
  const cdroms = spec.cdroms ?? [];
  const args = ['-name', spec.name, '-accel', accel, ...machineArgs(spec), '-nodefaults', '-display', 'none', '-m', String(spec.memoryMiB), '-smp', smp(spec)];
  if (spec.cpu) args.push('-cpu', spec.cpu.model);
  if (spec.kernel) args.push('-kernel', spec.kernel);
  if (spec.initrd) args.push('-initrd', spec.initrd);
  if (spec.append) args.push('-append', spec.append);
  if (spec.firmware) args.push(...blockdevs(FW_CODE, spec.firmware.code, 'raw', { readOnly: true }), ...blockdevs(FW_VARS, spec.firmware.vars, 'raw'));
  // The controller comes first: a device's bus must exist when the device is created.
  if ([...spec.disks, ...cdroms].some((drive) => drive.bus === 'virtio-scsi')) args.push('-device', `virtio-scsi-pci,id=${SCSI_CONTROLLER}`);
  for (const disk of spec.disks) args.push(...diskArgs(disk));
  cdroms.forEach((cdrom, index) => args.push(...cdromArgs(cdrom, index)));
  for (const nic of spec.nics ?? []) args.push(...nicArgs(spec.name, nic));
  args.push('-serial', `file:${optionValue(spec.serialLog)}`, '-qmp', `unix:${optionValue(spec.qmpSocket)},server=on,wait=off`);
  if (spec.incoming) args.push('-S', '-incoming', 'defer');
  return args;
}
