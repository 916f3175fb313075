import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PeerError } from '../../src/errors.js';
import type { HostInventory } from '../../src/host/inventory.js';
import type { IncomingEntry } from '../../src/migration/journal.js';
import { TargetSide } from '../../src/migration/target.js';
import type { WireVm } from '../../src/peer/protocol.js';
import type { TrustedPeer } from '../../src/peer/trust.js';
import { RawShipping } from '../../src/storage/raw/shipping-raw.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('preflight');
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const peer: TrustedPeer = { name: 'src', fingerprint: 'F', cert: '', address: '127.0.0.1:1', notAfter: '2100-01-01T00:00:00Z' };

/** A host with this much to give; `asked` records where its disk space was looked up. */
function host(has: { memory: number; disk: number; vmx: boolean }): HostInventory & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    availableMemory: () => Promise.resolve(has.memory),
    availableDisk: (path) => (asked.push(path), Promise.resolve(has.disk)),
    cpuVirtualization: () => Promise.resolve(has.vmx),
    interfaceCounters: () => Promise.reject(new Error('no interfaces in this test')),
    interfaceOf: () => Promise.resolve(undefined),
  };
}

function target(inventory: HostInventory, saved: IncomingEntry[]): TargetSide {
  return new TargetSide({
    stateDir: tempDir(),
    maxIncoming: 1,
    shipping: new RawShipping(),
    inventory,
    onStarted: () => undefined,
    onArrived: () => Promise.resolve(),
    hasArrived: () => false,
    journal: { save: (entry) => (saved.push(entry), Promise.resolve()), drop: () => Promise.resolve() },
  });
}

const vm = (over: Partial<WireVm> = {}): WireVm => ({ name: 'g1', memoryMiB: 1024, vcpus: 1, disks: [{ id: 'root', nodeName: 'root', format: 'raw', virtualSize: 2 * GiB }, { id: 'data', nodeName: 'data', format: 'qcow2', virtualSize: GiB }], ...over });
const prepare = (side: TargetSide, migration: string, wire: WireVm) => side.handle(peer, { id: 1, method: 'prepare', migration, vm: wire });

describe("the target's preflight on prepare", () => {
  it.each([
    [
      'memory',
      { memory: 1000 * MiB, disk: 100 * GiB, vmx: true },
      vm(),
      () => `target cannot take g1: short of memory: 1000.0 MiB (${1000 * MiB} bytes) available, the guest needs 1024 MiB + 64 MiB for QEMU (${1088 * MiB} bytes)`,
    ],
    [
      'disk',
      { memory: 8 * GiB, disk: 3 * GiB - 1, vmx: true },
      vm(),
      () => `target cannot take g1: short of disk at ${join(tempDir(), 'vms', 'short-disk')}: 3.0 GiB (${3 * GiB - 1} bytes) free, its bases need up to 3.0 GiB (${3 * GiB} bytes: root ${2 * GiB}, data ${GiB})`,
    ],
    [
      'hardware virtualisation',
      { memory: 8 * GiB, disk: 100 * GiB, vmx: false },
      vm({ accel: 'kvm' }),
      () => 'target cannot take g1: short of hardware virtualisation: the guest runs under KVM on the source, and this CPU advertises neither vmx nor svm',
    ],
  ])('refuses a guest when %s is short, naming the numbers, before journaling or creating anything', async (what, has, wire, message) => {
    const saved: IncomingEntry[] = [];
    const side = target(host(has), saved);
    const id = `short-${what.split(' ')[0] ?? ''}`;
    const refused = prepare(side, id, wire);
    await expect(refused).rejects.toThrow(PeerError);
    await expect(refused).rejects.toThrow(message());
    expect(saved).toEqual([]);
    await expect(access(join(tempDir(), 'vms', id))).rejects.toThrow(/ENOENT/);
    // The refused migration gave its slot back (maxIncoming is 1).
    await expect(target(host({ memory: 8 * GiB, disk: 100 * GiB, vmx: true }), saved).handle(peer, { id: 2, method: 'prepare', migration: `${id}-ok`, vm: vm() })).resolves.toEqual({ zfs: false });
    await expect(prepare(side, `${id}-again`, vm({ memoryMiB: 16, disks: [{ id: 'd', nodeName: 'd', format: 'raw', virtualSize: 1 }] }))).resolves.toEqual({ zfs: false });
  });

  it('names every shortage at once, and asks for disk space where the bases will land', async () => {
    const inventory = host({ memory: 0, disk: 0, vmx: false });
    await expect(prepare(target(inventory, []), 'all-short', vm({ accel: 'kvm' }))).rejects.toThrow(/short of memory: .*; disk at .*; hardware virtualisation: /);
    expect(inventory.asked).toEqual([join(tempDir(), 'vms', 'all-short')]);
  });

  it('asks nothing of the CPU for a guest that runs under TCG', async () => {
    await expect(prepare(target(host({ memory: 8 * GiB, disk: 100 * GiB, vmx: false }), []), 'tcg-guest', vm({ accel: 'tcg' }))).resolves.toEqual({ zfs: false });
  });
});
