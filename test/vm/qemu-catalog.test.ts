import { describe, expect, it } from 'vitest';
import { CommandError } from '../../src/errors.js';
import { parseCpuHelp, parseMachineHelp, qemuCatalog } from '../../src/vm/qemu-catalog.js';

// Trimmed from `qemu-system-x86_64 -machine help` and `-cpu help` of QEMU 7.2.
const MACHINES = `Supported machines are:
microvm              microvm (i386)
pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)
pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)
pc-i440fx-1.4        Standard PC (i440FX + PIIX, 1996) (deprecated)
q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)
pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)
isapc                ISA-only PC
none                 empty machine
`;
const CPUS = `Available CPUs:
x86 486                   (alias configured by machine type)
x86 Skylake-Server-v4     Intel Xeon Processor (Skylake, IBRS, no TSX)
x86 host                  processor with all supported host features
x86 max                   Enables all features supported by the accelerator in the current host

Recognized CPUID flags:
  3dnow 3dnowext 3dnowprefetch abm ace2 ace2-en acpi adx aes amd-no-ssb
`;

describe("QEMU's help listings", () => {
  it('lists every machine type and alias by name', () => {
    expect([...parseMachineHelp(MACHINES)]).toEqual(['microvm', 'pc', 'pc-i440fx-7.2', 'pc-i440fx-1.4', 'q35', 'pc-q35-7.2', 'isapc', 'none']);
  });

  it('lists the CPU models and not the CPUID flags that follow them, with or without the `x86` column', () => {
    expect([...parseCpuHelp(CPUS)]).toEqual(['486', 'Skylake-Server-v4', 'host', 'max']);
    expect([...parseCpuHelp(CPUS.replaceAll('\nx86 ', '\n  '))]).toEqual(['486', 'Skylake-Server-v4', 'host', 'max']);
  });

  it("reads this host's QEMU", async () => {
    const catalog = await qemuCatalog('qemu-system-x86_64');
    expect([...catalog.machines].some((machine) => /^pc-q35-\d+\.\d+$/.test(machine))).toBe(true);
    expect(catalog.cpuModels.has('qemu64')).toBe(true);
    expect(await qemuCatalog('qemu-system-x86_64')).toBe(catalog);
  });

  it('reports a binary that cannot answer, and asks it again next time', async () => {
    await expect(qemuCatalog('cowbuf-no-such-qemu')).rejects.toThrow(CommandError);
    await expect(qemuCatalog('cowbuf-no-such-qemu')).rejects.toThrow(/`cowbuf-no-such-qemu -machine help` could not run/);
  });
});
