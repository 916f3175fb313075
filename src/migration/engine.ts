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
import { randomUUID } from 'node:crypto';
import { resize } from '../buffer/partition.js';
import { throttlePolicy } from '../buffer/throttle/index.js';
import { BufferFullError, CancelledError, CowbufError, InDoubtError, LinkLostError, UnknownMigrationError, ValidationError } from '../errors.js';
import { systemInventory } from '../host/inventory-systeminformation.js';
import type { HostInventory } from '../host/inventory.js';
import { CowTracker } from '../monitor/cow-tracker.js';
import { LinkTracker } from '../monitor/link-tracker.js';
import { listenPeer, type PeerListener } from '../peer/channel.js';
import { Enrollment } from '../peer/enrollment.js';
import type { Identity } from '../peer/identity.js';
import type { TrustStore, TrustedPeer } from '../peer/trust.js';
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
import { ControlLoop, type TickTrace } from './control-loop.js';
import type { ConvergenceConfig } from './convergence.js';
import { Evacuations } from './evacuations.js';
import { completeHandoff, type Side } from './handoff.js';
import { abortUntilHeard } from './abandon.js';
import { linkLosses } from './link-watch.js';
import { FINAL as TERMINAL, HANDOFF, headOf, type MigrationHead, type Phase } from './record.js';
import { blackoutText, runSource, type Blackout, type Progress } from './source.js';
import { Persistence } from './persistence.js';
import { localFacts } from './preflight.js';
import { afterQmpLoss, restart, type RestartHost } from './restart.js';
import { sourceGivesUpSeconds } from './source-silence.js';
import { TargetSide } from './target.js';

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

export interface MigrationRecord extends MigrationHead {
  progress: Progress;
  /** The switchover as the hosts saw it, once the guest runs on the target. */
  blackout?: Blackout;
  /** From the last control tick: own bin, overlay bytes, shards, γ, link share. */
  buffer?: { bin: number; cow: number; shards: number; frozen: boolean; throttle: number; linkShare: number };
  readonly decisions: string[];
}

export interface EngineEvents {
  migration: [MigrationRecord];
  /** An evacuation batch changed: a VM started or ended, or a migration of it progressed. */
  evacuation: [EvacuationRecord];
  tick: [TickTrace];
  log: [{ level: 'info' | 'warn' | 'error'; migration?: string; message: string }];
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


const EMPTY_PROGRESS: Progress = { baseSent: 0, baseTotal: 0, mirrorRemaining: 0, mirrorCopied: 0, ramRemaining: 0, ramTotal: 0, ramTransferred: 0, ramStreams: 0, downtimeLimitMs: 0, cpuThrottlePercent: 0, postcopyRequests: 0 };

export class Engine extends EventEmitter<EngineEvents> {
  readonly vms = new Map<string, ManagedVm>();
  readonly provider: VmProvider;
  readonly loop: ControlLoop;
  readonly links: LinkTracker;
  readonly cow = new CowTracker();
  private readonly records = new Map<string, MigrationRecord>();
  private readonly aborts = new Map<string, AbortController>();
  /** Background work that outlives its migration (telling a target it was rolled back) stops with the engine. */
  private readonly closing = new AbortController();
  /** An admin's word for each migration past its point of no return (`resolve`). */
  private readonly resolvers = new Map<string, (side: Side) => void>();
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
      onMustFail: (id, bytes) => this.fail(id, `the buffer cannot hold its overlay (${bytes} bytes over)`),
      onTick: (trace) => this.onTick(trace),
      onError: (error) => this.emit('log', { level: 'error', message: `control loop: ${(error as Error).message}` }),
    });
    this.admission = new Admission({
      maxOutgoing: config.maxOutgoing,
      minBinBytes: config.minBinBytes,
      running: () => this.aborts.size,
      partition: () => this.loop.partition,
      verifyRoom: () => deps.volume.verifyRoom(),
      start: (id) => {
        this.loop.admit(id);
        void this.run(this.get(id));
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
    this.evacuations = new Evacuations({ engine: this, identity: deps.identity, trust: deps.trust, config });
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
    for (const id of this.admission.drain()) this.settle(id, 'cancelled', 'daemon shutting down');
    const running = [...this.aborts.keys()].map((id) => this.waitFor(id));
    for (const controller of this.aborts.values()) controller.abort(new CancelledError('daemon shutting down'));
    await Promise.allSettled(running);
    await this.evacuations.settled();
    await this.loop.stop();
    await this.target.abortAll();
    await this.listener?.close();
  }

  /**
   * Starts a VM through the provider (the standalone daemon's `POST /1.0/vms`).
   * @throws ValidationError when the name is taken or the provider starts no VMs on request
   */
  async launchVm(spec: VmSpec): Promise<ManagedVm> {
    if (this.vms.has(spec.name)) throw new ValidationError('vm.name', spec.name, 'a name not already in use');
    if (!this.provider.launch) throw new ValidationError('vm', spec.name, 'a VM started by its own provider (this engine\'s provider starts none on request)');
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
      outgoing: { used: this.aborts.size, limit: config.maxOutgoing },
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
    return [...this.records.values()];
  }

  get(id: string): MigrationRecord {
    const record = this.records.get(id);
    if (!record) throw new UnknownMigrationError(id);
    return record;
  }

  /** @throws ValidationError (unknown VM or peer, VM already migrating, unknown policy) */
  migrate(vmName: string, peerName: string, options: { readonly policy?: string } = {}): MigrationRecord {
    if (!this.vms.has(vmName)) throw new ValidationError('vm', vmName, `one of this host's VMs (${[...this.vms.keys()].join(', ') || 'none'})`);
    if (!this.deps.trust.get(peerName)) throw new ValidationError('target', peerName, `a trusted peer (${this.deps.trust.list().map((p) => p.name).join(', ') || 'none'})`);
    const policy = throttlePolicy(options.policy ?? this.deps.config.policy);
    if (this.list().some((record) => record.vm === vmName && !TERMINAL.has(record.phase))) throw new ValidationError('vm', vmName, 'a VM that is not already migrating');
    const now = new Date().toISOString();
    const record: MigrationRecord = {
      id: `${vmName}-${randomUUID().slice(0, 8)}`,
      vm: vmName,
      peer: peerName,
      policy: policy.name,
      phase: 'queued',
      createdAt: now,
      updatedAt: now,
      progress: { ...EMPTY_PROGRESS },
      decisions: [],
    };
    this.records.set(record.id, record);
    this.admission.push(record.id);
    this.changed(record);
    void this.admission.admit();
    return record;
  }

  /** Cancels a queued or running migration; it rolls back. @throws UnknownMigrationError */
  cancel(id: string): MigrationRecord {
    const record = this.get(id);
    if (HANDOFF.has(record.phase)) throw new ValidationError('migration', id, `a migration before its point of no return (it is ${record.phase}: its guest is the target's unless the target says otherwise; \`resolve\` it if the target is lost)`);
    if (this.admission.remove(id)) {
      this.settle(id, 'cancelled', 'cancelled while queued');
    } else {
      this.aborts.get(id)?.abort(new CancelledError('cancelled by request'));
    }
    return record;
  }

  /**
   * An admin names the side that resumes a migration in doubt (the target cannot be reached
   * since the source's QEMU completed). `source` still asks the target to abort first, and a
   * target that answers that the guest runs there wins. @throws UnknownMigrationError, ValidationError
   */
  resolve(id: string, side: Side): MigrationRecord {
    const record = this.get(id);
    const resolver = this.resolvers.get(id);
    if (!HANDOFF.has(record.phase) || !resolver) throw new ValidationError('migration', id, `a migration in doubt (it is ${record.phase})`);
    record.decisions.push(`an admin resolved it: resume on the ${side}`);
    this.emit('log', { level: 'warn', migration: id, message: `resolved by an admin: resume on the ${side}` });
    resolver(side);
    return record;
  }

  private decision(id: string): Promise<Side> {
    return new Promise((resolve) => this.resolvers.set(id, resolve));
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

  private async run(record: MigrationRecord): Promise<void> {
    const controller = new AbortController();
    this.aborts.set(record.id, controller);
    const vm = this.vms.get(record.vm);
    const peer = this.deps.trust.get(record.peer);
    try {
      // On disk before any side effect: a restart must know this migration was in flight.
      await this.journal(record);
      if (!vm || !peer) throw new CowbufError(`VM ${record.vm} or peer ${record.peer} went away`);
      await runSource({
        id: record.id,
        vm,
        peer,
        identity: this.deps.identity,
        bufferPath: this.deps.volume.mountpoint,
        runDir: this.deps.config.runDir,
        shipping: this.shipping,
        loop: this.loop,
        links: this.links,
        convergence: this.deps.config.convergence,
        mirrorReadySeconds: this.deps.config.mirrorReadySeconds,
        policy: throttlePolicy(record.policy),
        signal: controller.signal,
        onPhase: (phase) => {
          // Final phases are recorded by settle(), together with their error.
          if (TERMINAL.has(phase)) return;
          record.phase = phase;
          this.changed(record);
        },
        onProgress: (progress) => {
          record.progress = { ...record.progress, ...progress };
          this.changed(record);
        },
        onDecision: (message) => {
          record.decisions.push(message);
          this.emit('log', { level: 'info', migration: record.id, message });
          this.changed(record);
        },
        onBlackout: (blackout) => {
          record.blackout = blackout;
        },
        onLimits: (limits) => {
          if (limits.size > 0) record.ioLimits = Object.fromEntries(limits);
        },
        onAbortUnheard: () => this.tellAborted(record.id, peer),
        decided: this.decision(record.id),
        departed: (left) => this.provider.departed(left, record.id),
      });
      this.forget(vm);
      this.settle(record.id, 'completed', undefined, record.blackout && `blackout ${blackoutText(record.blackout)}`);
    } catch (error) {
      if (error instanceof InDoubtError) {
        // Stopped (a shutdown) before the target answered: the journal keeps it in doubt and
        // the next start asks again.
        record.phase = 'in-doubt';
        this.changed(record);
        return;
      }
      const lost = vm && vm.qmp.state === 'idle' && vm.running() ? await afterQmpLoss(this.restartHost(), headOf(record), vm) : undefined;
      if (lost) this.settle(record.id, lost.phase, lost.error && `${(error as Error).message}; ${lost.error}`);
      else this.settle(record.id, controller.signal.reason instanceof CancelledError ? 'cancelled' : 'failed', (error as Error).message);
    } finally {
      this.aborts.delete(record.id);
      this.resolvers.delete(record.id);
      this.loop.remove(record.id);
      void this.admission.admit();
    }
  }

  private fail(id: string, reason: string): void {
    const record = this.records.get(id);
    if (!record) return;
    record.decisions.push(reason);
    this.emit('log', { level: 'error', migration: id, message: reason });
    this.aborts.get(id)?.abort(new BufferFullError(reason));
  }

  private settle(id: string, phase: Phase, error?: string, detail?: string): void {
    const record = this.get(id);
    record.phase = phase;
    if (error) record.error = error;
    this.changed(record);
    const said = error ?? detail;
    this.emit('log', { level: phase === 'completed' ? 'info' : 'warn', migration: id, message: `migration ${phase}${said ? `: ${said}` : ''}` });
  }

  /**
   * A restart found this migration past its point of no return: ask the target again, in the
   * background (the daemon must come up meanwhile), until it answers or an admin resolves it.
   */
  private continueHandoff(id: string, vm: ManagedVm | undefined, spec: VmSpec): void {
    const record = this.get(id);
    const controller = new AbortController();
    this.aborts.set(id, controller);
    record.phase = 'in-doubt';
    this.changed(record);
    void completeHandoff(
      {
        migration: id,
        peer: this.deps.trust.get(record.peer),
        identity: this.deps.identity,
        shipping: this.shipping,
        signal: controller.signal,
        decided: this.decision(id),
        onDoubt: (reason) => this.emit('log', { level: 'warn', migration: id, message: `in doubt after the restart: ${reason}` }),
        onStall: (reason) => this.emit('log', { level: 'warn', migration: id, message: reason }),
        departed: (left) => this.provider.departed(left, id),
      },
      vm,
      this.deps.volume.mountpoint,
      spec.disks.map((disk) => disk.id),
    )
      .then(async (handoff) => {
        if (handoff.side === 'target') {
          this.forget(vm);
          this.settle(id, 'completed', undefined, 'finished on the target after the restart');
        } else {
          this.settle(id, 'failed', `${handoff.reason}: the guest was resumed here`);
        }
      })
      .catch((error: unknown) => {
        if (!(error instanceof InDoubtError)) this.settle(id, 'failed', `after the restart: ${(error as Error).message}`);
      })
      .finally(() => {
        this.aborts.delete(id);
        this.resolvers.delete(id);
      });
  }

  /** The target did not hear the rollback: it is told again, in the background, until it does. */
  private tellAborted(id: string, peer: TrustedPeer): void {
    const log = (level: 'info' | 'warn', message: string) => this.emit('log', { level, migration: id, message });
    log('warn', `${peer.name} did not answer the rollback's abort: asking again until it does`);
    abortUntilHeard(peer, this.deps.identity, id, this.closing.signal).then(
      (tries) => log('info', `${peer.name} heard the rollback's abort after ${tries} more ${tries === 1 ? 'ask' : 'asks'}`),
      (error: unknown) => {
        if (!this.closing.signal.aborted) log('warn', `${peer.name} refused the rollback's abort: ${(error as Error).message}`);
      },
    );
  }

  private changed(record: MigrationRecord): void {
    record.updatedAt = new Date().toISOString();
    this.journal(record).catch((error: Error) => this.emit('log', { level: 'error', migration: record.id, message: `journal: ${error.message}` }));
    this.emit('migration', record);
  }

  /** A VM that left for another host: the provider retired it, the engine lets go of it. */
  private forget(vm: ManagedVm | undefined): void {
    if (vm && this.vms.get(vm.spec.name) === vm) this.vms.delete(vm.spec.name);
  }

  private journal(record: MigrationRecord): Promise<void> {
    return this.state.outgoing(headOf(record));
  }

  /** A restart: resolve what the previous run left (restart.ts), then admit what is queued. */
  private async recover(): Promise<void> {
    await restart(this.restartHost());
    void this.admission.admit();
  }

  private restartHost(): RestartHost {
    const log = (message: string, migration?: string) => this.emit('log', { level: 'warn', ...(migration ? { migration } : {}), message });
    return {
      state: this.state,
      provider: this.provider,
      target: this.target,
      shipping: this.shipping,
      bufferPath: this.deps.volume.mountpoint,
      context: (migration, peer) => ({ bufferPath: this.deps.volume.mountpoint, shipping: this.shipping, identity: this.deps.identity, peer: this.deps.trust.get(peer), log: (message) => log(message, migration) }),
      adopt: (vm) => this.vms.set(vm.spec.name, vm),
      reattached: (vm) => {
        this.vms.set(vm.spec.name, vm);
        void this.provider.attached?.(vm);
      },
      vm: (name) => this.vms.get(name),
      restore: (entry) => this.records.set(entry.id, { ...entry, progress: { ...EMPTY_PROGRESS }, decisions: [] }),
      requeue: (id) => this.admission.push(id),
      settle: (id, phase, error) => this.settle(id, phase, error),
      handOff: (id, vm, spec) => this.continueHandoff(id, vm, spec),
      log,
    };
  }

  private onTick(trace: TickTrace): void {
    for (const entry of trace.migrations) {
      const record = this.records.get(entry.id);
      if (!record || TERMINAL.has(record.phase)) continue;
      record.buffer = { bin: entry.bin, cow: entry.cow, shards: entry.shards.length, frozen: entry.frozen, throttle: entry.throttle, linkShare: entry.linkShare };
    }
    for (const loss of linkLosses(trace, this.records.values(), this.deps.config.linkLostSeconds, (id) => this.aborts.has(id))) {
      const error = new LinkLostError(loss.peer, loss.seconds);
      for (const id of loss.rollBack) {
        this.records.get(id)?.decisions.push(`${error.message}: rolling back`);
        this.aborts.get(id)?.abort(error);
      }
      // Broken, the streams fail QEMU's NBD and RAM clients at once instead of when TCP gives up.
      this.links.sever(loss.peer);
    }
    this.emit('tick', trace);
  }
}
