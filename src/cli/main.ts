/**
 * The `cowbuf` command line. Every subcommand lives in `commands/`; this file wires them up and
 * owns the error policy: a `CowbufError` prints one line and exits 2 (bad input) or 1 (a failed
 * operation); anything else is a bug and prints its stack.
 */
import { Command, CommanderError } from 'commander';
import { CowbufError, ValidationError } from '../errors.js';
import { simCommand } from './commands/sim.js';

export interface Io {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const processIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

export function program(io: Io): Command {
  const root = new Command('cowbuf')
    .description('One shared copy-on-write buffer and an adaptive write throttle for live migration of QEMU/KVM VMs with local storage')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  root.addCommand(simCommand(io));
  for (const command of root.commands) command.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
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
