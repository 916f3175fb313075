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
import { processAlive } from '../exec/run.js';
import type { Hello, PeerRequest, WireVm } from '../peer/protocol.js';
import { receiveBase, receiveDataset, shippedSnapshot, spliceToLocal } from '../peer/transfer.js';
import type { TrustedPeer } from '../peer/trust.js';
import { QmpCommandError } from '../qmp/errors.js';
import { zfsDestroy, zfsGet } from '../storage/zfs/zfs-commands.js';
import type { Json } from '../validate.js';
import { launchVm, type LaunchOptions, type RunningVm } from '../vm/launcher.js';
import type { VmSpec } from '../vm/spec.js';
import type { IncomingEntry } from './journal.js';

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
  vm?: RunningVm;
}

export interface TargetOptions {
  readonly stateDir: string;
  readonly maxIncoming: number;
  /** Parent dataset under which disks shipped by `zfs send` are received; none: files only. */
  readonly zfsParent?: string;
  readonly launch?: LaunchOptions;
  /** The paused VM waiting for an incoming migration was started. */
  readonly onStarted: (vm: RunningVm, migration: string) => void;
  /** A VM that arrived and runs here now: the daemon takes it over (and records the arrival). */
  readonly onArrived: (vm: RunningVm, migration: string) => Promise<void>;
  /** Whether this migration arrived here already (a repeated `finish` is then answered again). */
  readonly hasArrived: (migration: string) => boolean;
  /** Durable record of what is in flight, so a restarted daemon can clean it up. */
  readonly journal: { save(entry: IncomingEntry): Promise<void>; drop(id: string): Promise<void> };
}

/** Cleans up what an incoming migration left when the daemon died before it arrived or was aborted. */
export async function discardIncoming(entry: IncomingEntry): Promise<void> {
  if (entry.pid !== undefined && processAlive(entry.pid)) {
    // A paused VM waiting for its RAM: nothing in it is anyone's only copy.
    process.kill(entry.pid, 'SIGKILL');
    for (let i = 0; i < 100 && processAlive(entry.pid); i += 1) await sleep(50);
  }
  await removeShipped(entry);
}

/** What was shipped for an incoming migration: its directory, and its dataset if it came by ZFS. */
async function removeShipped(incoming: { readonly dir: string; readonly dataset?: string | undefined }): Promise<void> {
  if (incoming.dataset) await zfsDestroy(incoming.dataset, { recursive: true }).catch(() => undefined);
  await rm(incoming.dir, { recursive: true, force: true });
}

export class TargetSide {
  private readonly incoming = new Map<string, Incoming>();

  constructor(private readonly options: TargetOptions) {}

  private journal(incoming: Incoming): Promise<void> {
    return this.options.journal.save({ id: incoming.id, peer: incoming.peer, dir: incoming.dir, ...(incoming.dataset ? { dataset: incoming.dataset } : {}), ...(incoming.vm?.child.pid !== undefined ? { pid: incoming.vm.child.pid } : {}) });
  }

  private lookup(peer: TrustedPeer, id: string): Incoming {
    const incoming = this.incoming.get(id);
    if (!incoming || incoming.peer !== peer.name) throw new PeerError(`no incoming migration ${id} from ${peer.name}`);
    return incoming;
  }

  private diskPath(incoming: Incoming, disk: string): string {
    return incoming.files.get(disk) ?? join(incoming.dir, `${disk}.img`);
  }

  async handle(peer: TrustedPeer, request: PeerRequest): Promise<Json | undefined> {
    switch (request.method) {
      case 'prepare': {
        if (this.incoming.has(request.migration)) throw new PeerError(`migration ${request.migration} is already incoming`);
        if (this.incoming.size >= this.options.maxIncoming) throw new PeerError(`target busy: ${this.incoming.size} incoming migrations (limit ${this.options.maxIncoming})`);
        const dir = join(this.options.stateDir, 'vms', request.migration);
        // Take the slot before awaiting anything: a second prepare arriving meanwhile must see it.
        const incoming: Incoming = { id: request.migration, peer: peer.name, wire: request.vm, dir, received: new Set(), files: new Map() };
        this.incoming.set(request.migration, incoming);
        try {
          await this.journal(incoming);
          await mkdir(dir, { recursive: true, mode: 0o700 });
        } catch (error) {
          this.incoming.delete(request.migration);
          throw error;
        }
        // The source may ship its disks' dataset with `zfs send` when we can receive one.
        return { zfs: this.options.zfsParent !== undefined };
      }
      case 'start-target':
        return this.startTarget(this.lookup(peer, request.migration), request);
      case 'finish':
        if (!this.incoming.has(request.migration) && this.options.hasArrived(request.migration)) return { status: 'running' };
        return this.finish(this.lookup(peer, request.migration));
      case 'abort':
        await this.abort(peer, request.migration);
        return undefined;
      default:
        return request satisfies never;
    }
  }

  base(peer: TrustedPeer, hello: Extract<Hello, { kind: 'base' }>, socket: TLSSocket): void {
    let incoming: Incoming;
    try {
      incoming = this.lookup(peer, hello.migration);
      if (!incoming.wire.disks.some((disk) => disk.id === hello.disk)) throw new PeerError(`migration ${hello.migration} has no disk ${hello.disk}`);
    } catch (error) {
      socket.end(`${JSON.stringify({ ok: false, error: (error as Error).message })}\n`);
      return;
    }
    receiveBase(hello, socket, this.diskPath(incoming, hello.disk)).then(
      () => incoming.received.add(hello.disk),
      () => undefined,
    );
  }

  dataset(peer: TrustedPeer, hello: Extract<Hello, { kind: 'dataset' }>, socket: TLSSocket): void {
    let incoming: Incoming;
    let dataset: string;
    try {
      incoming = this.lookup(peer, hello.migration);
      if (this.options.zfsParent === undefined) throw new PeerError('this host receives no ZFS datasets');
      const missing = incoming.wire.disks.filter((disk) => hello.files[disk.id] === undefined);
      if (missing.length > 0 || Object.keys(hello.files).length !== incoming.wire.disks.length) throw new PeerError(`the dataset must hold exactly the disks of ${incoming.id}`);
      if (incoming.dataset) throw new PeerError(`migration ${incoming.id} already has a dataset`);
      dataset = `${this.options.zfsParent}/${hello.migration}`;
      incoming.dataset = dataset;
      void this.journal(incoming);
    } catch (error) {
      socket.end(`${JSON.stringify({ ok: false, error: (error as Error).message })}\n`);
      return;
    }
    receiveDataset(socket, dataset, async () => {
      const mountpoint = (await zfsGet(dataset, ['mountpoint']))?.get('mountpoint');
      if (!mountpoint) throw new PeerError(`received ${dataset} has no mountpoint`);
      for (const [disk, file] of Object.entries(hello.files)) {
        incoming.files.set(disk, join(mountpoint, file));
        incoming.received.add(disk);
      }
    }).catch(() => undefined);
  }

  stream(peer: TrustedPeer, hello: Extract<Hello, { kind: 'stream' }>, socket: TLSSocket): void {
    try {
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
    const spec: VmSpec = {
      ...incoming.wire,
      disks: incoming.wire.disks.map((disk) => ({ id: disk.id, nodeName: disk.nodeName, file: this.diskPath(incoming, disk.id), format: disk.format, werror: 'stop' })),
      qmpSocket: join(incoming.dir, 'qmp.sock'),
      serialLog: join(incoming.dir, 'serial.log'),
      incoming: true,
    };
    const vm = await launchVm(spec, this.options.launch);
    incoming.vm = vm;
    await this.journal(incoming);
    this.options.onStarted(vm, incoming.id);
    await vm.commands.nbdServerStart({ type: 'unix', data: { path: join(incoming.dir, 'nbd.sock') } });
    for (const disk of incoming.wire.disks) await vm.commands.blockExportAdd({ id: `exp-${disk.id}`, nodeName: disk.nodeName, name: disk.id, writable: true });
    await vm.commands.migrateSetCapabilities({ events: true, ...request.capabilities });
    if (request.multifdChannels) await vm.commands.migrateSetParameters({ 'multifd-channels': request.multifdChannels });
    await vm.commands.migrateIncoming(`unix:${join(incoming.dir, 'ram.sock')}`);
    return { qmpSocket: spec.qmpSocket, serialLog: spec.serialLog };
  }

  private async finish(incoming: Incoming): Promise<Json> {
    const vm = incoming.vm;
    if (!vm) throw new PeerError(`migration ${incoming.id} has no target VM`);
    // The source reports `completed` once it has sent everything; the destination completes a
    // moment later, after loading the last device state.
    for (let attempt = 0; ; attempt += 1) {
      const status = (await vm.commands.queryMigrate()).status;
      if (status === 'completed') break;
      if (status === 'failed' || status === 'cancelled' || attempt >= 300) throw new PeerError(`incoming migration ${incoming.id} is ${status ?? 'unknown'}, not completed`);
      await sleep(100);
    }
    for (const disk of incoming.wire.disks) {
      // The source's NBD client may still be detaching: the export says "in use" for a moment.
      for (let attempt = 0; ; attempt += 1) {
        try {
          await vm.commands.blockExportDel(`exp-${disk.id}`, attempt < 50 ? 'safe' : 'hard');
          break;
        } catch (error) {
          if (!(error instanceof QmpCommandError) || attempt >= 50) throw error;
          await sleep(100);
        }
      }
    }
    await vm.commands.nbdServerStop();
    await vm.commands.cont();
    // The dataset is the VM's now; the snapshot it arrived as has served its purpose.
    if (incoming.dataset) await zfsDestroy(`${incoming.dataset}@${shippedSnapshot(incoming.id)}`).catch(() => undefined);
    const running = await vm.commands.queryStatus();
    if (!running.running) throw new PeerError(`target VM of ${incoming.id} did not run: ${running.status}`);
    this.incoming.delete(incoming.id);
    await this.options.onArrived(vm, incoming.id);
    await this.options.journal.drop(incoming.id);
    return { status: running.status, qmpSocket: vm.spec.qmpSocket, serialLog: vm.spec.serialLog };
  }

  /** Stops the target VM and deletes what was shipped. Idempotent: an unknown id is already gone. */
  private async abort(peer: TrustedPeer, id: string): Promise<void> {
    const incoming = this.incoming.get(id);
    if (!incoming || incoming.peer !== peer.name) return;
    await this.discard(incoming);
  }

  private async discard(incoming: Incoming): Promise<void> {
    this.incoming.delete(incoming.id);
    await incoming.vm?.stop();
    await removeShipped(incoming);
    await this.options.journal.drop(incoming.id);
  }

  /** Daemon shutdown: every incoming migration is aborted. */
  async abortAll(): Promise<void> {
    for (const incoming of [...this.incoming.values()]) await this.discard(incoming);
  }
}
