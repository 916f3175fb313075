/**
 * The one chokepoint for subprocesses (execa underneath). Argv only, never a shell; every call
 * has a timeout and honours an `AbortSignal`; a failure is a `CommandError` carrying the
 * command, its arguments, exit code and stderr. `netns` runs the command inside a network
 * namespace (`ip netns exec`), which is how the test bed's two hosts are reached.
 */
import { access, constants } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { CommandError, ValidationError } from '../errors.js';

export const DEFAULT_TIMEOUT_MS = 60_000;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface RunOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly input?: string;
  readonly netns?: string;
  /** Treat these exit codes as success too (e.g. `ip netns del` of a missing namespace). */
  readonly okExitCodes?: readonly number[];
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether an executable of that name is on PATH (without spawning a shell to ask). */
export async function onPath(name: string, path = process.env.PATH ?? ''): Promise<boolean> {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    try {
      await access(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** Validates a name that will become an argv element (namespace, dataset, node name...). */
export function checkName(field: string, name: string): string {
  if (!NAME.test(name)) throw new ValidationError(field, name, 'a name of letters, digits, `_`, `.`, `-` (not starting with `-`, at most 64)');
  return name;
}

function argv(cmd: string, args: readonly string[], netns: string | undefined): [string, string[]] {
  return netns === undefined ? [cmd, [...args]] : ['ip', ['netns', 'exec', checkName('netns', netns), cmd, ...args]];
}

/**
 * Runs a command to completion.
 * @throws CommandError (non-zero exit, timeout, abort, or the binary missing)
 */
export async function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, fullArgs] = argv(cmd, args, options.netns);
  const result = await execa(file, fullArgs, {
    reject: false,
    timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(options.signal ? { cancelSignal: options.signal } : {}),
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' as const }),
    stripFinalNewline: true,
  });
  const exitCode = result.exitCode ?? -1;
  if (!result.failed || (result.exitCode !== undefined && options.okExitCodes?.includes(result.exitCode))) {
    return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode };
  }
  throw new CommandError({
    cmd,
    args,
    exitCode: result.exitCode,
    stderr: String(result.stderr ?? ''),
    timedOut: result.timedOut,
    aborted: result.isCanceled,
    reason: result.exitCode === undefined ? result.shortMessage : undefined,
  });
}

export interface SpawnOptions {
  readonly netns?: string;
  readonly signal?: AbortSignal;
  /** File that receives stdout and stderr (QEMU's own diagnostics). */
  readonly logFile: string;
  /**
   * The process outlives this one (a guest's QEMU outlives a daemon restarted for an upgrade): it
   * runs in its own session, so signals to this process group miss it, and this process exiting
   * does not kill it.
   */
  readonly outlive?: boolean;
}

export interface ChildExit {
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
}

/** A long-running process the caller owns. */
export interface Child {
  readonly pid: number | undefined;
  /** Settles (never rejects) when the process has exited. */
  readonly exited: Promise<ChildExit>;
  readonly running: () => boolean;
  kill(signal?: NodeJS.Signals): void;
}

/**
 * A process started by an earlier run of this daemon (it outlived a crash), known by pid only:
 * its exit is noticed by polling.
 */
export function adoptProcess(pid: number): Child {
  const exited = (async () => {
    while (processAlive(pid)) await new Promise((resolve) => setTimeout(resolve, 200).unref());
    return { exitCode: undefined, signal: undefined };
  })();
  return {
    pid,
    exited,
    running: () => processAlive(pid),
    kill: (signal = 'SIGTERM') => {
      if (processAlive(pid)) process.kill(pid, signal);
    },
  };
}

/** Starts a long-running process (QEMU); the caller owns its lifetime. */
export function spawn(cmd: string, args: readonly string[], options: SpawnOptions): Child {
  const [file, fullArgs] = argv(cmd, args, options.netns);
  const subprocess = execa(file, fullArgs, {
    reject: false,
    stdin: 'ignore',
    stdout: { file: options.logFile },
    stderr: { file: options.logFile, append: true },
    ...(options.signal ? { cancelSignal: options.signal } : {}),
    ...(options.outlive ? { detached: true, cleanup: false } : {}),
  });
  let running = true;
  const exited = subprocess.then(
    (result) => {
      running = false;
      return { exitCode: result.exitCode, signal: result.signal };
    },
    () => {
      running = false;
      return { exitCode: undefined, signal: undefined };
    },
  );
  return { pid: subprocess.pid, exited, running: () => running, kill: (signal = 'SIGTERM') => void subprocess.kill(signal) };
}

export interface StreamingChild {
  /** What the command writes (for `zfs send`); empty when it only reads. */
  readonly stdout: Readable;
  /** What the command reads (for `zfs receive`); end it to finish. */
  readonly stdin: Writable;
  /** Resolves on exit 0. @throws CommandError with the command's stderr */
  readonly done: Promise<void>;
}

/** A command whose stdin and stdout the caller streams (e.g. `zfs send`, `zfs receive`). */
export function streamCommand(cmd: string, args: readonly string[], options: Pick<RunOptions, 'netns' | 'signal'> = {}): StreamingChild {
  const [file, fullArgs] = argv(cmd, args, options.netns);
  const subprocess = execa(file, fullArgs, {
    reject: false,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: { stdout: false, stderr: true },
    ...(options.signal ? { cancelSignal: options.signal } : {}),
  });
  // A command that exits early (refusing its input) breaks the pipe: its exit status says why.
  subprocess.stdin.on('error', () => undefined);
  const done = subprocess.then((result) => {
    if (!result.failed) return;
    throw new CommandError({
      cmd,
      args,
      exitCode: result.exitCode,
      stderr: String(result.stderr ?? ''),
      timedOut: false,
      aborted: result.isCanceled,
      reason: result.exitCode === undefined ? result.shortMessage : undefined,
    });
  });
  return { stdout: subprocess.stdout, stdin: subprocess.stdin, done };
}
