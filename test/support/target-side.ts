/** A TargetSide on fakes: a host with what the test gives it, this host's QEMU and VMs, a journal in memory. */
import type { Headroom } from '../../src/evacuation/headroom.js';
import type { HostInventory } from '../../src/host/inventory.js';
import type { IncomingEntry } from '../../src/migration/journal.js';
import type { TargetFacts } from '../../src/migration/preflight.js';
import { TargetSide, type TargetOptions } from '../../src/migration/target.js';
import type { TrustedPeer } from '../../src/peer/trust.js';
import { RawShipping } from '../../src/storage/raw/shipping-raw.js';
import type { Accel } from '../../src/vm/spec.js';

const GiB = 1024 ** 3;

export const peer: TrustedPeer = { name: 'src', fingerprint: 'F', cert: '', address: '127.0.0.1:1', notAfter: '2100-01-01T00:00:00Z' };

/** A host with this much to give; `asked` records where its disk space was looked up. */
export function host(has: { memory: number; disk: number; bridges?: readonly string[] }): HostInventory & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    availableMemory: () => Promise.resolve(has.memory),
    availableDisk: (path) => (asked.push(path), Promise.resolve(has.disk)),
    cpuVirtualization: () => Promise.reject(new Error('the accelerator is a fact of its own here')),
    interfaceCounters: () => Promise.reject(new Error('no interfaces in this test')),
    isBridge: (name) => Promise.resolve((has.bridges ?? []).includes(name)),
    interfaceOf: () => Promise.resolve(undefined),
    interfaceTo: () => Promise.resolve(undefined),
    interfaceSpeed: () => Promise.resolve(undefined),
  };
}

/** This host's QEMU and VMs; `asked` counts the questions put to its QEMU and accelerator. */
export function facts(has: { accel?: Accel; machines?: readonly string[]; cpus?: readonly string[]; vms?: readonly string[]; qemuFails?: boolean } = {}): TargetFacts & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    accel: () => (asked.push('accel'), Promise.resolve(has.accel ?? 'tcg')),
    qemu: () => {
      asked.push('qemu');
      if (has.qemuFails) return Promise.reject(new Error('`qemu-system-x86_64 -machine help` could not run (ENOENT)'));
      return Promise.resolve({ machines: new Set(has.machines ?? ['pc-q35-7.2', 'pc-i440fx-7.2']), cpuModels: new Set(has.cpus ?? ['qemu64', 'Skylake-Server-v4']) });
    },
    hasVm: (name) => (has.vms ?? []).includes(name),
  };
}

export const HEADROOM: Headroom = { host: 'FP', buffer: { size: GiB, used: 0, committed: 0, free: GiB }, outgoing: { used: 0, limit: 4 }, incoming: { used: 1, limit: 4 }, memoryFree: 8 * GiB, diskFree: 100 * GiB, links: [] };

/** `saved` collects the journal's entries (and loses those dropped); `more` overrides any option. */
export function targetSide(stateDir: string, inventory: HostInventory, saved: IncomingEntry[], known: TargetFacts = facts(), maxIncoming = 1, more: Partial<TargetOptions> = {}): TargetSide {
  return new TargetSide({
    stateDir,
    maxIncoming,
    shipping: new RawShipping(),
    provider: { launchIncoming: () => Promise.reject(new Error('no VM is started in this test')) },
    inventory,
    facts: known,
    onStarted: () => undefined,
    onArrived: () => Promise.resolve(),
    hasArrived: () => false,
    journal: { save: (entry) => (saved.push(entry), Promise.resolve()), drop: () => Promise.resolve() },
    headroom: () => Promise.resolve(HEADROOM),
    ...more,
  });
}
