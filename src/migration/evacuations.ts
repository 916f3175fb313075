/**
 * The engine's evacuation batches (evacuation/batch.ts) on its own parts: the port over the
 * engine (its headroom, VMs and migrations; peers asked over the control protocol), one batch at
 * a time, each journaled under `journal/evacuations/` and resumed when the engine starts again.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CowbufError, UnknownEvacuationError, ValidationError } from '../errors.js';
import { Evacuation, planBatch, type EvacuationPort } from '../evacuation/batch.js';
import { EvacuationJournal } from '../evacuation/journal.js';
import { askHeadroom } from '../evacuation/peer-headroom.js';
import { interfaceUplink } from '../evacuation/uplink.js';
import type { EvacuationVm } from '../evacuation/plan.js';
import { BATCH_FINAL, holdsVm, type EvacuationRecord, type MigrationStatus } from '../evacuation/progress.js';
import type { HostInventory } from '../host/inventory.js';
import type { Identity } from '../peer/identity.js';
import type { TrustStore } from '../peer/trust.js';
import { defined } from '../validate.js';
import type { ManagedVm } from '../vm/provider.js';
import type { Engine, EngineConfig, MigrationRecord } from './engine.js';
import { FINAL } from './record.js';

export interface EvacuationHost {
  readonly engine: Engine;
  readonly identity: Identity;
  readonly trust: TrustStore;
  readonly inventory: Pick<HostInventory, 'interfaceTo' | 'interfaceSpeed'>;
  readonly config: Pick<EngineConfig, 'stateDir' | 'minBinBytes' | 'assumedLinkRate'>;
}

/** How long a guest's writes are sampled for its write rate: one second, all VMs at once. */
const WRITE_SAMPLE_MS = 1000;
/** Planning asks every peer at once; one that has not answered by then is left out. */
const PLANNING_TIMEOUT_MS = 60_000;

export class Evacuations {
  private readonly batches = new Map<string, Evacuation>();
  private readonly runs = new Set<Promise<unknown>>();
  private readonly journal: EvacuationJournal;
  private readonly port: EvacuationPort;
  private readonly stopping = new AbortController();
  private planning = false;
  /** Peers whose link the last tick saw stalled. */
  private stalled = new Set<string>();

  constructor(private readonly host: EvacuationHost) {
    this.journal = new EvacuationJournal(join(host.config.stateDir, 'journal', 'evacuations'));
    this.port = enginePort(host, this.journal);
    // Each VM's phase and bytes left move with its migration's own events.
    host.engine.on('migration', (record) => {
      for (const batch of this.batches.values()) {
        if (!BATCH_FINAL.has(batch.state.status) && batch.state.vms.some((vm) => vm.migration === record.id)) host.engine.emit('evacuation', batch.record());
      }
    });
    // Only a link that has just stalled: asking again each tick would re-read the headroom (df) every second.
    host.engine.on('tick', (trace) => {
      const stalled = new Set(trace.links.filter((link) => link.stalledSeconds !== undefined).map((link) => link.peer));
      const fresh = [...stalled].filter((peer) => !this.stalled.has(peer));
      this.stalled = stalled;
      if (fresh.length > 0) for (const batch of this.batches.values()) batch.linksStalled(fresh);
    });
  }

  /**
   * Plans a batch off this host to `targets` (default: every trusted peer) and starts it.
   * @throws ValidationError naming a target that is not a trusted peer; CowbufError while another batch runs
   */
  async start(options: { readonly targets?: readonly string[] } = {}): Promise<EvacuationRecord> {
    const trusted = this.host.trust.list().map((peer) => peer.name);
    const targets = options.targets ?? trusted;
    targets.forEach((name, index) => {
      if (!trusted.includes(name)) throw new ValidationError(`targets[${index}]`, name, `a trusted peer (${trusted.join(', ') || 'none'})`);
    });
    if (targets.length === 0) throw new ValidationError('targets', targets, 'at least one trusted peer (none is trusted here: `cowbuf trust add`)');
    const running = [...this.batches.values()].find((batch) => !BATCH_FINAL.has(batch.state.status));
    if (running || this.planning) throw new CowbufError(`evacuation ${running?.id ?? '(being planned)'} is not over: one batch at a time (cancel it first)`);
    this.planning = true;
    try {
      const { minBinBytes, assumedLinkRate } = this.host.config;
      const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(PLANNING_TIMEOUT_MS)]);
      const state = await planBatch(this.port, { id: `evac-${randomUUID().slice(0, 8)}`, targets: [...new Set(targets)], options: { minBinBytes, assumedLinkRate } }, signal);
      return this.launch(new Evacuation(this.port, state)).record();
    } finally {
      this.planning = false;
    }
  }

  /** The batch that holds `vm` (one being planned holds every VM), if one does. */
  holding(vm: string): string | undefined {
    if (this.planning) return '(being planned)';
    return [...this.batches.values()].find((batch) => holdsVm(batch.state, vm))?.id;
  }

  list(): EvacuationRecord[] {
    return [...this.batches.values()].map((batch) => batch.record());
  }

  /** @throws UnknownEvacuationError */
  get(id: string): EvacuationRecord {
    return this.batch(id).record();
  }

  /** Starts no more of its VMs and cancels the running ones; a batch already over is left as it is. @throws UnknownEvacuationError */
  cancel(id: string): EvacuationRecord {
    const batch = this.batch(id);
    batch.cancel();
    return batch.record();
  }

  /** After the engine's recovery: the unfinished batches carry on, the others are history. */
  async resume(): Promise<void> {
    for (const state of await this.journal.load()) {
      const batch = new Evacuation(this.port, state);
      if (BATCH_FINAL.has(state.status)) this.batches.set(state.id, batch);
      else {
        this.host.engine.emit('log', { level: 'info', message: `evacuation ${state.id} resumed after the restart` });
        this.launch(batch);
      }
    }
  }

  /** No batch starts anything more; the running ones stay journaled as running, for `resume`. */
  stop(): void {
    this.stopping.abort(new CowbufError('daemon shutting down'));
  }

  /** Resolves once every batch has recorded what the shutdown did to its migrations. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.runs]);
  }

  private launch(batch: Evacuation): Evacuation {
    this.batches.set(batch.id, batch);
    const run = batch.run(this.stopping.signal).finally(() => this.runs.delete(run));
    this.runs.add(run);
    return batch;
  }

  private batch(id: string): Evacuation {
    const batch = this.batches.get(id);
    if (!batch) throw new UnknownEvacuationError(id);
    return batch;
  }
}

function enginePort({ engine, identity, trust, inventory }: EvacuationHost, journal: EvacuationJournal): EvacuationPort {
  return {
    ownHeadroom: (signal) => engine.headroom(signal),
    // Every target is a trusted peer (`start` checked): each has an address.
    uplink: (targets, signal) => interfaceUplink(targets.flatMap((name) => trust.get(name)?.address ?? []), inventory, signal),
    peerHeadroom: async (peer, signal) => {
      const trusted = trust.get(peer);
      if (!trusted) throw new ValidationError('target', peer, 'a trusted peer');
      return askHeadroom(trusted, identity, signal);
    },
    vms: (signal) => {
      const migrating = new Set(engine.list().filter((record) => !FINAL.has(record.phase)).map((record) => record.vm));
      return Promise.all([...engine.vms.values()].filter((vm) => !migrating.has(vm.spec.name)).map((vm) => measure(vm, signal)));
    },
    migrate: (vm, target) => engine.migrate(vm, target).id,
    waitFor: async (id) => statusOf(await engine.waitFor(id)),
    status: (id) => {
      const record = engine.list().find((candidate) => candidate.id === id);
      if (!record) return undefined;
      const stalled = engine.links.estimate(record.peer)?.stalledSince !== undefined;
      return { ...statusOf(record), ...(stalled ? { linkStalled: true } : {}) };
    },
    cancel: (id) => void engine.cancel(id),
    save: (state) => journal.save(state),
    changed: (record) => engine.emit('evacuation', record),
    log: (level, message) => engine.emit('log', { level, message }),
  };
}

function statusOf(record: MigrationRecord): MigrationStatus {
  const p = record.progress;
  return defined({
    phase: record.phase,
    error: record.error,
    cowBytes: record.buffer?.cow ?? 0,
    diskLeft: p.baseTotal > 0 ? Math.max(0, p.baseTotal - p.baseSent) + p.mirrorRemaining : undefined,
    ramLeft: p.ramTotal > 0 ? p.ramRemaining : undefined,
  });
}

/**
 * A VM as the planner weighs it: its disks' virtual sizes and its memory, and as its write rate
 * every byte the guest writes over a second, counted as new to its overlay (rewrites of the same
 * clusters do not grow it: this errs on the side of fewer at once).
 */
async function measure(vm: ManagedVm, signal: AbortSignal): Promise<EvacuationVm> {
  const nodes = new Set(vm.spec.disks.map((disk) => disk.nodeName));
  const written = async () => (await vm.commands.queryBlockstats({ signal })).reduce((sum, entry) => sum + entry.stats.wr_bytes, 0);
  const sizes = await vm.commands.queryNamedBlockNodes({ signal });
  const before = await written();
  await sleep(WRITE_SAMPLE_MS, undefined, { signal });
  const after = await written();
  return {
    name: vm.spec.name,
    memoryBytes: vm.spec.memoryMiB * 1024 ** 2,
    diskBytes: sizes.filter((node) => nodes.has(node['node-name'])).reduce((sum, node) => sum + node.image['virtual-size'], 0),
    writeRate: Math.max(0, after - before) / (WRITE_SAMPLE_MS / 1000),
  };
}
