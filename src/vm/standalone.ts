/**
 * cowbuf's own VM provider, for the standalone daemon: the VMs it started (`POST /1.0/vms`),
 * adopted (`POST /1.0/vms/adopt`) or received by migration. It remembers them with their pids so
 * a restarted daemon reattaches to the ones that outlived it, and it deletes the home it made
 * for a VM (sockets, serial log, the disks of one that arrived) when the VM leaves.
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OrderedWrites, readState } from '../state-file.js';
import { attachVm, launchVm, type LaunchOptions } from './launcher.js';
import { plugNics, unplugNics, withNics } from './network.js';
import type { IncomingLaunch, ManagedVm, VmProvider } from './provider.js';
import type { Accel, VmSpec } from './spec.js';

interface OwnedVm {
  readonly spec: VmSpec;
  readonly pid: number;
  readonly accel: Accel;
}

export interface StandaloneOptions {
  readonly stateDir: string;
  readonly launch?: LaunchOptions;
  readonly log: (message: string) => void;
}

export class StandaloneProvider implements VmProvider {
  private readonly owned = new Map<string, ManagedVm>();
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

  /** Remembers a VM the engine adopted (a QEMU cowbuf did not start), so a restart reattaches. */
  keep(vm: ManagedVm): Promise<void> {
    this.owned.set(vm.spec.name, vm);
    return this.save();
  }

  async vms(): Promise<{ running: ManagedVm[]; gone: VmSpec[] }> {
    const running: ManagedVm[] = [];
    const gone: VmSpec[] = [];
    for (const entry of await readState<OwnedVm[]>(this.file, [])) {
      try {
        const vm = withNics(await attachVm(entry.spec, entry.pid, entry.accel));
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

  attached(vm: ManagedVm): Promise<void> {
    return this.keep(vm);
  }

  /** Its home under the state dir was the daemon's own making and goes with it; disks an admin pointed a VM at stay. */
  async departed(vm: ManagedVm): Promise<void> {
    await vm.stop();
    this.owned.delete(vm.spec.name);
    await this.save();
    const home = dirname(vm.spec.qmpSocket);
    if (dirname(home) === join(this.options.stateDir, 'vms')) await rm(home, { recursive: true, force: true });
  }

  private async save(): Promise<void> {
    const alive = [...this.owned.values()].filter((vm) => vm.pid !== undefined && vm.running());
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    await this.writes.write(
      this.file,
      alive.map((vm): OwnedVm => ({ spec: vm.spec, pid: vm.pid as number, accel: vm.accel })),
    );
  }
}
