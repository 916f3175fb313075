/** What a CLI command may touch of the outside world: output streams, a prompt, the config path. */
import type { Command } from 'commander';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';

export interface Io {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Present only on a terminal: commands that ask questions need it. */
  readonly prompt?: (question: string) => Promise<string>;
  /** stdout is a terminal: progress is redrawn in place instead of printed line by line. */
  readonly tty?: boolean;
}

/** `--config`, else `$COWBUF_CONFIG`, else the default path. */
export function configPath(command: Command, env: NodeJS.ProcessEnv = process.env): string {
  const globals = command.optsWithGlobals<{ config?: string }>();
  return globals.config ?? env.COWBUF_CONFIG ?? DEFAULT_CONFIG_PATH;
}
