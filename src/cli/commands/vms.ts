/** `cowbuf vm start|adopt|list|delete`: the VMs the daemon drives, through its API. */
import { Command } from 'commander';
import { parse } from 'yaml';
import { ValidationError } from '../../errors.js';
import type { VmRemoval } from '../../migration/removal.js';
import { ApiClient } from '../client.js';
import { parseFormat, render, table } from '../format.js';
import type { Io } from '../io.js';
import { readText } from './peers.js';

interface VmView {
  readonly name: string;
  readonly running: boolean;
  readonly status: string;
  readonly pid?: number;
  readonly accel: string;
  readonly serialLog: string;
  readonly throttled?: boolean;
}

/** A VM definition file, YAML or JSON (JSON is YAML); its fields are checked by the daemon. */
async function definition(path: string): Promise<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = parse(await readText('spec', path));
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    throw new ValidationError('spec', path, `YAML or JSON (${(error as Error).message.split('\n')[0] ?? ''})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ValidationError('spec', path, 'a file holding one object (the VM definition)');
  return parsed as Record<string, unknown>;
}

export function vmCommands(io: Io): Command {
  const vm = new Command('vm').description('VMs this daemon drives: started by it, adopted, or arrived by migration (an embedding daemon owns its own)');
  vm.command('start')
    .description('start a VM from a YAML or JSON spec: name, memoryMiB, disks [{id, file}], optional kernel, initrd, append')
    .argument('<spec>', 'spec file')
    .action(async (spec: string, _flags: unknown, command: Command) => {
      const started = await (await ApiClient.for(command)).call<VmView>('POST', '/1.0/vms', await definition(spec));
      io.stdout(`started ${started.name} (serial log ${started.serialLog})\n`);
    });
  vm.command('adopt')
    .description('take over a running QEMU cowbuf did not start: its drives must stop on write errors; its I/O limits are kept')
    .argument('<spec>', 'YAML or JSON spec of the VM as QEMU runs it (name, memoryMiB, disks [{id, nodeName, file}], …)')
    .requiredOption('--qmp <socket>', "a QMP monitor socket of the QEMU for cowbuf's own use")
    .option('--pid <pid>', 'its QEMU process (default: the process listening on the socket)')
    .option('--allow-error-policy', 'adopt drives that do not stop on write errors (a full buffer then reaches the guest as an I/O error)')
    .action(async (spec: string, flags: { qmp: string; pid?: string; allowErrorPolicy?: boolean }, command: Command) => {
      const body = { ...(await definition(spec)), qmpSocket: flags.qmp, ...(flags.pid !== undefined ? { pid: Number(flags.pid) } : {}), ...(flags.allowErrorPolicy ? { allowErrorPolicy: true } : {}) };
      const adopted = await (await ApiClient.for(command)).call<VmView>('POST', '/1.0/vms/adopt', body);
      io.stdout(`adopted ${adopted.name} (pid ${String(adopted.pid ?? 'unknown')})\n`);
    });
  vm.command('delete')
    .alias('rm')
    .description(
      'take a VM off this host, keeping its files: one the daemon started or received is stopped (QMP quit, then SIGTERM, SIGKILL: shut the guest down from inside first if its filesystems matter) and its taps removed; an adopted one is released and its QEMU runs on. Refused while a migration or an evacuation holds it',
    )
    .argument('<name>', 'a VM of this host (`cowbuf vm list`)')
    .action(async (name: string, _flags: unknown, command: Command) => {
      const removed = await (await ApiClient.for(command)).call<VmRemoval>('DELETE', `/1.0/vms/${encodeURIComponent(name)}`);
      const pid = String(removed.pid ?? 'unknown');
      io.stdout(removed.removal === 'stopped' ? `stopped ${removed.name} (pid ${pid} quit); its disks are kept\n` : `released ${removed.name}: its QEMU (pid ${pid}) runs on without cowbuf\n`);
    });
  vm.command('list')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (flags: { format?: string }, command: Command) => {
      const format = parseFormat(flags.format);
      const vms = await (await ApiClient.for(command)).call<VmView[]>('GET', '/1.0/vms');
      io.stdout(render(format, vms, () => table(['NAME', 'STATUS', 'PID', 'ACCEL', 'THROTTLED', 'SERIAL LOG'], vms.map((v) => [v.name, v.running ? v.status : 'gone', String(v.pid ?? '-'), v.accel, v.throttled ? 'yes' : 'no', v.serialLog]))));
    });
  return vm;
}
