/**
 * Starts a QEMU process from a `VmSpec`, waits for its QMP socket, and stops it cleanly
 * (`quit`, then SIGTERM, then SIGKILL of that one PID). The standalone provider starts its VMs
 * and the destination VMs of incoming migrations with it; the test bed starts its guests.
 */
import { readFile, rm } from 'node:fs/promises';
import { CowbufError } from '../errors.js';
import { adoptProcess, spawn, type Child } from '../exec/run.js';
import { QmpClient } from '../qmp/client.js';
import { QmpCommands } from '../qmp/commands.js';
import { detectAccel } from './accel.js';
import type { ManagedVm } from './provider.js';
import { qemuArgv, type Accel, type VmSpec } from './spec.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

export class VmStartError extends CowbufError {
  override readonly name: string = 'VmStartError';
  constructor(
    readonly vm: string,
    readonly log: string,
    options?: ErrorOptions,
  ) {
    super(`VM ${vm} did not start: ${log.trim().split('\n').slice(-3).join(' | ') || 'no output'}`, options);
  }
}

/** A QEMU this process started or reattached to: the standalone provider's VMs, and the test bed's. */
export interface RunningVm extends ManagedVm {
  readonly child: Child;
  readonly logFile: string;
  /** Quit (or kill) the QEMU process and wait for it; idempotent. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface LaunchOptions {
  readonly accel?: Accel;
  readonly signal?: AbortSignal;
  readonly qmpTimeoutMs?: number;
}

/** @throws VmStartError (with the tail of QEMU's own log), ValidationError */
export async function launchVm(spec: VmSpec, options: LaunchOptions = {}): Promise<RunningVm> {
  const accel = options.accel ?? (await detectAccel());
  const argv = qemuArgv(spec, accel);
  const logFile = `${spec.qmpSocket}.log`;
  await rm(spec.qmpSocket, { force: true });
  const child = spawn(QEMU_BINARY, argv, { logFile, outlive: true, ...(spec.netns ? { netns: spec.netns } : {}), ...(options.signal ? { signal: options.signal } : {}) });
  const qmp = new QmpClient();
  const exitedEarly = child.exited.then(() => {
    throw new Error('QEMU exited before its QMP socket answered');
  });
  try {
    await Promise.race([qmp.connect(spec.qmpSocket, { timeoutMs: options.qmpTimeoutMs ?? 15_000, ...(options.signal ? { signal: options.signal } : {}) }), exitedEarly]);
  } catch (error) {
    child.kill('SIGKILL');
    await child.exited;
    await qmp.disconnect();
    throw new VmStartError(spec.name, await readFile(logFile, 'utf8').catch(() => ''), { cause: error });
  }
  exitedEarly.catch(() => undefined);
  return runningVm(spec, accel, child, qmp);
}

function runningVm(spec: VmSpec, accel: Accel, child: Child, qmp: QmpClient): RunningVm {
  const commands = new QmpCommands(qmp);
  let stopping: Promise<void> | undefined;
  const stop = (timeoutMs = 10_000) => (stopping ??= terminate(child, qmp, commands, timeoutMs));
  return { spec, accel, child, qmp, commands, logFile: `${spec.qmpSocket}.log`, pid: child.pid, running: () => child.running(), stop };
}

/**
 * Reattaches to a QEMU that outlived the daemon which started it, through its QMP socket.
 * @throws VmStartError when the process is gone or its QMP socket does not answer
 */
export async function attachVm(spec: VmSpec, pid: number, accel: Accel, options: Pick<LaunchOptions, 'qmpTimeoutMs'> = {}): Promise<RunningVm> {
  const child = adoptProcess(pid);
  if (!child.running()) throw new VmStartError(spec.name, `process ${pid} is gone`);
  const qmp = new QmpClient();
  try {
    await qmp.connect(spec.qmpSocket, { timeoutMs: options.qmpTimeoutMs ?? 10_000 });
  } catch (error) {
    await qmp.disconnect();
    throw new VmStartError(spec.name, `QMP socket ${spec.qmpSocket} of pid ${pid} does not answer`, { cause: error });
  }
  return runningVm(spec, accel, child, qmp);
}

/**
 * Connects to a QEMU someone else started (an admin's, adopted): its accelerator is asked over
 * QMP, since nothing here chose it.
 * @throws VmStartError when the process is gone or its QMP socket does not answer
 */
export async function attachRunning(spec: VmSpec, pid: number): Promise<RunningVm> {
  const probe = await attachVm(spec, pid, 'tcg');
  const kvm = await probe.commands.queryKvm().catch(async (error: unknown) => {
    await probe.qmp.disconnect();
    throw new VmStartError(spec.name, `query-kvm failed on ${spec.qmpSocket}`, { cause: error });
  });
  return { ...probe, accel: kvm.enabled ? 'kvm' : 'tcg' };
}

async function terminate(child: Child, qmp: QmpClient, commands: QmpCommands, timeoutMs: number): Promise<void> {
  if (child.running() && qmp.state === 'running') await commands.quit({ timeoutMs: 2000 }).catch(() => undefined);
  const exited = (ms: number) => Promise.race([child.exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref())]);
  if (!(await exited(timeoutMs))) {
    child.kill('SIGTERM');
    if (!(await exited(3000))) child.kill('SIGKILL');
  }
  await child.exited;
  await qmp.disconnect();
}
