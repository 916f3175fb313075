/**
 * The receiving role of a daemon. For each incoming migration it keeps a directory under the
 * state dir (the VM's home once it has arrived), receives each disk's base, starts the VM from
 * the source's spec paused with `-incoming defer`, exports its disks writable over NBD and waits
 * for RAM, both on local unix sockets the peer streams are spliced onto (QEMU's own traffic never
 * leaves the host unencrypted). Only the peer that prepared a migration may act on it.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { PeerError } from '../errors.js';
import type { Headroom } from '../evacuation/headroom.js';
import type { HostInventory } from '../host/inventory.js';
import type { Hello, PeerRequest, WireVm } from '../peer/protocol.js';
import { receiveStream, spliceToLocal } from '../peer/transfer.js';
import type { TrustedPeer } from '../peer/trust.js';
import type { EventListener } from '../qmp/events.js';
import { QmpCommandError } from '../qmp/errors.js';
import type { DiskShipping } from '../storage/shipping.js';
import type { Json } from '../validate.js';
import type { ManagedVm, VmProvider } from '../vm/provider.js';
import { throttleTarget } from '../vm/spec.js';
import type { IncomingEntry } from './journal.js';
import { MEMORY_MARGIN, preflight, preflightTimeoutMs, type TargetFacts } from './preflight.js';
import { listenForRecovery } from './postcopy.js';
import { eventTime, RAM_FAILED, RAM_HANDED_OVER, RAM_SETTLED } from './qemu-steps.js';
import { SilenceWatch, watchUnheard } from './source-silence.js';
import { incomingSpec } from './wire-spec.js';

interface Incoming {
  readonly id: string;
  readonly peer: string;
  readonly wire: WireVm;
  readonly dir: string;
  readonly received: Set<string>;
  /** Disk id → file, when the disks arrived as a ZFS dataset rather than as files in `dir`. */
  readonly files: Map<string, string>;
  /** The dataset received for this migration, if any. */
  dataset?: string;
  vm?: ManagedVm;
  /** The incoming QEMU's MIGRATION events, heard from before `migrate-incoming`. */
  events?: EventListener;
  /** A `finish` under way: a repeated one (the source retrying) waits for the same answer. */
  finishing?: Promise<Json>;
}

export interface TargetOptions {
  readonly stateDir: string;
  readonly maxIncoming: number;
  /** How shipped bases land in this host's storage (files, or datasets too). */
  readonly shipping: DiskShipping;
  /** Starts the paused copy of each incoming guest. */
  readonly provider: Pick<VmProvider, 'launchIncoming'>;
  /** What this host has to give an incoming guest, checked on `prepare`. */
  readonly inventory: HostInventory;
  /** What else `prepare` checks: this host's QEMU, its accelerator, the VMs it already has. */
  readonly facts: TargetFacts;
  /** The paused VM waiting for an incoming migration was started. */
  readonly onStarted: (vm: ManagedVm, migration: string) => void;
  /** A VM that arrived and runs here now: the daemon takes it over (and records the arrival). */
  readonly onArrived: (vm: ManagedVm, migration: string) => Promise<void>;
  /** Whether this migration arrived here already (a repeated `finish` is then answered again). */
  readonly hasArrived: (migration: string) => boolean;
  /** What went wrong that the migration survives, and what this side decided alone. */
  readonly log?: (message: string, migration?: string) => void;
  /** An incoming migration whose source was silent this long is aborted here (source-silence.ts); absent, none is. */
  readonly sourceGivesUpSeconds?: number;
  /** Durable record of what is in flight, so a restarted daemon can clean it up. */
  readonly journal: { save(entry: IncomingEntry): Promise<void>; drop(id: string): Promise<void> };
  /** This host's headroom, asked by a source planning an evacuation (the engine's). */
  readonly headroom: (signal: AbortSignal) => Promise<Headroom>;
}

/** What was shipped for an incoming migration: its directory, and its dataset if it came by ZFS. */
export async function removeShipped(incoming: { readonly dir: string; readonly dataset?: string | undefined }, shipping: Pick<DiskShipping, 'discard'>): Promise<void> {
  if (incoming.dataset) await shipping.discard(incoming.dataset);
  await rm(incoming.dir, { recursive: true, force: true });
}

/** Reading memory and disk free takes milliseconds; a host this slow to answer is in trouble. */
const HEADROOM_TIMEOUT_MS = 10_000;

/** Pausing and re-listening take QEMU milliseconds; bounded below the source's request timeout. */
const RECOVER_TIMEOUT_MS = 20_000;

/** A paused QEMU is up in well under a second; a provider taking this long will not deliver. */
const LAUNCH_TIMEOUT_MS = 60_000;

export class TargetSide {
  private readonly incoming = new Map<string, Incoming>();
  /** `finish` answers of arrivals, for a source that asks again (its first answer was lost). */
  private readonly answers = new Map<string, Json>();
  /** Arrivals whose RAM is still following (post-copy), until their QEMU completes: their stream may need recovering. */
  private readonly postcopy = new Map<string, { readonly peer: string; readonly vm: ManagedVm; readonly ramSocket: string }>();
  private readonly silence = new SilenceWatch();
  private readonly stopSilence: () => void = () => undefined;

  constructor(private readonly options: TargetOptions) {
    if (options.sourceGivesUpSeconds === undefined) return;
    this.stopSilence = watchUnheard(this.silence, options.sourceGivesUpSeconds, { incoming: this.incoming, discard: (incoming) => this.discard(incoming), log: (message, migration) => options.log?.(message, migration) });
  }

  private journal(incoming: Incoming): Promise<void> {
    const vm = incoming.vm;
    return this.options.journal.save({
      id: incoming.id,
      peer: incoming.peer,
      dir: incoming.dir,
      wire: incoming.wire,
      ...(incoming.dataset ? { dataset: incoming.dataset } : {}),
      ...(vm?.pid !== undefined ? { pid: vm.pid, spec: vm.spec, accel: vm.accel } : {}),
    });
  }

  /**
   * After a restart: an incoming VM whose QEMU holds all of the guest (`completed`) may be the
   * only copy that can still run, if the source completed too. It is kept, paused, until the
   * source says `finish` or `abort`.
   */
  keep(entry: IncomingEntry, vm: ManagedVm): void {
    this.incoming.set(entry.id, { id: entry.id, peer: entry.peer, wire: entry.wire, dir: entry.dir, received: new Set(entry.wire.disks.map((disk) => disk.id)), files: new Map(), ...(entry.dataset ? { dataset: entry.dataset } : {}), vm });
  }

  /** After a restart: a guest that was resumed here before the daemon died has arrived. */
  async arrivedBeforeRestart(entry: IncomingEntry, vm: ManagedVm): Promise<void> {
    await this.options.onArrived(vm, entry.id);
    this.answers.set(entry.id, { outcome: 'running', contAt: 0, resumedAt: 0 });
    await this.closeExports({ id: entry.id, wire: entry.wire, ...(entry.dataset ? { dataset: entry.dataset } : {}) }, vm).catch(() => undefined);
    await this.options.journal.drop(entry.id);
  }

  private lookup(peer: TrustedPeer, id: string): Incoming {
    const incoming = this.incoming.get(id);
    if (!incoming || incoming.peer !== peer.name) throw new PeerError(`no incoming migration ${id} from ${peer.name}`);
    return incoming;
  }

  /**
   * A source that gave up waiting (its migration was cancelled) sends `abort` while its request
   * may still be under way here: what that request goes on to make must not outlive the abort.
   * @throws PeerError when the migration was aborted meanwhile (after stopping `vm`)
   */
  private async stillIncoming(incoming: Incoming, vm?: ManagedVm): Promise<void> {
    if (this.incoming.get(incoming.id) === incoming) return;
    await vm?.stop();
    throw new PeerError(`migration ${incoming.id} was aborted meanwhile`);
  }

  private diskPath(incoming: Incoming, disk: string): string {
    return incoming.files.get(disk) ?? join(incoming.dir, `${disk}.img`);
  }

  async handle(peer: TrustedPeer, request: PeerRequest): Promise<Json | undefined> {
    // A request under way (a preflight, a launch) is its source waiting on us, not silent.
    return request.method === 'headroom' ? this.answer(peer, request) : this.silence.during(peer.name, request.migration, () => this.answer(peer, request));
  }

  private async answer(peer: TrustedPeer, request: PeerRequest): Promise<Json | undefined> {
    switch (request.method) {
      case 'prepare': {
        if (this.incoming.has(request.migration)) throw new PeerError(`migration ${request.migration} is already incoming`);
        if (this.incoming.size >= this.options.maxIncoming) throw new PeerError(`target busy: ${this.incoming.size} incoming migrations (limit ${this.options.maxIncoming})`);
        const dir = join(this.options.stateDir, 'vms', request.migration);
        // Take the slot before awaiting anything: a second prepare arriving meanwhile must see it.
        const incoming: Incoming = { id: request.migration, peer: peer.name, wire: request.vm, dir, received: new Set(), files: new Map() };
        this.incoming.set(request.migration, incoming);
        try {
          const signal = AbortSignal.timeout(preflightTimeoutMs(request.vm));
          const arriving = (name: string) => [...this.incoming.values()].some((other) => other !== incoming && other.wire.name === name);
          const facts: TargetFacts = { ...this.options.facts, hasVm: (name) => this.options.facts.hasVm(name) || arriving(name) };
          await preflight(this.options.inventory, facts, request.vm, await this.options.shipping.landing(dir, { signal }), signal);
          await this.stillIncoming(incoming);
          await this.journal(incoming);
          await mkdir(dir, { recursive: true, mode: 0o700 });
        } catch (error) {
          this.incoming.delete(request.migration);
          throw error;
        }
        // The source may ship its disks' dataset with `zfs send` when we can receive one.
        return { zfs: this.options.shipping.receivesDatasets };
      }
      case 'start-target':
        return this.startTarget(this.lookup(peer, request.migration), request);
      case 'finish': {
        const incoming = this.incoming.get(request.migration);
        if (incoming && incoming.peer === peer.name) return (incoming.finishing ??= this.finish(incoming).finally(() => delete incoming.finishing));
        const arrived = this.answers.get(request.migration);
        if (arrived) return arrived;
        if (this.options.hasArrived(request.migration)) return { outcome: 'running', contAt: 0, resumedAt: 0 };
        // Every incoming migration is journaled before its first side effect: one this host does
        // not know has no copy here, so none can ever run.
        return { outcome: 'not-run', reason: `no incoming migration ${request.migration} on this host` };
      }
      case 'abort':
        await this.abort(peer, request.migration);
        return undefined;
      case 'recover': {
        const arrival = this.postcopy.get(request.migration);
        if (!arrival || arrival.peer !== peer.name) throw new PeerError(`no post-copy of ${request.migration} from ${peer.name} on this host`);
        await listenForRecovery(arrival.vm.commands, `unix:${arrival.ramSocket}`, AbortSignal.timeout(RECOVER_TIMEOUT_MS));
        return undefined;
      }
      case 'headroom':
        // Bounded below the asking side's request timeout, so it gets this error, not a silence.
        return { ...(await this.options.headroom(AbortSignal.timeout(HEADROOM_TIMEOUT_MS))) };
      default:
        return request satisfies never;
    }
  }

  base(peer: TrustedPeer, hello: Extract<Hello, { kind: 'base' }>, socket: TLSSocket): void {
    this.silence.stream(peer.name, hello.migration, socket);
    let incoming: Incoming;
    try {
      incoming = this.lookup(peer, hello.migration);
      if (!incoming.wire.disks.some((disk) => disk.id === hello.disk)) throw new PeerError(`migration ${hello.migration} has no disk ${hello.disk}`);
    } catch (error) {
      socket.end(`${JSON.stringify({ ok: false, error: (error as Error).message })}\n`);
      return;
    }
    const path = this.diskPath(incoming, hello.disk);
    receiveStream(socket, `base of ${hello.disk}`, () => this.options.shipping.receiveFile(path, hello.size), { size: hello.size, onLanded: () => void incoming.received.add(hello.disk) }).catch(() => undefined);
  }

  dataset(peer: TrustedPeer, hello: Extract<Hello, { kind: 'dataset' }>, socket: TLSSocket): void {
    this.silence.stream(peer.name, hello.migration, socket);
    let incoming: Incoming;
    let dataset: string;
    try {
      incoming = this.lookup(peer, hello.migration);
      const missing = incoming.wire.disks.filter((disk) => hello.files[disk.id] === undefined);
      if (missing.length > 0 || Object.keys(hello.files).length !== incoming.wire.disks.length) throw new PeerError(`the dataset must hold exactly the disks of ${incoming.id}`);
      if (incoming.dataset) throw new PeerError(`migration ${incoming.id} already has a dataset`);
      dataset = this.options.shipping.datasetFor(hello.migration);
      incoming.dataset = dataset;
      void this.journal(incoming);
    } catch (error) {
      socket.end(`${JSON.stringify({ ok: false, error: (error as Error).message })}\n`);
      return;
    }
    const landed = (mountpoint: string) => {
      for (const [disk, file] of Object.entries(hello.files)) {
        incoming.files.set(disk, join(mountpoint, file));
        incoming.received.add(disk);
      }
    };
    receiveStream(socket, `dataset ${dataset}`, () => this.options.shipping.receiveDataset(dataset), { onLanded: landed }).catch(() => undefined);
  }

  stream(peer: TrustedPeer, hello: Extract<Hello, { kind: 'stream' }>, socket: TLSSocket): void {
    this.silence.stream(peer.name, hello.migration, socket);
    try {
      const arrival = this.postcopy.get(hello.migration);
      if (arrival && arrival.peer === peer.name && hello.stream === 'ram') {
        spliceToLocal(socket, arrival.ramSocket);
        return;
      }
      const incoming = this.lookup(peer, hello.migration);
      if (!incoming.vm) throw new PeerError(`migration ${hello.migration} has no target VM yet`);
      spliceToLocal(socket, join(incoming.dir, `${hello.stream}.sock`));
    } catch {
      socket.destroy();
    }
  }

  private async startTarget(incoming: Incoming, request: Extract<PeerRequest, { method: 'start-target' }>): Promise<Json> {
    const missing = incoming.wire.disks.filter((disk) => !incoming.received.has(disk.id));
    if (missing.length > 0) throw new PeerError(`bases not received: ${missing.map((disk) => disk.id).join(', ')}`);
    if (incoming.vm) throw new PeerError(`target VM of ${incoming.id} already started`);
    const spec = await incomingSpec(incoming.wire, incoming.dir, (disk) => this.diskPath(incoming, disk));
    // The signal bounds the launch only: a provider may tie its QEMU's life to it (cowbuf's kills
    // on abort), and the guest must outlive a slow handoff.
    const launching = new AbortController();
    const timer = setTimeout(() => launching.abort(new PeerError(`the target VM of ${incoming.id} did not start within ${LAUNCH_TIMEOUT_MS / 1000} s`)), LAUNCH_TIMEOUT_MS);
    const vm = await this.options.provider.launchIncoming(spec, { migration: incoming.id, signal: launching.signal }).finally(() => clearTimeout(timer));
    await this.stillIncoming(incoming, vm);
    incoming.vm = vm;
    await this.journal(incoming);
    this.options.onStarted(vm, incoming.id);
    await vm.commands.nbdServerStart({ type: 'unix', data: { path: join(incoming.dir, 'nbd.sock') } });
    for (const disk of incoming.wire.disks) await vm.commands.blockExportAdd({ id: `exp-${disk.id}`, nodeName: disk.nodeName, name: disk.id, writable: true });
    await vm.commands.migrateSetCapabilities({ events: true, ...request.capabilities });
    if (request.multifdChannels) await vm.commands.migrateSetParameters({ 'multifd-channels': request.multifdChannels });
    incoming.events = vm.qmp.listen('MIGRATION');
    await vm.commands.migrateIncoming(`unix:${join(incoming.dir, 'ram.sock')}`);
    return { qmpSocket: spec.qmpSocket, serialLog: spec.serialLog };
  }

  /**
   * Resumes the guest here once the incoming QEMU has all of it: the source has completed and
   * dropped its NBD clients. `cont` comes first and the exports are removed after, off the
   * blackout. If the copy cannot run (its QEMU failed or died) it is discarded and the answer
   * says so, which is the only answer that lets the source resume its own.
   */
  private async finish(incoming: Incoming): Promise<Json> {
    const vm = incoming.vm;
    const status = vm && vm.running() ? await this.incomingStatus(incoming, vm) : 'gone';
    // In post-copy the guest must run here before its RAM is all here: it faults the rest in.
    if (!RAM_HANDED_OVER.has(status)) {
      await this.discard(incoming);
      return { outcome: 'not-run', reason: `the incoming migration is ${status}` };
    }
    const running = vm as ManagedVm;
    const resumed = running.qmp.listen('RESUME');
    let contAt: number;
    let resumedAt: number;
    try {
      contAt = Date.now();
      await running.commands.cont();
      resumedAt = eventTime(await resumed.next({ timeoutMs: 10_000 }));
    } finally {
      resumed.close();
    }
    // The switches must learn the guest's MACs here before its peers' ARP caches time out.
    if (incoming.wire.nics?.length) await running.commands.announceSelf().catch((error: Error) => this.options.log?.(`${incoming.id}: announce-self failed: ${error.message}`));
    if (status === 'postcopy-active') this.followPostcopy(incoming, running);
    else incoming.events?.close();
    this.incoming.delete(incoming.id);
    await this.options.onArrived(running, incoming.id);
    await this.options.journal.drop(incoming.id);
    const answer = { outcome: 'running', contAt, resumedAt };
    this.answers.set(incoming.id, answer);
    await this.closeExports(incoming, running);
    // The admin's I/O limits come back once the guest runs, off the blackout; a drive QEMU
    // refuses them on keeps running unlimited, which the log says.
    for (const disk of incoming.wire.disks) {
      if (disk.limits) await running.commands.setIoThrottle(throttleTarget(disk), disk.limits).catch((error: Error) => this.options.log?.(`${incoming.id}: the I/O limits of ${disk.id} were not restored: ${error.message}`));
    }
    return answer;
  }

  /** Keeps an arrival recoverable (postcopy.ts) until its incoming QEMU has every page, or failed. */
  private followPostcopy(incoming: Incoming, vm: ManagedVm): void {
    const events = incoming.events;
    this.postcopy.set(incoming.id, { peer: incoming.peer, vm, ramSocket: join(incoming.dir, 'ram.sock') });
    void (events?.waitFor((event) => event.data.status === 'completed' || RAM_FAILED.has(String(event.data.status)), { timeoutMs: 2 ** 31 - 1 }) ?? Promise.resolve())
      .catch(() => undefined)
      .finally(() => {
        events?.close();
        this.postcopy.delete(incoming.id);
      });
  }

  /** `completed` (or `postcopy-active`), or why not, after waiting (bounded) for the device state to load. */
  private async incomingStatus(incoming: Incoming, vm: ManagedVm): Promise<string> {
    const status = (await vm.commands.queryMigrate()).status ?? 'unknown';
    if (RAM_SETTLED.has(status) || !incoming.events) return status;
    const done = await incoming.events.waitFor((event) => RAM_SETTLED.has(String(event.data.status)), { timeoutMs: 20_000 }).catch(() => undefined);
    if (!done) throw new PeerError(`incoming migration ${incoming.id} is still ${status}: ask again`);
    return String(done.data.status);
  }

  /**
   * The guest runs; its NBD exports go. The source dropped its clients before `finish`, but the
   * disconnect may still be crossing the spliced stream: "in use" for a moment, then hard.
   */
  private async closeExports(incoming: Pick<Incoming, 'id' | 'wire' | 'dataset'>, vm: ManagedVm): Promise<void> {
    for (const disk of incoming.wire.disks) {
      for (let attempt = 0; ; attempt += 1) {
        try {
          await vm.commands.blockExportDel(`exp-${disk.id}`, attempt < 20 ? 'safe' : 'hard');
          break;
        } catch (error) {
          if (!(error instanceof QmpCommandError) || attempt >= 20) throw error;
          await sleep(50);
        }
      }
    }
    await vm.commands.nbdServerStop();
    // The dataset is the VM's home now; the snapshot it arrived as has served its purpose.
    if (incoming.dataset) await this.options.shipping.arrived(incoming.dataset, incoming.id).catch(() => undefined);
  }

  /**
   * Stops the target VM and deletes what was shipped. Idempotent for a copy that never ran (an
   * unknown id is already gone); refused for a guest that runs here, since the source would
   * otherwise resume a second copy.
   */
  private async abort(peer: TrustedPeer, id: string): Promise<void> {
    if (this.answers.has(id) || this.options.hasArrived(id)) throw new PeerError(`migration ${id} arrived: the guest runs on this host and cannot be aborted`);
    const incoming = this.incoming.get(id);
    if (!incoming || incoming.peer !== peer.name) return;
    if (incoming.finishing) throw new PeerError(`migration ${id} is finishing on this host`);
    await this.discard(incoming);
  }

  private async discard(incoming: Incoming): Promise<void> {
    this.incoming.delete(incoming.id);
    incoming.events?.close();
    await incoming.vm?.stop();
    await removeShipped(incoming, this.options.shipping);
    await this.options.journal.drop(incoming.id);
  }

  /** What the guests on their way here will take: memory with QEMU's margin, and every base not yet received. */
  arriving(): Array<{ memoryBytes: number; diskBytes: number }> {
    return [...this.incoming.values()].map((incoming) => ({
      memoryBytes: incoming.wire.memoryMiB * 1024 ** 2 + MEMORY_MARGIN,
      diskBytes: incoming.wire.disks.filter((disk) => !incoming.received.has(disk.id)).reduce((sum, disk) => sum + disk.virtualSize, 0),
    }));
  }

  /**
   * The incoming migration that still holds a VM of this name: one on its way, or one that runs
   * here already while its RAM follows by post-copy (its only copy: the source cannot resume it).
   */
  receiving(name: string): string | undefined {
    for (const [id, arrival] of this.postcopy) if (arrival.vm.spec.name === name) return id;
    return [...this.incoming.values()].find((incoming) => incoming.wire.name === name)?.id;
  }

  /** Daemon shutdown: every incoming migration is aborted. */
  async abortAll(): Promise<void> {
    this.stopSilence();
    for (const incoming of [...this.incoming.values()]) await this.discard(incoming);
  }
}
