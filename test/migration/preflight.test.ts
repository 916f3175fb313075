import { access, mkdir, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PeerError } from '../../src/errors.js';
import type { HostInventory } from '../../src/host/inventory.js';
import type { IncomingEntry } from '../../src/migration/journal.js';
import { preflightTimeoutMs, type TargetFacts } from '../../src/migration/preflight.js';
import type { TargetSide } from '../../src/migration/target.js';
import type { WireVm } from '../../src/peer/protocol.js';
import { facts, HEADROOM, host, peer, targetSide } from '../support/target-side.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('preflight');
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const ISO = Buffer.alloc(8192, 7);
const ISO_SHA256 = createHash('sha256').update(ISO).digest('hex');

/** The files a guest starts from, as this host holds them. */
const file = (name: string) => join(tempDir(), 'files', name);
beforeAll(async () => {
  await mkdir(join(tempDir(), 'files'));
  await writeFile(file('vmlinuz'), 'kernel');
  await writeFile(file('OVMF_CODE.fd'), Buffer.alloc(4096));
  await writeFile(file('install.iso'), ISO);
});

const roomy = () => host({ memory: 8 * GiB, disk: 100 * GiB, bridges: ['br0'] });

function target(inventory: HostInventory, saved: IncomingEntry[], known: TargetFacts = facts(), maxIncoming = 1): TargetSide {
  return targetSide(tempDir(), inventory, saved, known, maxIncoming);
}

const vm = (over: Partial<WireVm> = {}): WireVm => ({ name: 'g1', memoryMiB: 1024, vcpus: 1, disks: [{ id: 'root', nodeName: 'root', format: 'raw', virtualSize: 2 * GiB }, { id: 'data', nodeName: 'data', format: 'qcow2', virtualSize: GiB }], ...over });
const prepare = (side: TargetSide, migration: string, wire: WireVm) => side.handle(peer, { id: 1, method: 'prepare', migration, vm: wire });

/** A guest with the whole device model, every part of it present on this host. */
const realGuest = (): WireVm =>
  vm({
    machine: 'pc-q35-7.2',
    cpu: { model: 'Skylake-Server-v4', sockets: 1, cores: 2, threads: 1 },
    vcpus: 2,
    kernel: file('vmlinuz'),
    firmware: { code: file('OVMF_CODE.fd'), codeSize: 4096, varsBase64: Buffer.alloc(16).toString('base64') },
    cdroms: [{ id: 'cd0', file: file('install.iso'), bus: 'ide', size: ISO.length, sha256: ISO_SHA256 }],
    nics: [{ id: 'net0', mac: '52:54:00:12:34:56', bridge: 'br0' }],
    accel: 'tcg',
  });

describe("the target's preflight on prepare", () => {
  it.each([
    [
      'memory',
      { memory: 1000 * MiB, disk: 100 * GiB },
      () => `target cannot take g1: short of memory: 1000.0 MiB (${1000 * MiB} bytes) available, the guest needs 1024 MiB + 64 MiB for QEMU (${1088 * MiB} bytes)`,
    ],
    [
      'disk',
      { memory: 8 * GiB, disk: 3 * GiB - 1 },
      () => `target cannot take g1: short of disk at ${join(tempDir(), 'vms', 'short-disk')}: 3.0 GiB (${3 * GiB - 1} bytes) free, its bases need up to 3.0 GiB (${3 * GiB} bytes: root ${2 * GiB}, data ${GiB})`,
    ],
  ])('refuses a guest when %s is short, naming the numbers, before journaling or creating anything', async (what, has, message) => {
    const saved: IncomingEntry[] = [];
    const side = target(host(has), saved);
    const id = `short-${what}`;
    const refused = prepare(side, id, vm());
    await expect(refused).rejects.toThrow(PeerError);
    await expect(refused).rejects.toThrow(message());
    expect(saved).toEqual([]);
    await expect(access(join(tempDir(), 'vms', id))).rejects.toThrow(/ENOENT/);
    // The refused migration gave its slot back (maxIncoming is 1).
    await expect(target(roomy(), saved).handle(peer, { id: 2, method: 'prepare', migration: `${id}-ok`, vm: vm() })).resolves.toEqual({ zfs: false });
    await expect(prepare(side, `${id}-again`, vm({ memoryMiB: 16, disks: [{ id: 'd', nodeName: 'd', format: 'raw', virtualSize: 1 }] }))).resolves.toEqual({ zfs: false });
  });

  it.each<[string, () => Partial<WireVm>, Parameters<typeof facts>[0], () => string]>([
    ['its name is taken', () => ({}), { vms: ['g1'] }, () => 'name: a VM named g1 is already on this host'],
    ['it runs under KVM and would run under TCG here', () => ({ accel: 'kvm' }), { accel: 'tcg' }, () => "accelerator: the guest runs under KVM on the source and would run under TCG here (QEMU cannot load one's CPU state into the other)"],
    ['it runs under TCG and would run under KVM here', () => ({ accel: 'tcg' }), { accel: 'kvm' }, () => "accelerator: the guest runs under TCG on the source and would run under KVM here (QEMU cannot load one's CPU state into the other)"],
    ['the machine type is unknown here', () => ({ machine: 'pc-q35-10.0' }), {}, () => "machine type pc-q35-10.0: this host's QEMU does not know it (`-machine help`)"],
    ['the CPU model is unknown here', () => ({ cpu: { model: 'EPYC-Genoa' } }), {}, () => "CPU model EPYC-Genoa: this host's QEMU does not know it (`-cpu help`)"],
    ['the QEMU cannot say', () => ({ machine: 'pc-q35-7.2' }), { qemuFails: true }, () => "QEMU: cannot tell what this host's QEMU knows (`qemu-system-x86_64 -machine help` could not run (ENOENT))"],
    ['a bridge is missing', () => ({ nics: [{ id: 'net0', mac: '52:54:00:00:00:01', bridge: 'br7' }, { id: 'net1', mac: '52:54:00:00:00:02', bridge: 'br7' }] }), {}, () => 'bridge br7 (NIC net0, net1): no such bridge on this host'],
    ['the kernel is missing', () => ({ kernel: file('bzImage') }), {}, () => `kernel ${file('bzImage')}: missing on this host`],
    ['the firmware code is missing', () => ({ firmware: { code: file('OVMF_CODE_4M.fd'), codeSize: 4096, varsBase64: '' } }), {}, () => `firmware code ${file('OVMF_CODE_4M.fd')}: missing on this host`],
    [
      'the firmware code has another size',
      () => ({ firmware: { code: file('OVMF_CODE.fd'), codeSize: 8192, varsBase64: '' } }),
      {},
      () => `firmware code ${file('OVMF_CODE.fd')}: 4096 bytes here, 8192 on the source (QEMU migrates the flash as RAM of that size)`,
    ],
    ['the cdrom is missing', () => ({ cdroms: [{ id: 'cd0', file: file('other.iso'), bus: 'ide', size: 1, sha256: ISO_SHA256 }] }), {}, () => `cdrom cd0 ${file('other.iso')}: missing on this host`],
    [
      'the cdrom differs',
      () => ({ cdroms: [{ id: 'cd0', file: file('install.iso'), bus: 'virtio-scsi', size: ISO.length, sha256: 'a'.repeat(64) }] }),
      {},
      () => `cdrom cd0 ${file('install.iso')}: differs from the source's (sha256 ${ISO_SHA256.slice(0, 12)}… here, aaaaaaaaaaaa… there; a cdrom is not shipped: the guest must find the same image here)`,
    ],
  ])('refuses a guest when %s, naming the value, before journaling anything', async (what, over, has, message) => {
    const saved: IncomingEntry[] = [];
    const refused = prepare(target(roomy(), saved, facts(has)), `refused-${what.replaceAll(' ', '-')}`, vm(over()));
    await expect(refused).rejects.toThrow(PeerError);
    await expect(refused).rejects.toThrow(`target cannot take g1: ${message()}`);
    expect(saved).toEqual([]);
  });

  it('names every problem at once, and asks for disk space where the bases will land', async () => {
    const inventory = host({ memory: 0, disk: 0 });
    const refused = prepare(target(inventory, [], facts({ vms: ['g1'], accel: 'kvm' })), 'all-short', { ...realGuest(), machine: 'pc-q35-9.0' });
    await expect(refused).rejects.toThrow(/^target cannot take g1: short of memory: .*; disk at .*; name: .*; machine type pc-q35-9\.0: .*; accelerator: .*; bridge br0 .*$/);
    expect(inventory.asked).toEqual([join(tempDir(), 'vms', 'all-short')]);
  });

  it('takes a guest whose whole device model this host can rebuild', async () => {
    const known = facts();
    await expect(prepare(target(roomy(), [], known), 'real-guest', realGuest())).resolves.toEqual({ zfs: false });
    expect(known.asked.sort()).toEqual(['accel', 'qemu']);
  });

  it('asks QEMU and the accelerator nothing for a guest that names neither machine, CPU nor accelerator', async () => {
    const known = facts();
    await expect(prepare(target(roomy(), [], known), 'plain-guest', vm())).resolves.toEqual({ zfs: false });
    expect(known.asked).toEqual([]);
  });

  it('counts a VM still arriving by another migration as taken', async () => {
    const side = target(roomy(), [], facts(), 2);
    await expect(prepare(side, 'first', vm())).resolves.toEqual({ zfs: false });
    await expect(prepare(side, 'second', vm())).rejects.toThrow('target cannot take g1: name: a VM named g1 is already on this host');
  });
});

describe("the target's answer to `headroom`", () => {
  it("is the engine's headroom, as plain JSON", async () => {
    expect(await target(roomy(), []).handle(peer, { id: 1, method: 'headroom' })).toEqual(HEADROOM);
  });
});

describe('preflightTimeoutMs', () => {
  it('gives the host checks 10 s, and each cdrom time to be hashed, under the source’s 120 s wait', () => {
    const cdrom = (size: number) => ({ id: 'cd0', file: '/iso', bus: 'ide' as const, size, sha256: ISO_SHA256 });
    expect(preflightTimeoutMs(vm())).toBe(10_000);
    expect(preflightTimeoutMs(vm({ cdroms: [cdrom(GiB)] }))).toBe(10_000 + 11_000);
    expect(preflightTimeoutMs(vm({ cdroms: [cdrom(50 * GiB)] }))).toBe(100_000);
  });
});
