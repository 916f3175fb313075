/**
 * cowbuf's own VM provider, for the standalone daemon: the VMs it started (`POST /1.0/vms`),
 * adopted (`POST /1.0/vms/adopt`) or received by migration. It remembers them with their pids so
 * a restarted daemon reattaches to the ones that outlived it, and it deletes the home it made
 * for a VM (sockets, serial log, the disks of one that arrived) when the VM leaves by migration.
 * An admin's removal (`DELETE /1.0/vms/{name}`) quits the QEMUs cowbuf started and releases the
 * adopted ones, and deletes no file: the home of one that arrived holds its disks.
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OrderedWrites, readState } from '../state-file.js';
import { attachVm, launchVm, type LaunchOptions } from './launcher.js';
import { plugNics, unplugNics, withNics } from './network.js';
import type { IncomingLaunch, ManagedVm, Removal, VmProvider } from './provider.js';
import type { Accel, VmSpec } from './spec.js';

interface OwnedVm {
  readonly spec: VmSpec;
  readonly pid: number;
  readonly accel: Accel;
  /** A QEMU cowbuf did not start: its taps and its life are its admin's. */
  readonly adopted?: true;
}

export interface StandaloneOptions {
  readonly stateDir: string;
  readonly launch?: LaunchOptions;
  readonly log: (message: string) => void;
}

export class StandaloneProvider implements VmProvider {
  private readonly owned = new Map<string, ManagedVm>();
  /** The names in `owned` that were adopted, not started here or received by migration. */
  private readonly adopted = new Set<string>();
  private readonly writes = new OrderedWrites();
  private readonly file: string;

  constructor(private readonly options: StandaloneOptions) {
    this.file = join(options.stateDir, 'journal', 'vms.json');
  }

  /** Starts a VM of the daemon's own. */
  async launch(spec: VmSpec): Promise<ManagedVm> {
    const vm = await this.start(spec);
    await this.keep(vm);
    return vm;
  }

  /** Remembers a VM, so a restart reattaches. */
  private keep(vm: ManagedVm): Promise<void> {
    this.owned.set(vm.spec.name, vm);
    return this.save();
  }

  async vms(): Promise<{ running: ManagedVm[]; gone: VmSpec[] }> {
    const running: ManagedVm[] = [];
    const gone: VmSpec[] = [];
    for (const entry of await readState<OwnedVm[]>(this.file, [])) {
      try {
        const attached = await attachVm(entry.spec, entry.pid, entry.accel);
        const vm = entry.adopted ? attached : withNics(attached);
        if (entry.adopted) this.adopted.add(entry.spec.name);
        this.owned.set(entry.spec.name, vm);
        running.push(vm);
        this.options.log(`reattached to VM ${entry.spec.name} (pid ${entry.pid})`);
      } catch (error) {
        gone.push(entry.spec);
        this.options.log(`VM ${entry.spec.name} did not survive: ${(error as Error).message}`);
      }
    }
    await this.save();
    return { running, gone };
  }

  launchIncoming(spec: VmSpec, launch: IncomingLaunch): Promise<ManagedVm> {
    return this.start(spec, launch.signal);
  }

  /** Its taps first (QEMU opens them by name), removed again if QEMU does not start. */
  private async start(spec: VmSpec, signal?: AbortSignal): Promise<ManagedVm> {
    await plugNics(spec, signal);
    try {
      return withNics(await launchVm(spec, { ...this.options.launch, ...(signal ? { signal } : {}) }));
    } catch (error) {
      await unplugNics(spec);
      throw error;
    }
  }

  arrived(vm: ManagedVm): Promise<void> {
    return this.keep(vm);
  }

  /** The first monitor of a VM not yet kept is an adoption; a later one replaces a lost connection. */
  attached(vm: ManagedVm): Promise<void> {
    if (!this.owned.has(vm.spec.name)) this.adopted.add(vm.spec.name);
    return this.keep(vm);
  }

  /** Its home under the state dir was the daemon's own making and goes with it; disks an admin pointed a VM at stay. */
  async departed(vm: ManagedVm): Promise<void> {
    await vm.stop();
    await this.forget(vm.spec.name);
    const home = dirname(vm.spec.qmpSocket);
    if (dirname(home) === join(this.options.stateDir, 'vms')) await rm(home, { recursive: true, force: true });
  }

  /**
   * An adopted VM is forgotten before its monitor is given back, so a daemon dying in between
   * cannot take it again; one of cowbuf's own is quit first (a daemon dying before it is
   * forgotten finds it gone). Its taps go by name, not only through `stop`: a monitor re-taken
   * after a lost connection (restart.ts) comes without the tap-removing stop of `withNics`.
   */
  async remove(vm: ManagedVm): Promise<Removal> {
    const { name } = vm.spec;
    if (this.adopted.has(name)) {
      await this.forget(name);
      await vm.qmp.disconnect();
      return 'released';
    }
    try {
      await vm.stop();
      await unplugNics(vm.spec);
    } finally {
      // One that quit is forgotten even when a tap lingers (the error names it); one that would not stays kept.
      if (!vm.running()) await this.forget(name);
    }
    return 'stopped';
  }

  private forget(name: string): Promise<void> {
    this.owned.delete(name);
    this.adopted.delete(name);
    return this.save();
  }

  private async save(): Promise<void> {
    const alive = [...this.owned.values()].filter((vm) => vm.pid !== undefined && vm.running());
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    await this.writes.write(
      this.file,
      alive.map((vm): OwnedVm => ({ spec: vm.spec, pid: vm.pid as number, accel: vm.accel, ...(this.adopted.has(vm.spec.name) ? { adopted: true as const } : {}) })),
    );
  }
}
