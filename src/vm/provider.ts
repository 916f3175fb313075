/**
 * The VM-provider port. The engine never starts or quits a QEMU itself: whoever owns the host's
 * VMs does — cowbuf's standalone daemon (standalone.ts), or an LXD-style daemon that embeds the
 * engine and keeps its VMs in its own store. The engine only needs a monitor to drive each VM
 * through, and to be told, or to tell, when a VM comes, goes or is lost.
 */
import type { QmpClient } from '../qmp/client.js';
import type { QmpCommands } from '../qmp/commands.js';
import type { Accel, VmSpec } from './spec.js';

/** A running QEMU as the engine drives it: its definition and a QMP monitor of the engine's own. */
export interface ManagedVm {
  readonly spec: VmSpec;
  readonly accel: Accel;
  /** The monitor the engine drives; a QMP connection of its own (QEMU serves one client per monitor). */
  readonly qmp: QmpClient;
  readonly commands: QmpCommands;
  /** Its QEMU process, when known: a restart or a lost monitor reattaches by it. */
  readonly pid: number | undefined;
  running(): boolean;
  /** Quits this QEMU the way its owner does; idempotent. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface IncomingLaunch {
  readonly migration: string;
  readonly signal: AbortSignal;
}

/**
 * What removing a VM did: `stopped` its QEMU (one its provider started, or received by
 * migration), or `released` it (a QEMU someone else started: its monitor given back, it runs on).
 */
export type Removal = 'stopped' | 'released';

export interface VmProvider {
  /**
   * Every VM this provider runs on the host now, with a monitor for the engine, and the
   * definitions of those it lost since the engine last ran. A starting engine asks before its
   * recovery, so migrations cut short by a restart are settled against the real VMs.
   */
  vms(): Promise<{ readonly running: readonly ManagedVm[]; readonly gone: readonly VmSpec[] }>;
  /** Starts a VM of the provider's own on request (the standalone daemon's `POST /1.0/vms`). */
  launch?(spec: VmSpec): Promise<ManagedVm>;
  /**
   * The engine took a monitor of a VM: one it adopted, or a fresh one after losing the old
   * connection. This handle is the one to keep.
   */
  attached?(vm: ManagedVm): Promise<void>;
  /**
   * Target side: starts the copy of an incoming guest, paused and waiting for `migrate-incoming`
   * (`spec.incoming`), with its disks where the engine received them.
   */
  launchIncoming(spec: VmSpec, launch: IncomingLaunch): Promise<ManagedVm>;
  /** Target side: the guest runs here now; the provider takes it into its store. */
  arrived(vm: ManagedVm, migration: string): Promise<void>;
  /**
   * Source side: the guest runs on the target now. The provider quits this copy (every page has
   * crossed) and removes it from its store.
   */
  departed(vm: ManagedVm, migration: string): Promise<void>;
  /**
   * An admin takes the VM off this host's books (the standalone daemon's `DELETE /1.0/vms/{name}`;
   * the engine calls it only when no migration or evacuation holds the VM). The provider quits a
   * QEMU it started and releases one it adopted, forgets it so a restart does not bring it back,
   * and deletes no disk. An embedder that removes its VMs itself leaves this out.
   */
  remove?(vm: ManagedVm): Promise<Removal>;
}
