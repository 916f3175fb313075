/**
 * A typed VM description and the QEMU command line it becomes. Pure, so the argv can be tested
 * without starting anything. Every guest drive gets `werror=stop` by default: when the overlay's
 * quota is hit QEMU sees EDQUOT, which the default policy (`enospc`) would hand to the guest as an
 * I/O error; `stop` pauses the VM instead, and `cont` resumes it once space is given (DESIGN §5).
 */
import { ValidationError } from '../errors.js';
import { checkName } from '../exec/run.js';

export type Accel = 'kvm' | 'tcg';
export type WriteErrorPolicy = 'stop' | 'enospc' | 'report' | 'ignore';

export interface DiskSpec {
  /** qdev id of the virtio-blk device; the throttle target is `<id>/virtio-backend`. */
  readonly id: string;
  /** Node name of the format layer (the file layer is `<nodeName>-file`). */
  readonly nodeName: string;
  readonly file: string;
  readonly format: 'qcow2' | 'raw';
  readonly werror?: WriteErrorPolicy;
}

export interface VmSpec {
  readonly name: string;
  readonly memoryMiB: number;
  readonly vcpus: number;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly append?: string;
  readonly disks: readonly DiskSpec[];
  readonly qmpSocket: string;
  readonly serialLog: string;
  /** Receiving side: start paused (`-S`) and wait for `migrate-incoming` (`-incoming defer`). */
  readonly incoming?: boolean;
  /** Network namespace to run in (the test bed's hosts). */
  readonly netns?: string;
}

/** The qdev path `block_set_io_throttle` and HMP `qemu-io` want for a virtio-blk-pci disk. */
export function throttleTarget(disk: Pick<DiskSpec, 'id'>): string {
  return `${disk.id}/virtio-backend`;
}

/** QEMU's option parser splits on commas; a literal comma in a value is written twice. */
function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** @throws ValidationError on a bad name or size */
export function qemuArgv(spec: VmSpec, accel: Accel): string[] {
  checkName('vm.name', spec.name);
  if (!Number.isSafeInteger(spec.memoryMiB) || spec.memoryMiB < 16) throw new ValidationError('vm.memoryMiB', spec.memoryMiB, 'an integer ≥ 16');
  if (!Number.isSafeInteger(spec.vcpus) || spec.vcpus < 1) throw new ValidationError('vm.vcpus', spec.vcpus, 'an integer ≥ 1');
  const args = ['-name', spec.name, '-accel', accel, '-nodefaults', '-display', 'none', '-m', String(spec.memoryMiB), '-smp', String(spec.vcpus)];
  if (spec.kernel) args.push('-kernel', spec.kernel);
  if (spec.initrd) args.push('-initrd', spec.initrd);
  if (spec.append) args.push('-append', spec.append);
  spec.disks.forEach((disk, index) => {
    checkName(`vm.disks[${index}].id`, disk.id);
    checkName(`vm.disks[${index}].nodeName`, disk.nodeName);
    args.push(
      '-blockdev',
      `driver=file,filename=${optionValue(disk.file)},node-name=${disk.nodeName}-file`,
      '-blockdev',
      `driver=${disk.format},file=${disk.nodeName}-file,node-name=${disk.nodeName}`,
      '-device',
      `virtio-blk-pci,drive=${disk.nodeName},id=${disk.id},werror=${disk.werror ?? 'stop'}`,
    );
  });
  args.push('-serial', `file:${optionValue(spec.serialLog)}`, '-qmp', `unix:${optionValue(spec.qmpSocket)},server=on,wait=off`);
  if (spec.incoming) args.push('-S', '-incoming', 'defer');
  return args;
}
