import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processAlive } from '../../src/exec/run.js';
import { attachVm } from '../../src/vm/launcher.js';
import type { ManagedVm } from '../../src/vm/provider.js';
import type { VmSpec } from '../../src/vm/spec.js';
import { StandaloneProvider } from '../../src/vm/standalone.js';
import { journalVms, useStandIns } from '../support/stand-in-qemu.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('standalone');
const standIn = useStandIns();

async function provider(stateDir: string): Promise<StandaloneProvider> {
  await mkdir(join(stateDir, 'journal'), { recursive: true });
  return new StandaloneProvider({ stateDir, log: () => undefined });
}

/** The one VM a (restarted) provider reattaches to. */
async function reattached(standalone: StandaloneProvider): Promise<ManagedVm> {
  const { running } = await standalone.vms();
  expect(running).toHaveLength(1);
  return running[0] as ManagedVm;
}

const journaled = async (stateDir: string) => (JSON.parse(await readFile(join(stateDir, 'journal', 'vms.json'), 'utf8')) as { spec: VmSpec; adopted?: true }[]).map((entry) => [entry.spec.name, entry.adopted ?? false]);

describe("the standalone provider removing a VM at an admin's request", () => {
  it('quits a QEMU it started, and a restarted daemon does not bring it back', async () => {
    const stateDir = join(tempDir(), 'started');
    const own = await standIn('own1');
    await journalVms(stateDir, [own]);
    const standalone = await provider(stateDir);
    expect(await standalone.remove(await reattached(standalone))).toBe('stopped');
    expect(own.quits()).toBe(1);
    expect(processAlive(own.pid)).toBe(false);
    expect(await journaled(stateDir)).toEqual([]);
    expect(await (await provider(stateDir)).vms()).toEqual({ running: [], gone: [] });
  });

  it('releases an adopted QEMU: its monitor given back, never quit, and it stays released across a restart', async () => {
    const stateDir = join(tempDir(), 'adopted');
    const theirs = await standIn('theirs1');
    await (await provider(stateDir)).attached(await attachVm(theirs.spec, theirs.pid, 'tcg'));
    expect(await journaled(stateDir)).toEqual([['theirs1', true]]);
    // A restarted daemon reattaches it, still as an adopted one.
    const restarted = await provider(stateDir);
    const vm = await reattached(restarted);
    expect(await restarted.remove(vm)).toBe('released');
    expect(theirs.quits()).toBe(0);
    expect(processAlive(theirs.pid)).toBe(true);
    expect(vm.qmp.state).not.toBe('running');
    expect(await journaled(stateDir)).toEqual([]);
    expect(await (await provider(stateDir)).vms()).toEqual({ running: [], gone: [] });
  });

  it('keeps a VM of its own whose monitor was re-taken after a lost connection as its own: removal quits it', async () => {
    const stateDir = join(tempDir(), 'retaken');
    const own = await standIn('own2');
    await journalVms(stateDir, [own]);
    const standalone = await provider(stateDir);
    await reattached(standalone);
    const fresh = await attachVm(own.spec, own.pid, 'tcg');
    await standalone.attached(fresh);
    expect(await journaled(stateDir)).toEqual([['own2', false]]);
    expect(await standalone.remove(fresh)).toBe('stopped');
    expect(own.quits()).toBe(1);
  });
});
