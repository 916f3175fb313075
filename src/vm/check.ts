/**
 * What a VM definition must satisfy before QEMU sees it, wherever it came from (the REST API, a
 * peer's `prepare`, a journal), so that a bad one is refused with its field named rather than by
 * a QEMU that exits with a line of stderr. Pure: no file is looked at here (the target's preflight
 * does that).
 */
import { isAbsolute } from 'node:path';
import { ValidationError } from '../errors.js';
import { checkName } from '../exec/run.js';
import { join, number } from '../validate.js';
import type { CdromSpec, CpuSpec, DiskSpec, NicSpec } from './spec.js';

/** cowbuf names what it adds to a guest so (overlays, NBD clients, firmware, controllers). */
export const RESERVED_PREFIX = 'cowbuf-';

const QEMU_ID = /^[A-Za-z][A-Za-z0-9_.-]*$/;
/** A block node name holds 31 bytes in QEMU, and each disk's file node adds `-file`. */
const NODE_NAME_MAX = 26;
const VERSIONED_MACHINE = /^[a-z][a-z0-9_.-]*-[a-z]*\d+(\.\d+)+$/;
const CPU_MODEL = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** IFNAMSIZ is 16 with its NUL. */
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** A qdev, netdev or node id: QEMU wants a letter first; cowbuf's own prefix is taken. */
export function checkQemuId(field: string, value: string, max = 64): string {
  if (!QEMU_ID.test(value) || value.length > max) throw new ValidationError(field, value, `an id of a letter then letters, digits, \`_\`, \`.\`, \`-\` (at most ${max})`);
  if (value.startsWith(RESERVED_PREFIX)) throw new ValidationError(field, value, `an id not starting with \`${RESERVED_PREFIX}\` (cowbuf names its own nodes and devices so)`);
  return value;
}

/** A machine type pins the device model only with its version: an alias moves with each QEMU. */
export function checkMachine(field: string, value: string): string {
  if (value.length > 64 || !VERSIONED_MACHINE.test(value)) {
    throw new ValidationError(field, value, "a versioned machine type such as `pc-q35-7.2` or `pc-i440fx-7.2` (an alias such as `q35` or `pc` stands for the newest type of each host's QEMU, so two hosts would build different guests from it)");
  }
  return value;
}

/** A bare model name: whether this QEMU knows it is the target's preflight's question. */
export function checkCpuModel(field: string, value: string): string {
  if (!CPU_MODEL.test(value)) throw new ValidationError(field, value, 'a CPU model as `qemu-system-x86_64 -cpu help` names it, such as `Skylake-Server-v4` or `host`');
  return value;
}

/** A bridge or tap name, safe as an argv element and within the kernel's limit. */
export function checkIfname(field: string, value: string): string {
  if (!IFNAME.test(value) || value === '.' || value === '..') throw new ValidationError(field, value, 'an interface name of at most 15 letters, digits, `_`, `.`, `-`');
  return value;
}

/** @returns the address in lower case */
export function checkMac(field: string, value: string): string {
  if (!MAC.test(value)) throw new ValidationError(field, value, 'a MAC address of six hex octets such as `52:54:00:12:34:56`');
  const mac = value.toLowerCase();
  if (parseInt(mac.slice(0, 2), 16) % 2 === 1) throw new ValidationError(field, value, 'a unicast MAC address (an odd first octet is a multicast address; `52:54:00:…` is the usual prefix for guests)');
  if (mac === '00:00:00:00:00:00') throw new ValidationError(field, value, 'a MAC address other than all zeros');
  return mac;
}

/** QEMU resolves a relative path against its own working directory, which is nobody's choice. */
export function checkAbsolute(field: string, value: string): string {
  if (!isAbsolute(value) || value.includes('\0')) throw new ValidationError(field, value, 'an absolute path');
  return value;
}

/** The parts of a VM these checks read: a `VmSpec`, or the same VM on the wire (no files of its own yet). */
export interface DeviceModel {
  readonly name: string;
  readonly memoryMiB: number;
  readonly vcpus: number;
  readonly machine?: string;
  readonly cpu?: CpuSpec;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly firmware?: { readonly code: string; readonly vars?: string };
  readonly disks: ReadonlyArray<Pick<DiskSpec, 'id' | 'nodeName' | 'cache' | 'aio'> & { readonly file?: string }>;
  readonly cdroms?: ReadonlyArray<Pick<CdromSpec, 'id' | 'file'>>;
  readonly nics?: readonly NicSpec[];
}

/** A check that refuses a value a second time, naming the field that had it first. */
function unique(what: string): (field: string, value: string) => void {
  const seen = new Map<string, string>();
  return (field, value) => {
    const first = seen.get(value);
    if (first !== undefined) throw new ValidationError(field, value, `${what} not already used (\`${first}\` has it)`);
    seen.set(value, field);
  };
}

function checkCpu(cpu: CpuSpec, vcpus: number, at: (...path: Array<string | number>) => string): void {
  checkCpuModel(at('cpu', 'model'), cpu.model);
  const topology = (['sockets', 'cores', 'threads'] as const).map((key) => (cpu[key] === undefined ? undefined : number(at('cpu', key), cpu[key], { min: 1, max: 1024, integer: true })));
  if (topology.every((count) => count === undefined)) return;
  const [sockets = 1, cores = 1, threads = 1] = topology;
  const product = sockets * cores * threads;
  if (product !== vcpus) throw new ValidationError(at('vcpus'), vcpus, `sockets × cores × threads of \`cpu\` (${sockets} × ${cores} × ${threads} = ${product}; one left out counts as 1)`);
}

/**
 * @param prefix where the VM sits in its document (`vm` in a spec or a peer message, `` in an API body)
 * @throws ValidationError naming the first bad field
 */
export function checkVmSpec<T extends DeviceModel>(vm: T, prefix = 'vm'): T {
  const at = (...path: Array<string | number>) => path.reduce<string>((field, key) => join(field, key), prefix);
  checkName(at('name'), vm.name);
  number(at('memoryMiB'), vm.memoryMiB, { min: 16, max: 1 << 22, integer: true });
  number(at('vcpus'), vm.vcpus, { min: 1, max: 1024, integer: true });
  if (vm.machine !== undefined) checkMachine(at('machine'), vm.machine);
  if (vm.cpu) checkCpu(vm.cpu, vm.vcpus, at);
  if (vm.kernel !== undefined) checkAbsolute(at('kernel'), vm.kernel);
  if (vm.initrd !== undefined) checkAbsolute(at('initrd'), vm.initrd);
  // qdev ids share one namespace (/machine/peripheral); two writers of one file would corrupt it.
  const deviceId = unique('an id');
  const nodeName = unique('a node name');
  const writable = unique('a file');
  if (vm.firmware) {
    checkAbsolute(at('firmware', 'code'), vm.firmware.code);
    if (vm.firmware.vars !== undefined) writable(at('firmware', 'vars'), checkAbsolute(at('firmware', 'vars'), vm.firmware.vars));
  }
  vm.disks.forEach((disk, index) => {
    deviceId(at('disks', index, 'id'), checkQemuId(at('disks', index, 'id'), disk.id));
    nodeName(at('disks', index, 'nodeName'), checkQemuId(at('disks', index, 'nodeName'), disk.nodeName, NODE_NAME_MAX));
    if (disk.file !== undefined) writable(at('disks', index, 'file'), checkAbsolute(at('disks', index, 'file'), disk.file));
    if (disk.aio === 'native' && disk.cache !== 'none' && disk.cache !== 'directsync') {
      throw new ValidationError(at('disks', index, 'aio'), disk.aio, '`threads` or `io_uring` unless `cache` is `none` or `directsync` (native AIO needs O_DIRECT)');
    }
  });
  vm.cdroms?.forEach((cdrom, index) => {
    deviceId(at('cdroms', index, 'id'), checkQemuId(at('cdroms', index, 'id'), cdrom.id));
    checkAbsolute(at('cdroms', index, 'file'), cdrom.file);
  });
  const mac = unique('a MAC address');
  const tap = unique('a tap interface');
  vm.nics?.forEach((nic, index) => {
    deviceId(at('nics', index, 'id'), checkQemuId(at('nics', index, 'id'), nic.id));
    mac(at('nics', index, 'mac'), checkMac(at('nics', index, 'mac'), nic.mac));
    checkIfname(at('nics', index, 'bridge'), nic.bridge);
    if (nic.tap !== undefined) tap(at('nics', index, 'tap'), checkIfname(at('nics', index, 'tap'), nic.tap));
  });
  return vm;
}
