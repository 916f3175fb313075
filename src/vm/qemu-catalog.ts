/**
 * The machine types and CPU models a QEMU binary knows, read from its own help output
 * (`-machine help`, `-cpu help`), which needs no guest, no accelerator and no QMP session.
 * Asked once per binary and kept for the daemon's life: an upgrade of QEMU under a running daemon
 * only adds names (old machine types are removed years after their deprecation).
 */
import { run } from '../exec/run.js';
import { orAbort } from '../abort.js';

export interface QemuCatalog {
  readonly machines: ReadonlySet<string>;
  readonly cpuModels: ReadonlySet<string>;
}

/** The lines of a help listing after its header, up to the first blank line, first word each. */
function firstWords(text: string): string[][] {
  const lines = text.split('\n').slice(1);
  const end = lines.findIndex((line) => line.trim() === '');
  return (end < 0 ? lines : lines.slice(0, end)).map((line) => line.trim().split(/\s+/));
}

/** `pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)` under `Supported machines are:`. */
export function parseMachineHelp(text: string): Set<string> {
  return new Set(firstWords(text).map((words) => words[0] ?? '').filter(Boolean));
}

/** `x86 Skylake-Server-v4  Intel Xeon …` under `Available CPUs:` (newer QEMU drops the `x86`). */
export function parseCpuHelp(text: string): Set<string> {
  return new Set(firstWords(text).map((words) => (words[0] === 'x86' ? words[1] : words[0]) ?? '').filter(Boolean));
}

const known = new Map<string, Promise<QemuCatalog>>();

/** @throws CommandError when the binary cannot answer (a failed answer is not kept) */
export function qemuCatalog(binary: string, signal?: AbortSignal): Promise<QemuCatalog> {
  let catalog = known.get(binary);
  if (!catalog) {
    const help = async (option: string) => (await run(binary, [option, 'help'], { timeoutMs: 10_000 })).stdout;
    catalog = Promise.all([help('-machine'), help('-cpu')]).then(([machines, cpus]) => ({ machines: parseMachineHelp(machines), cpuModels: parseCpuHelp(cpus) }));
    known.set(binary, catalog);
    catalog.catch(() => known.delete(binary));
  }
  // Shared by every caller, so no one caller's signal cancels it: each only stops waiting.
  return orAbort(catalog, signal);
}
