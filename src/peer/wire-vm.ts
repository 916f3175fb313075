/**
 * The VM as it crosses in `prepare`: the source's device model without what is local to the
 * source (its sockets, its log, its disks' files), with what the target needs to prove it can
 * rebuild the same guest. Parsed like every peer message: shapes here, then the checks any
 * definition passes (`checkVmSpec`), each naming the bad field.
 */
import { ValidationError } from '../errors.js';
import { array, defined, number, object, string } from '../validate.js';
import { checkVmSpec } from '../vm/check.js';
import { AIO, CACHE, CDROM_BUSES, DISCARD, DISK_BUSES, type Accel, type CdromSpec, type CpuSpec, type DiskSpec, type NicSpec, type VmSpec } from '../vm/spec.js';

/** A disk as the target needs it: the source's spec without its local file, plus its size. */
export type WireDisk = Pick<DiskSpec, 'id' | 'nodeName' | 'format' | 'bus' | 'cache' | 'aio' | 'discard'> & {
  readonly virtualSize: number;
  /** The I/O limits an admin set on the drive (`block_set_io_throttle` fields): the target puts them back. */
  readonly limits?: Readonly<Record<string, number | string>>;
};

/** `bps`, `iops_wr_max_length`, …: every limit QEMU knows is one of these, a count ≥ 0. */
const LIMIT = /^(bps|iops)(_rd|_wr)?(_max(_length)?)?$|^iops_size$/;

function parseLimits(field: string, value: unknown): Readonly<Record<string, number | string>> {
  const raw = object(field, value, [], Object.keys(value !== null && typeof value === 'object' ? value : {}));
  return Object.fromEntries(
    Object.entries(raw).map(([key, limit]) => {
      if (key === 'group') return [key, string(`${field}.group`, limit)];
      if (!LIMIT.test(key)) throw new ValidationError(`${field}.${key}`, limit, 'a block_set_io_throttle limit (bps…, iops…, group)');
      return [key, number(`${field}.${key}`, limit, { min: 0, integer: true })];
    }),
  );
}

/** A cdrom is not shipped: the target must hold the same image at the same path, which its digest proves. */
export interface WireCdrom extends CdromSpec {
  readonly size: number;
  readonly sha256: string;
}

/**
 * UEFI firmware. The code is the target's own file at the same path, of the same size: QEMU
 * migrates each flash device as a RAM block, which must match in length. The variable store
 * travels inline, base64, rather than as one more base stream: it is small (128 or 528 KiB for
 * Debian's OVMF), the base streams are the disks' (a ZFS dataset ships exactly those), and this
 * copy is not the one that counts: the flash's live contents cross again with the RAM, and the
 * target's QEMU writes them into its file when the guest resumes there (pflash post-load). What
 * this copy guarantees is that the target's file is the guest's own image of the right size from
 * the start, never a fabricated one.
 */
export interface WireFirmware {
  readonly code: string;
  readonly codeSize: number;
  readonly varsBase64: string;
}

/**
 * The VM as the target must start it, and the accelerator it runs under on the source (a KVM
 * guest's state cannot be loaded into TCG).
 */
export type WireVm = Pick<VmSpec, 'name' | 'memoryMiB' | 'vcpus' | 'machine' | 'cpu' | 'kernel' | 'initrd' | 'append'> & {
  readonly disks: readonly WireDisk[];
  readonly cdroms?: readonly WireCdrom[];
  /** Same MACs, same bridge names: the guest keeps its addresses on the same network. */
  readonly nics?: readonly NicSpec[];
  readonly firmware?: WireFirmware;
  readonly accel?: Accel;
};

/** OVMF's largest variable store is 528 KiB; anything far beyond is not a variable store. */
const MAX_VARS_BYTES = 4 * 1024 ** 2;
/** A flat character class: a repeated group would recurse per character and overflow the stack on a large input. */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const SHA256 = /^[0-9a-f]{64}$/;

function choice<const T extends string>(field: string, value: unknown, choices: readonly T[]): T {
  if (!choices.includes(value as T)) throw new ValidationError(field, value, `one of ${choices.join(', ')}`);
  return value as T;
}

const optional = <T>(value: unknown, parse: (value: unknown) => T): T | undefined => (value === undefined ? undefined : parse(value));

const count = (field: string, value: unknown) => number(field, value, { min: 1, max: 1024, integer: true });

function parseCpu(raw: unknown): CpuSpec {
  const cpu = object('vm.cpu', raw, ['model'], ['sockets', 'cores', 'threads']);
  return defined({
    model: string('vm.cpu.model', cpu.model),
    sockets: optional(cpu.sockets, (value) => count('vm.cpu.sockets', value)),
    cores: optional(cpu.cores, (value) => count('vm.cpu.cores', value)),
    threads: optional(cpu.threads, (value) => count('vm.cpu.threads', value)),
  });
}

function parseFirmware(raw: unknown): WireFirmware {
  const firmware = object('vm.firmware', raw, ['code', 'codeSize', 'varsBase64']);
  const vars = string('vm.firmware.varsBase64', firmware.varsBase64);
  if ((vars.length / 4) * 3 > MAX_VARS_BYTES) throw new ValidationError('vm.firmware.varsBase64', `${vars.length} base64 characters`, `a variable store of at most ${MAX_VARS_BYTES} bytes`);
  if (vars.length % 4 !== 0 || !BASE64.test(vars)) throw new ValidationError('vm.firmware.varsBase64', vars, 'the variable store in base64');
  return { code: string('vm.firmware.code', firmware.code), codeSize: number('vm.firmware.codeSize', firmware.codeSize, { min: 1, integer: true }), varsBase64: vars };
}

function parseDisk(entry: unknown, index: number): WireDisk {
  const field = `vm.disks[${index}]`;
  const disk = object(field, entry, ['id', 'nodeName', 'format', 'virtualSize'], ['bus', 'cache', 'aio', 'discard', 'limits']);
  return defined({
    id: string(`${field}.id`, disk.id),
    nodeName: string(`${field}.nodeName`, disk.nodeName),
    format: choice(`${field}.format`, disk.format, ['qcow2', 'raw']),
    bus: optional(disk.bus, (value) => choice(`${field}.bus`, value, DISK_BUSES)),
    cache: optional(disk.cache, (value) => choice(`${field}.cache`, value, CACHE)),
    aio: optional(disk.aio, (value) => choice(`${field}.aio`, value, AIO)),
    discard: optional(disk.discard, (value) => choice(`${field}.discard`, value, DISCARD)),
    virtualSize: number(`${field}.virtualSize`, disk.virtualSize, { min: 1, integer: true }),
    limits: optional(disk.limits, (value) => parseLimits(`${field}.limits`, value)),
  });
}

function parseCdrom(entry: unknown, index: number): WireCdrom {
  const field = `vm.cdroms[${index}]`;
  const cdrom = object(field, entry, ['id', 'file', 'bus', 'size', 'sha256']);
  return {
    id: string(`${field}.id`, cdrom.id),
    file: string(`${field}.file`, cdrom.file),
    bus: choice(`${field}.bus`, cdrom.bus, CDROM_BUSES),
    size: number(`${field}.size`, cdrom.size, { min: 0, integer: true }),
    sha256: string(`${field}.sha256`, cdrom.sha256, SHA256, '64 lower-case hex digits'),
  };
}

function parseNic(entry: unknown, index: number): NicSpec {
  const field = `vm.nics[${index}]`;
  const nic = object(field, entry, ['id', 'mac', 'bridge'], ['tap']);
  return defined({
    id: string(`${field}.id`, nic.id),
    mac: string(`${field}.mac`, nic.mac),
    bridge: string(`${field}.bridge`, nic.bridge),
    tap: optional(nic.tap, (value) => string(`${field}.tap`, value)),
  });
}

/** @throws ValidationError naming the bad field */
export function parseVm(raw: unknown): WireVm {
  const vm = object('vm', raw, ['name', 'memoryMiB', 'vcpus', 'disks'], ['machine', 'cpu', 'kernel', 'initrd', 'append', 'cdroms', 'nics', 'firmware', 'accel']);
  const text = (key: 'machine' | 'kernel' | 'initrd' | 'append') => optional(vm[key], (value) => string(`vm.${key}`, value));
  const wire = defined({
    name: string('vm.name', vm.name),
    memoryMiB: number('vm.memoryMiB', vm.memoryMiB),
    vcpus: number('vm.vcpus', vm.vcpus),
    machine: text('machine'),
    cpu: optional(vm.cpu, parseCpu),
    kernel: text('kernel'),
    initrd: text('initrd'),
    append: text('append'),
    disks: array('vm.disks', vm.disks, 1).map(parseDisk),
    cdroms: optional(vm.cdroms, (value) => array('vm.cdroms', value).map(parseCdrom)),
    nics: optional(vm.nics, (value) => array('vm.nics', value).map(parseNic)),
    firmware: optional(vm.firmware, parseFirmware),
    accel: optional(vm.accel, (value) => choice('vm.accel', value, ['kvm', 'tcg'])),
  });
  return checkVmSpec(wire, 'vm');
}
