/**
 * The engine: everything a host needs to send and receive migrations through its buffer, without
 * any HTTP. `cowbufd` wraps it in a REST API; an LXD-style daemon that owns its VMs can embed it
 * directly (`adoptVm`, `migrate`, typed events). It owns the partition (through the control
 * loop), the trackers, the peer listener and the target role, and admits migrations under the
 * configured limits, queueing the others visibly.
 */
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { resize } from '../buffer/partition.js';
import { throttlePolicy } from '../buffer/throttle/index.js';
import { CancelledError, LinkLostError, NotOfferedError, ValidationError } from '../errors.js';
import { systemInventory } from '../host/inventory-systeminformation.js';
import type { HostInventory } from '../host/inventory.js';
import { CowTracker } from '../monitor/cow-tracker.js';
import { LinkTracker } from '../monitor/link-tracker.js';
import { listenPeer, type PeerListener } from '../peer/channel.js';
import { Enrollment } from '../peer/enrollment.js';
import type { Identity } from '../peer/identity.js';
import type { TrustStore } from '../peer/trust.js';
import { openShipping } from '../storage/registry.js';
import type { DiskShipping } from '../storage/shipping.js';
import type { BufferVolume } from '../storage/volume.js';
import { QEMU_BINARY, type LaunchOptions } from '../vm/launcher.js';
import type { ManagedVm, VmProvider } from '../vm/provider.js';
import type { VmSpec } from '../vm/spec.js';
import { StandaloneProvider } from '../vm/standalone.js';
import { checkAdoptable } from '../vm/adoptable.js';
import { computeHeadroom, type Headroom } from '../evacuation/headroom.js';
import type { EvacuationRecord } from '../evacuation/progress.js';
import { Admission } from './admission.js';
import { ControlLoop } from './control-loop.js';
import type { ConvergenceConfig } from './convergence.js';
import { Evacuations } from './evacuations.js';
import type { Side } from './handoff.js';
import { Ledger, type MigrationLog, type MigrationRecord } from './ledger.js';
import { linkLosses } from './link-watch.js';
import { runOutgoing, type RunParts } from './outgoing.js';
import { FINAL as TERMINAL, HANDOFF } from './record.js';
import { Persistence } from './persistence.js';
import { localFacts } from './preflight.js';
import { removeVm, type VmRemoval } from './removal.js';
import { restart, restartHostOf } from './restart.js';
import { sourceGivesUpSeconds } from './source-silence.js';
import { TargetSide } from './target.js';
import type { TickTrace } from './tick-trace.js';

export interface EngineConfig {
  readonly stateDir: string;
  /** Where the per-migration unix sockets live. */
  readonly runDir: string;
  readonly bufferSize: number;
  readonly policy: string;
  readonly controlPeriodMs: number;
  readonly hysteresis: number;
  /** Apply the throttle (false only to demonstrate what happens without it). */
  readonly throttle: boolean;
  readonly assumedLinkRate: number;
  readonly maxOutgoing: number;
  readonly maxIncoming: number;
  /** A migration is admitted only when the buffer has at least this much room left. */
  readonly minBinBytes: number;
  readonly mirrorReadySeconds: number;
  /** See MigrationConfig.linkLostSeconds. */
  readonly linkLostSeconds: number;
  readonly convergence: ConvergenceConfig;
  readonly peerListen: { readonly host: string; readonly port: number };
  /** Parent dataset for VMs whose disks arrive by `zfs send`; absent, disks arrive as files. */
  readonly incomingDataset?: string;
}

export type { MigrationRecord } from './ledger.js';

export interface EngineEvents {
  migration: [MigrationRecord];
  /** An evacuation batch changed: a VM started or ended, or a migration of it progressed. */
  evacuation: [EvacuationRecord];
  tick: [TickTrace];
  log: [MigrationLog];
  /** A paused VM started here for an incoming migration. */
  incoming: [ManagedVm, string];
  arrived: [ManagedVm];
}

export interface EngineDeps {
  readonly config: EngineConfig;
  readonly identity: Identity;
  readonly trust: TrustStore;
  readonly volume: BufferVolume;
  /** Who starts and quits this host's VMs; cowbuf's own (standalone) when absent. */
  readonly provider?: VmProvider;
  /** How bases leave and land; by default chosen from the volume's driver and `incomingDataset` (storage/registry.ts). */
  readonly shipping?: DiskShipping;
  /** How the standalone provider starts QEMU (ignored with a provider of one's own). */
  readonly launch?: LaunchOptions;
  /** What this host has (memory, disk, CPU, interfaces); the real host's when absent. */
  readonly inventory?: HostInventory;
}


export class Engine extends EventEmitter<EngineEvents> {
  readonly vms = new Map<string, ManagedVm>();
  readonly provider: VmProvider;
  readonly loop: ControlLoop;
  readonly links: LinkTracker;
  readonly cow = new CowTracker();
  private readonly ledger: Ledger;
  /** Background work that outlives its migration (telling a target it was rolled back) stops with the engine. */
  private readonly closing = new AbortController();
  /** What an outgoing migration's run, its background work and a restart use of the engine. */
  private readonly parts: RunParts;
  private readonly admission: Admission;
  private readonly target: TargetSide;
  private listener: PeerListener | undefined;
  /** One-time trust tokens: issue, join, answer joins. */
  readonly enrollment: Enrollment;
  private readonly state: Persistence;
  private readonly shipping: DiskShipping;
  /** Batches moving every VM off this host (`evacuate`). */
  readonly evacuations: Evacuations;

  constructor(private readonly deps: EngineDeps) {
    super();
    const { config } = deps;
    const inventory = deps.inventory ?? systemInventory;
    this.provider = deps.provider ?? new StandaloneProvider({ stateDir: config.stateDir, ...(deps.launch ? { launch: deps.launch } : {}), log: (message) => this.emit('log', { level: 'info', message }) });
    this.shipping = deps.shipping ?? openShipping({ driver: deps.volume.driver, incomingDataset: config.incomingDataset });
    this.links = new LinkTracker({ interfaces: inventory });
    this.state = new Persistence(join(config.stateDir, 'journal'));
    this.ledger = new Ledger({ state: this.state, changed: (record) => this.emit('migration', record), log: (entry) => this.emit('log', entry) });
    this.enrollment = new Enrollment({
      stateDir: config.stateDir,
      identity: deps.identity,
      trust: deps.trust,
      listenHost: config.peerListen.host,
      port: () => this.listener?.port ?? config.peerListen.port,
      log: (message) => this.emit('log', { level: 'info', message }),
    });
    throttlePolicy(config.policy, 'migration.policy');
    this.loop = new ControlLoop(config.bufferSize, {
      periodMs: config.controlPeriodMs,
      policy: throttlePolicy(config.policy),
      hysteresis: config.hysteresis,
      actuate: config.throttle,
      assumedLinkRate: config.assumedLinkRate,
      mirrorReadySeconds: config.mirrorReadySeconds,
      cow: this.cow,
      links: this.links,
      onMustFail: (id, bytes) => this.ledger.fail(id, `the buffer cannot hold its overlay (${bytes} bytes over)`),
      onTick: (trace) => this.onTick(trace),
      onError: (error) => this.emit('log', { level: 'error', message: `control loop: ${(error as Error).message}` }),
    });
    this.admission = new Admission({
      maxOutgoing: config.maxOutgoing,
      minBinBytes: config.minBinBytes,
      running: () => this.ledger.running,
      partition: () => this.loop.partition,
      verifyRoom: () => deps.volume.verifyRoom(),
      start: (id) => {
        this.loop.admit(id);
        void runOutgoing(this.parts, this.get(id));
      },
      paused: (reason) => this.emit('log', { level: 'warn', message: `admission paused: ${reason}` }),
    });
    this.target = new TargetSide({
      stateDir: config.stateDir,
      maxIncoming: config.maxIncoming,
      shipping: this.shipping,
      provider: this.provider,
      log: (message, migration) => this.emit('log', { level: 'warn', ...(migration ? { migration } : {}), message }),
      sourceGivesUpSeconds: sourceGivesUpSeconds(config.linkLostSeconds),
      inventory,
      facts: localFacts({ binary: QEMU_BINARY, ...(deps.launch?.accel ? { accel: deps.launch.accel } : {}), inventory, hasVm: (name) => this.vms.has(name) }),
      onStarted: (vm, migration) => this.emit('incoming', vm, migration),
      onArrived: async (vm, migration) => {
        this.vms.set(vm.spec.name, vm);
        await this.state.arrived(migration, vm.spec.name);
        await this.provider.arrived(vm, migration);
        this.emit('arrived', vm);
      },
      hasArrived: (migration) => this.state.hasArrived(migration),
      journal: { save: (entry) => this.state.journal.saveIncoming(entry), drop: (id) => this.state.journal.dropIncoming(id) },
      headroom: (signal) => this.headroom(signal),
    });
    this.evacuations = new Evacuations({ engine: this, identity: deps.identity, trust: deps.trust, inventory, config });
    this.parts = {
      ledger: this.ledger,
      identity: deps.identity,
      shipping: this.shipping,
      bufferPath: deps.volume.mountpoint,
      provider: this.provider,
      peer: (name) => deps.trust.get(name),
      forget: (vm) => {
        if (vm && this.vms.get(vm.spec.name) === vm) this.vms.delete(vm.spec.name);
      },
      log: (entry) => this.emit('log', entry),
      closing: this.closing.signal,
      vms: this.vms,
      runDir: config.runDir,
      loop: this.loop,
      links: this.links,
      convergence: config.convergence,
      mirrorReadySeconds: config.mirrorReadySeconds,
      state: this.state,
      target: this.target,
      requeue: (id) => this.admission.push(id),
      admitNext: () => void this.admission.admit(),
    };
  }

  get peerPort(): number | undefined {
    return this.listener?.port;
  }

  async start(): Promise<void> {
    await mkdir(this.deps.config.runDir, { recursive: true, mode: 0o700 });
    await this.recover();
    await this.enrollment.open();
    this.listener = await listenPeer(this.deps.identity, this.deps.trust, this.deps.config.peerListen.host, this.deps.config.peerListen.port, {
      control: (peer, request) => this.target.handle(peer, request),
      base: (peer, hello, socket) => this.target.base(peer, hello, socket),
      dataset: (peer, hello, socket) => this.target.dataset(peer, hello, socket),
      stream: (peer, hello, socket) => this.target.stream(peer, hello, socket),
      rejected: (reason) => this.emit('log', { level: 'warn', message: `peer connection refused: ${reason}` }),
      join: (cert, hello, remoteAddress) => this.enrollment.answer(cert, hello, remoteAddress),
    });
    this.loop.start();
    await this.evacuations.resume();
  }

  /** Stops accepting work; cancels (rolls back) outgoing migrations and aborts incoming ones. */
  async close(): Promise<void> {
    this.closing.abort(new CancelledError('daemon shutting down'));
    this.evacuations.stop();
    for (const id of this.admission.drain()) this.ledger.settle(id, 'cancelled', 'daemon shutting down');
    const running = this.ledger.runningIds().map((id) => this.waitFor(id));
    this.ledger.abortAll(new CancelledError('daemon shutting down'));
    await Promise.allSettled(running);
    await this.evacuations.settled();
    await this.loop.stop();
    await this.target.abortAll();
    await this.listener?.close();
  }

  /**
   * Starts a VM through the provider (the standalone daemon's `POST /1.0/vms`).
   * @throws ValidationError when the name is taken; NotOfferedError when the provider starts no VMs on request
   */
  async launchVm(spec: VmSpec): Promise<ManagedVm> {
    if (this.vms.has(spec.name)) throw new ValidationError('vm.name', spec.name, 'a name not already in use');
    if (!this.provider.launch) throw new NotOfferedError(spec.name, 'started');
    const vm = await this.provider.launch(spec);
    this.vms.set(spec.name, vm);
    return vm;
  }

  /**
   * Takes a running VM cowbuf did not start (an embedder's, or one an admin hands over) after
   * checking what a migration relies on: every drive must stop the guest on a write error, or
   * a full buffer (EDQUOT) would reach the guest as an I/O error. `allowErrorPolicy` accepts
   * another policy with a warning.
   * @throws ValidationError naming the drive and its policy, or a disk QEMU does not have
   */
  async adoptVm(vm: ManagedVm, options: { readonly allowErrorPolicy?: boolean; readonly signal?: AbortSignal } = {}): Promise<void> {
    if (this.vms.has(vm.spec.name)) throw new ValidationError('vm.name', vm.spec.name, 'a name not already in use');
    for (const problem of await checkAdoptable(vm, options.signal)) {
      if (!options.allowErrorPolicy || problem.kind !== 'error-policy') throw new ValidationError(problem.field, problem.value, problem.expected);
      this.emit('log', { level: 'warn', message: `${vm.spec.name}: adopted with ${problem.field}=${String(problem.value)} (override): a full buffer will reach the guest as an I/O error` });
    }
    this.vms.set(vm.spec.name, vm);
    await this.provider.attached?.(vm);
  }

  /**
   * Quits a VM the provider started, or releases one it adopted, and forgets it (removal.ts).
   * @throws UnknownVmError, NotOfferedError, VmBusyError while a migration or an evacuation holds it
   */
  removeVm(name: string): Promise<VmRemoval> {
    return removeVm({ vms: this.vms, provider: this.provider, bufferPath: this.deps.volume.mountpoint, migrations: () => this.list(), evacuation: (vm) => this.evacuations.holding(vm), receiving: (vm) => this.target.receiving(vm) }, name);
  }

  /**
   * Resizes the buffer volume and re-partitions the running migrations. Refusals (below the bytes
   * in use, more than the storage can give) change nothing.
   * @throws ShrinkBelowUsedError, InsufficientSpaceError
   */
  async resizeBuffer(size: number): Promise<void> {
    resize(this.loop.partition, size);
    await this.deps.volume.resize(size);
    this.loop.resize(size);
  }

  /**
   * What this host can still take on, as data for an embedding cluster manager (and for peers
   * planning an evacuation): buffer, slots, memory and disk for incoming guests, link rates.
   */
  async headroom(signal?: AbortSignal): Promise<Headroom> {
    const { config } = this.deps;
    const inventory = this.deps.inventory ?? systemInventory;
    const [availableMemory, availableDisk] = await Promise.all([inventory.availableMemory(signal), inventory.availableDisk(config.stateDir, signal)]);
    return computeHeadroom({
      host: this.deps.identity.fingerprint,
      partition: this.loop.partition,
      minBinBytes: config.minBinBytes,
      outgoing: { used: this.ledger.running, limit: config.maxOutgoing },
      maxIncoming: config.maxIncoming,
      incoming: this.target.arriving(),
      availableMemory,
      availableDisk,
      links: this.deps.trust.list().map((peer) => [peer.name, this.links.estimate(peer.name)] as const),
    });
  }

  /** Moves every VM off this host to `targets` (default: every trusted peer); see evacuations.ts. */
  evacuate(options: { readonly targets?: readonly string[] } = {}): Promise<EvacuationRecord> {
    return this.evacuations.start(options);
  }

  list(): readonly MigrationRecord[] {
    return this.ledger.list();
  }

  /** @throws UnknownMigrationError */
  get(id: string): MigrationRecord {
    return this.ledger.get(id);
  }

  /** @throws ValidationError (unknown VM or peer, VM already migrating, unknown policy) */
  migrate(vmName: string, peerName: string, options: { readonly policy?: string } = {}): MigrationRecord {
    if (!this.vms.has(vmName)) throw new ValidationError('vm', vmName, `one of this host's VMs (${[...this.vms.keys()].join(', ') || 'none'})`);
    if (!this.deps.trust.get(peerName)) throw new ValidationError('target', peerName, `a trusted peer (${this.deps.trust.list().map((p) => p.name).join(', ') || 'none'})`);
    const policy = throttlePolicy(options.policy ?? this.deps.config.policy);
    if (this.list().some((record) => record.vm === vmName && !TERMINAL.has(record.phase))) throw new ValidationError('vm', vmName, 'a VM that is not already migrating');
    const record = this.ledger.create(vmName, peerName, policy.name);
    this.admission.push(record.id);
    this.ledger.changed(record);
    void this.admission.admit();
    return record;
  }

  /** Cancels a queued or running migration; it rolls back. @throws UnknownMigrationError */
  cancel(id: string): MigrationRecord {
    const record = this.get(id);
    if (HANDOFF.has(record.phase)) throw new ValidationError('migration', id, `a migration before its point of no return (it is ${record.phase}: its guest is the target's unless the target says otherwise; \`resolve\` it if the target is lost)`);
    if (this.admission.remove(id)) {
      this.ledger.settle(id, 'cancelled', 'cancelled while queued');
    } else {
      this.ledger.abort(id, new CancelledError('cancelled by request'));
    }
    return record;
  }

  /**
   * An admin names the side that resumes a migration in doubt (the target cannot be reached
   * since the source's QEMU completed). `source` still asks the target to abort first, and a
   * target that answers that the guest runs there wins. @throws UnknownMigrationError, ValidationError
   */
  resolve(id: string, side: Side): MigrationRecord {
    return this.ledger.resolve(id, side);
  }

  /** Resolves once the migration reached a final phase. */
  waitFor(id: string): Promise<MigrationRecord> {
    const record = this.get(id);
    if (TERMINAL.has(record.phase)) return Promise.resolve(record);
    return new Promise((resolve) => {
      const onChange = (changed: MigrationRecord) => {
        if (changed.id !== id || !TERMINAL.has(changed.phase)) return;
        this.off('migration', onChange);
        resolve(changed);
      };
      this.on('migration', onChange);
    });
  }

  /** A restart: resolve what the previous run left (restart.ts), then admit what is queued. */
  private async recover(): Promise<void> {
    await restart(restartHostOf(this.parts));
    void this.admission.admit();
  }

  private onTick(trace: TickTrace): void {
    this.ledger.observe(trace);
    for (const loss of linkLosses(trace, this.ledger.list(), this.deps.config.linkLostSeconds, (id) => this.ledger.isRunning(id))) {
      const error = new LinkLostError(loss.peer, loss.seconds);
      for (const id of loss.rollBack) this.ledger.abort(id, error, `${error.message}: rolling back`);
      // Broken, the streams fail QEMU's NBD and RAM clients at once instead of when TCP gives up.
      this.links.sever(loss.peer);
    }
    this.emit('tick', trace);
  }
}
