/** `cowbuf info`, `cowbuf trust add|list|remove`, `cowbuf vm start|list`: through the daemon's API. */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { parse } from 'yaml';
import { ValidationError } from '../../errors.js';
import { ApiClient } from '../client.js';
import { parseFormat, render, table } from '../format.js';
import type { Io } from '../io.js';

async function readText(field: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new ValidationError(field, path, 'a readable file', { cause: error });
  }
}

export function peerCommands(io: Io): Command[] {
  const info = new Command('info')
    .description("this daemon's identity: fingerprint, peer port, policy")
    .option('--certificate', 'print only the PEM certificate (give it to the peer: `cowbuf trust add`)')
    .action(async (flags: { certificate?: boolean }, command: Command) => {
      const server = await (await ApiClient.for(command)).call<Record<string, unknown>>('GET', '/1.0');
      if (flags.certificate) io.stdout(String(server.certificate));
      else io.stdout(`fingerprint: ${String(server.fingerprint)}\npeer port: ${String(server.peerPort)}\npolicy: ${String(server.policy)}\n`);
    });

  const trust = new Command('trust').description('peers this daemon exchanges migrations with (pinned certificates)');
  trust
    .command('add')
    .description("trust a peer: its certificate (from its `cowbuf info --certificate`) and peer address")
    .argument('<name>', 'name for the peer')
    .argument('<certificate>', 'file with its PEM certificate')
    .requiredOption('--address <host:port>', 'where its peer API listens')
    .action(async (name: string, certificate: string, flags: { address: string }, command: Command) => {
      const added = await (await ApiClient.for(command)).call<{ fingerprint: string }>('POST', '/1.0/peers', { name, certificate: await readText('certificate', certificate), address: flags.address });
      io.stdout(`trusted ${name} (${added.fingerprint})\n`);
    });
  trust
    .command('list')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (flags: { format?: string }, command: Command) => {
      const format = parseFormat(flags.format);
      const peers = await (await ApiClient.for(command)).call<Array<Record<string, string>>>('GET', '/1.0/peers');
      io.stdout(render(format, peers, () => table(['NAME', 'ADDRESS', 'FINGERPRINT', 'EXPIRES'], peers.map((p) => [p.name ?? '', p.address ?? '', p.fingerprint ?? '', p.notAfter ?? '']))));
    });
  trust
    .command('remove')
    .argument('<name>')
    .action(async (name: string, _flags: unknown, command: Command) => {
      await (await ApiClient.for(command)).call('DELETE', `/1.0/peers/${encodeURIComponent(name)}`);
      io.stdout(`removed ${name}\n`);
    });

  const vm = new Command('vm').description('VMs this daemon runs (standalone mode; an embedding daemon owns its own)');
  vm
    .command('start')
    .description('start a VM from a YAML or JSON spec: name, memoryMiB, disks [{id, file}], optional kernel, initrd, append')
    .argument('<spec>', 'spec file')
    .action(async (spec: string, _flags: unknown, command: Command) => {
      let body: unknown;
      try {
        body = parse(await readText('spec', spec));
      } catch (error) {
        if (error instanceof ValidationError) throw error;
        throw new ValidationError('spec', spec, `YAML or JSON (${(error as Error).message.split('\n')[0] ?? ''})`);
      }
      const started = await (await ApiClient.for(command)).call<{ name: string; serialLog: string }>('POST', '/1.0/vms', body);
      io.stdout(`started ${started.name} (serial log ${started.serialLog})\n`);
    });
  vm
    .command('list')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (flags: { format?: string }, command: Command) => {
      const format = parseFormat(flags.format);
      const vms = await (await ApiClient.for(command)).call<Array<Record<string, unknown>>>('GET', '/1.0/vms');
      io.stdout(render(format, vms, () => table(['NAME', 'RUNNING', 'PID', 'ACCEL', 'SERIAL LOG'], vms.map((v) => [String(v.name), String(v.running), String(v.pid), String(v.accel), String(v.serialLog)]))));
    });
  return [info, trust, vm];
}
