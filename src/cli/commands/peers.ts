/** `cowbuf info`, `cowbuf trust add|token|list|remove`: through the daemon's API. */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { ApiClient } from '../client.js';
import { parseFormat, render, table } from '../format.js';
import type { Io } from '../io.js';

export async function readText(field: string, path: string): Promise<string> {
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
    .description("trust a peer: by its certificate (its `cowbuf info --certificate`) and --address, or by a --token it issued")
    .argument('<name>', 'name for the peer')
    .argument('[certificate]', 'file with its PEM certificate (not with --token)')
    .option('--address <host:port>', 'where its peer API listens (with a certificate)')
    .option('--token <token>', 'a one-time token from `cowbuf trust token` on the peer: both sides then trust each other')
    .action(async (name: string, certificate: string | undefined, flags: { address?: string; token?: string }, command: Command) => {
      const client = await ApiClient.for(command);
      let added: { fingerprint: string; address: string };
      if (flags.token !== undefined) {
        if (certificate !== undefined || flags.address !== undefined) throw new ValidationError('--token', flags.token.slice(0, 12), 'given alone (a token replaces the certificate and --address)');
        added = await client.call('POST', '/1.0/peers/join', { name, token: flags.token });
      } else {
        if (certificate === undefined || flags.address === undefined) throw new ValidationError('certificate', certificate ?? '', 'a certificate file and --address, or --token');
        added = await client.call('POST', '/1.0/peers', { name, certificate: await readText('certificate', certificate), address: flags.address });
      }
      io.stdout(`trusted ${name} at ${added.address} (${added.fingerprint})\n`);
    });
  trust
    .command('token')
    .description('issue a one-time token for a peer to join with (`cowbuf trust add NAME --token …` there)')
    .argument('<name>', 'name this host gives the joining peer')
    .option('--expiry <seconds>', 'lifetime of the token', '3600')
    .action(async (name: string, flags: { expiry: string }, command: Command) => {
      const expirySeconds = Number(flags.expiry);
      const issued = await (await ApiClient.for(command)).call<{ token: string; expiresAt: string }>('POST', '/1.0/peers/tokens', { name, expirySeconds: Number.isFinite(expirySeconds) ? expirySeconds : flags.expiry });
      io.stdout(`${issued.token}\n`);
      io.stderr(`one-time token for ${name}, valid until ${issued.expiresAt}\n`);
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

  return [info, trust];
}
