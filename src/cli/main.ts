/**
 * The `cowbuf` command line. Every subcommand lives in `commands/`; this file wires them up and
 * owns the error policy: a `CowbufError` prints one line and exits 2 (bad input) or 1 (a failed
 * operation); anything else is a bug and prints its stack.
 */
import { Command, CommanderError } from 'commander';
import { createInterface } from 'node:readline/promises';
import { CowbufError, ValidationError } from '../errors.js';
import { bufferCommand } from './commands/buffer.js';
import { completionCommand } from './commands/completion.js';
import { evacuationCommands } from './commands/evacuate.js';
import { initCommand } from './commands/init.js';
import { migrationCommands } from './commands/migrations.js';
import { peerCommands } from './commands/peers.js';
import { simCommand } from './commands/sim.js';
import { vmCommands } from './commands/vms.js';
import type { Io } from './io.js';

export type { Io } from './io.js';

async function terminalPrompt(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}

const processIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  ...(process.stdin.isTTY && process.stdout.isTTY ? { prompt: terminalPrompt } : {}),
  tty: process.stdout.isTTY === true,
};

export function program(io: Io): Command {
  const root = new Command('cowbuf')
    .description('One shared copy-on-write buffer and an adaptive write throttle for live migration of QEMU/KVM VMs with local storage')
    .version('0.1.0')
    .option('--config <file>', 'configuration file (default $COWBUF_CONFIG or /etc/cowbuf/cowbuf.yaml)')
    .option('--socket <path>', "the daemon's API socket (default $COWBUF_SOCKET, else the config's daemon.socket)")
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  root.addCommand(initCommand(io));
  root.addCommand(bufferCommand(io));
  for (const command of [...migrationCommands(io), ...evacuationCommands(io), ...peerCommands(io), vmCommands(io)]) root.addCommand(command);
  root.addCommand(simCommand(io));
  root.addCommand(completionCommand(io, () => root));
  const configure = (command: Command): void => {
    command.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
    command.commands.forEach(configure);
  };
  root.commands.forEach(configure);
  return root;
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  try {
    await program(io).parseAsync([...argv]);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof CowbufError) {
      io.stderr(`Error: ${error.message}\n`);
      return error instanceof ValidationError ? 2 : 1;
    }
    throw error;
  }
}
