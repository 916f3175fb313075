/**
 * The sending role: one migration of one VM, the flow of DESIGN §1, each step registering its
 * undo on a revert stack. Until the target confirms the VM runs there, the source is
 * authoritative: any failure or cancel unwinds in reverse (migrate_cancel, cancel the mirror,
 * drop the NBD path, abort the target, lift the throttle, commit the overlay back into the base,
 * make sure the guest runs) and the guest keeps running here with every write it made.
 * Peer requests, QMP queries and steps whose undo reads QEMU's state take the migration's signal,
 * so a cancel never waits out a timeout; QMP mutations whose undo must know they happened (nodes
 * added and activated, post-copy, the switchover) do not: the local monitor answers them at once,
 * and one given up on mid-flight would leave its undo guessing.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BufferFullError, CancelledError, CowbufError, MigrationFailedError, PeerError, PeerRequestError } from '../errors.js';
import type { ThrottlePolicy } from '../buffer/throttle/policy.js';
import type { LinkTracker } from '../monitor/link-tracker.js';
import { ControlClient } from '../peer/channel.js';
import type { Identity } from '../peer/identity.js';
import { proxyToPeer, type LocalProxy } from '../peer/transfer.js';
import type { TrustedPeer } from '../peer/trust.js';
import type { IoLimits, QmpCommands } from '../qmp/commands.js';
import type { EventListener, QmpEvent } from '../qmp/events.js';
import { Revert } from '../revert.js';
import { createOverlay, removeOverlay } from '../storage/overlays.js';
import type { DiskShipping } from '../storage/shipping.js';
import type { Json } from '../validate.js';
import type { ManagedVm } from '../vm/provider.js';
import { deviceIdOf, throttleTarget, type DiskSpec } from '../vm/spec.js';
import type { ControlLoop, LoopMigration } from './control-loop.js';
import { shipBases } from './base.js';
import { wireVm } from './wire-spec.js';
import { decide, migrationSetup, startConvergence, type ConvergenceConfig } from './convergence.js';
import { completeHandoff, type Side } from './handoff.js';
import { ROLLBACK_ABORT_TIMEOUT_MS } from './source-silence.js';
import type { Phase } from './record.js';
import { cancelMigration, cancelMirrors, commitBack, ensureRunning, eventTime, finishMirrors, mirrorFilterNode, mirrorJob, nbdNode, overlayFileNode, overlayName, overlayNode, RAM_FAILED, RAM_HANDED_OVER, RAM_SETTLED, supportedParameters } from './qemu-steps.js';

export interface Progress {
  readonly baseSent: number;
  readonly baseTotal: number;
  readonly mirrorRemaining: number;
  /** QEMU's own counts of what it sent (the cross-check of the link tracker's acknowledged bytes). */
  readonly mirrorCopied: number;
  readonly ramTransferred: number;
  readonly ramRemaining: number;
  readonly ramTotal: number;
  /** Connections the RAM migration opened through the proxy (1, or 1 + multifd channels). */
  readonly ramStreams: number;
  readonly downtimeLimitMs: number;
  /** The highest vCPU throttle auto-converge imposed on the guest (0: never throttled). */
  readonly cpuThrottlePercent: number;
  /** Pages the target's running guest faulted in during post-copy (0 without post-copy). */
  readonly postcopyRequests: number;
}

/**
 * The switchover as the hosts saw it: from the source's STOP to the target's RESUME (QMP event
 * times; the two hosts' clocks are assumed in step, as NTP keeps them to a few ms), and its parts.
 */
export interface Blackout {
  readonly ms: number;
  /** QEMU's own `downtime` on the source (stop to completion, the handoff not included). */
  readonly qemuDowntimeMs: number;
  readonly parts: {
    /** STOP to every mirror concluded in sync (noticing pre-switchover, lifting the throttle). */
    readonly mirrors: number;
    /** `migrate-continue` to `completed`: the last RAM pass and the device state. */
    readonly lastRamPass: number;
    /** `completed` to the target sending `cont` (NBD clients dropped, `finish` crossed). */
    readonly handoff: number;
    /** `cont` to the target's RESUME event. */
    readonly cont: number;
  };
  readonly stoppedAt: string;
  readonly resumedAt: string;
}

/** `412 ms (mirrors 3, last RAM pass 280, handoff 120, cont 9; QEMU downtime 290 ms)` */
export function blackoutText(blackout: Blackout): string {
  const { mirrors, lastRamPass, handoff, cont } = blackout.parts;
  const ms = (value: number) => Math.round(value).toString();
  return `${ms(blackout.ms)} ms (mirrors ${ms(mirrors)}, last RAM pass ${ms(lastRamPass)}, handoff ${ms(handoff)}, cont ${ms(cont)}; QEMU downtime ${blackout.qemuDowntimeMs} ms)`;
}

export interface SourceContext {
  readonly id: string;
  readonly vm: ManagedVm;
  readonly peer: TrustedPeer;
  readonly identity: Identity;
  readonly bufferPath: string;
  readonly runDir: string;
  /** How the bases leave this host's storage (raw files, a ZFS dataset). */
  readonly shipping: DiskShipping;
  readonly loop: ControlLoop;
  readonly links: LinkTracker;
  readonly convergence: ConvergenceConfig;
  /** Floor of the mirror's deadline to become ready, before escalating. */
  readonly mirrorReadySeconds: number;
  readonly policy: ThrottlePolicy;
  readonly signal: AbortSignal;
  readonly onPhase: (phase: Phase) => void;
  readonly onProgress: (progress: Partial<Progress>) => void;
  readonly onBlackout: (blackout: Blackout) => void;
  /** The admin's I/O limits on the drives that have any, read before cowbuf caps them. */
  readonly onLimits: (limits: ReadonlyMap<string, IoLimits>) => void;
  /** The rollback's `abort` got no answer from the target: it is to be told again until it hears. */
  readonly onAbortUnheard: () => void;
  /** Settles when an admin names the side to resume a migration in doubt. */
  readonly decided: Promise<Side>;
  /** The guest runs on the target and every page crossed: the VM provider retires this copy. */
  readonly departed: (vm: ManagedVm) => Promise<void>;
  /** Every decision the engine takes on its own (escalations, convergence steps), for the log. */
  readonly onDecision: (message: string) => void;
}

/**
 * Resolves when the migration completed and the VM runs on the target.
 * @throws MigrationFailedError (rolled back: the guest runs here), InDoubtError (stopped past the
 *   point of no return before the target answered: both copies paused, the journal says so)
 */
export async function runSource(ctx: SourceContext): Promise<void> {
  const qmp = ctx.vm.commands;
  const disks = ctx.vm.spec.disks;
  // The caller's signal (cancel, daemon shutdown, control loop) or a full buffer stop the migration.
  const controller = new AbortController();
  const forward = () => controller.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', forward, { once: true });
  if (ctx.signal.aborted) forward();
  const signal = controller.signal;
  const inner = { ...ctx, signal };
  // A guest write that the buffer's quota refused (EDQUOT) pauses the guest (werror=stop): the
  // buffer is exhausted for it, so the migration fails and the rollback gives the space back.
  const ioErrors = ctx.vm.qmp.listen('BLOCK_IO_ERROR');
  void (async () => {
    for (;;) {
      const event = await ioErrors.next({ timeoutMs: 2 ** 31 - 1 }).catch(() => undefined);
      if (!event) return;
      // The node is the device's top one: the overlay, or while it mirrors the job's filter above it.
      const node = String(event.data['node-name'] ?? '');
      if (node.startsWith('cowbuf-ovl')) {
        controller.abort(new BufferFullError(`the buffer is full: ${String(event.data.reason ?? 'write refused')} on ${node}, the guest was paused`));
        return;
      }
    }
  })();
  let phase: Phase = 'overlay';
  const enter = (next: Phase) => {
    signal.throwIfAborted();
    phase = next;
    ctx.onPhase(next);
  };
  let control: ControlClient | undefined;
  const proxies: LocalProxy[] = [];
  const closeAll = async () => {
    ioErrors.close();
    ctx.signal.removeEventListener('abort', forward);
    control?.close();
    for (const proxy of proxies.splice(0)) await proxy.close();
  };
  let marks: { readonly stoppedAt: number; readonly mirrorsDoneAt: number; readonly completedAt: number };
  try {
    marks = await Revert.run(async (revert) => {
      revert.add(() => ensureRunning(qmp));
      enter('prepare');
      // The target admits at most K incoming migrations: while it is busy, wait, visibly.
      const client = await ControlClient.open(ctx.peer, ctx.identity, { signal });
      control = client;
      let prepared: Json | undefined;
      const sizes = new Map((await qmp.queryNamedBlockNodes({ signal })).map((node) => [node['node-name'], node.image['virtual-size']]));
      const limits = adminLimits(await qmp.queryIoLimits({ signal }), disks);
      ctx.onLimits(limits);
      const wire = await wireVm(ctx.vm.spec, ctx.vm.accel, sizes, limits, signal);
      // Before the first `prepare`: one given up on by a cancel may still be carried out there.
      revert.add(async () => {
        try {
          await client.request({ method: 'abort', migration: ctx.id }, { timeoutMs: ROLLBACK_ABORT_TIMEOUT_MS });
        } catch (error) {
          if (!(error instanceof PeerRequestError && error.refused)) ctx.onAbortUnheard();
          throw error;
        }
      });
      for (let waited = false; ; waited = true) {
        try {
          prepared = await client.request({ method: 'prepare', migration: ctx.id, vm: wire }, { signal });
          break;
        } catch (error) {
          if (!(error instanceof PeerRequestError) || !error.reason.startsWith('target busy')) throw error;
          if (!waited) {
            ctx.onPhase('queued');
            ctx.onDecision(`waiting: ${error.reason}`);
          }
          await sleep(2000, undefined, { signal });
        }
      }

      enter('overlay');
      // What crosses the link in the base phase: the disk files' data, not their holes or virtual sizes.
      const allocated = await Promise.all(disks.map(async (disk) => stat(disk.file)));
      const baseTotal = allocated.reduce((sum, { size, blocks }) => sum + Math.min(size, blocks * 512), 0);
      for (const [index, disk] of disks.entries()) await putOverlay(inner, qmp, disk, index, sizes.get(disk.nodeName) ?? 0, revert);
      const loopMigration: LoopMigration = {
        id: ctx.id,
        peer: ctx.peer.name,
        qmp,
        events: ctx.vm.qmp,
        overlays: disks.map((disk, index) => ({ id: `${ctx.id}/${disk.id}`, path: overlayPath(ctx, disk), qmp, nodeName: overlayNode(index), fileNode: overlayFileNode(index), qdev: disk.id })),
        throttleTargets: disks.map((disk) => throttleTarget(disk)),
        baseline: disks.map((disk) => limits.get(disk.id) ?? {}),
        remainingBytes: baseTotal + ctx.vm.spec.memoryMiB * 1024 ** 2,
        phase: 'base',
        throttleFactor: 1,
        throttled: true,
        lastApplied: undefined,
        policy: ctx.policy,
      };
      ctx.loop.add(loopMigration);
      revert.add(() => ctx.loop.lift(ctx.id));

      enter('base');
      ctx.onProgress({ baseSent: 0, baseTotal });
      await shipBases(
        {
          ...inner,
          targetTakesDatasets: prepared?.zfs === true,
          onShipped: (baseSent) => {
            loopMigration.remainingBytes = Math.max(0, baseTotal - baseSent) + ctx.vm.spec.memoryMiB * 1024 ** 2;
            ctx.onProgress({ baseSent, baseTotal });
          },
        },
        disks,
        revert,
      );

      enter('target');
      const setup = migrationSetup(ctx.convergence, ctx.vm.spec.memoryMiB * 1024 ** 2, baseTotal, ctx.links.estimate(ctx.peer.name)?.rate ?? 0);
      await client.request(
        {
          method: 'start-target',
          migration: ctx.id,
          capabilities: { 'postcopy-ram': setup.capabilities['postcopy-ram'] ?? false, multifd: setup.capabilities.multifd ?? false },
          ...(setup.parameters['multifd-channels'] ? { multifdChannels: setup.parameters['multifd-channels'] } : {}),
        },
        { signal },
      );

      enter('mirror');
      for (const stream of ['nbd', 'ram'] as const) {
        const proxy = await proxyToPeer(join(ctx.runDir, `${ctx.id}-${stream}.sock`), ctx.peer, ctx.identity, ctx.id, stream, (socket) => ctx.links.track(ctx.peer.name, socket.raw, stream, socket.tls));
        proxies.push(proxy);
      }
      const nbdProxy = proxies[0] as LocalProxy;
      for (const [index, disk] of disks.entries()) {
        // QEMU waits on the NBD handshake while the proxy dials the peer (a cut link may come back).
        await qmp.blockdevAdd({ driver: 'nbd', 'node-name': nbdNode(index), server: { type: 'unix', path: nbdProxy.path }, export: disk.id }).catch((error: Error) => {
          throw new PeerError(`the NBD export of ${disk.id} on ${ctx.peer.name} could not be reached: ${error.message}`, { cause: error });
        });
        revert.add(() => qmp.blockdevDel(nbdNode(index)));
      }
      revert.add(() => cancelMirrors(qmp, disks.length));
      loopMigration.phase = 'mirror';
      await mirrorUntilReady(inner, qmp, disks.length, loopMigration);

      enter('ram');
      loopMigration.phase = 'ram';
      const multifdChannels = setup.parameters['multifd-channels'];
      ctx.onDecision(`RAM migration: ${multifdChannels ? `multifd with ${multifdChannels} channels` : 'one stream'}, auto-converge ${setup.capabilities['auto-converge'] ? `only if dirtying outpaces the link (${ctx.convergence.throttleTriggerPercent} %)` : 'off'}, post-copy ${setup.capabilities['postcopy-ram'] ? 'allowed' : 'off'}`);
      await qmp.migrateSetCapabilities(setup.capabilities, { signal });
      const { known, unknown } = supportedParameters(setup.parameters, await qmp.queryMigrateParameters({ signal }));
      if (unknown.length > 0) ctx.onDecision(`this QEMU has no migration parameter ${unknown.join(', ')}: left at its default`);
      await qmp.migrateSetParameters(known, { signal });
      // One listener for the whole RAM phase, made before `migrate`: no event can slip past.
      const watch = ctx.vm.qmp.listen('MIGRATION', 'STOP', 'BLOCK_JOB_ERROR', 'JOB_STATUS_CHANGE');
      revert.add(() => watch.close());
      revert.add(() => cancelMigration(qmp));
      await qmp.migrate(`unix:${(proxies[1] as LocalProxy).path}`, { signal });
      const stopped = await convergeUntilPaused(inner, qmp, setup, loopMigration, watch);

      enter('switchover');
      // Lift the throttle while the guest is paused: no throttled request may be queued across
      // the switchover (destination guests crashed when migrated with a throttle active).
      await ctx.loop.lift(ctx.id);
      await finishMirrors(qmp, ctx.vm.qmp, disks.length);
      const mirrorsDoneAt = Date.now();
      await qmp.migrateContinue('pre-switchover');
      // After a post-copy switch QEMU reports postcopy-active, not completed: the guest must run
      // on the target from then on (its pages follow on demand), so that too is the point of no return.
      const done = await watch.waitFor((e) => e.event === 'MIGRATION' && RAM_SETTLED.has(String(e.data.status)), { timeoutMs: 120_000, signal });
      watch.close();
      if (!RAM_HANDED_OVER.has(String(done.data.status))) throw new CowbufError(`RAM migration ended ${String(done.data.status)}`);
      if (done.data.status === 'postcopy-active') ctx.onDecision('post-copy: the guest resumes on the target; the RAM it has not received yet follows as it faults');
      return { stoppedAt: stopped, mirrorsDoneAt, completedAt: eventTime(done) };
    });
  } catch (error) {
    const reason = signal.aborted && signal.reason instanceof Error ? signal.reason : (error as Error);
    ctx.onPhase(reason instanceof CancelledError ? 'cancelled' : 'failed');
    await closeAll();
    throw new MigrationFailedError(ctx.id, phase, reason.message, { cause: reason });
  }
  // The point of no return: the guest is the target's to resume. The NBD clients go first, so
  // the target's exports are free the moment it is told to finish.
  phase = 'finishing';
  ctx.onPhase('finishing');
  for (const index of disks.keys()) await qmp.blockdevDel(nbdNode(index)).catch(() => undefined);
  const ramProxy = proxies[1] as LocalProxy | undefined;
  const info = await qmp.queryMigrate().catch(() => undefined);
  const handoff = await completeHandoff(
    {
      migration: ctx.id,
      peer: ctx.peer,
      identity: ctx.identity,
      shipping: ctx.shipping,
      signal: ctx.signal,
      decided: ctx.decided,
      ...(control ? { client: control } : {}),
      ...(ramProxy ? { ramUri: `unix:${ramProxy.path}` } : {}),
      onStall: (reason) => ctx.onDecision(reason),
      departed: ctx.departed,
      onDoubt: (reason) => {
        ctx.onDecision(`in doubt: the target has not answered \`finish\` (${reason}); both copies stay paused until it does or an admin resolves it`);
        ctx.onPhase('in-doubt');
      },
    },
    ctx.vm,
    ctx.bufferPath,
    disks.map((disk) => disk.id),
  ).finally(closeAll);
  const final = handoff.side === 'target' ? (handoff.sent ?? info) : info;
  // Counted after the handoff: a post-copy resumed on a new stream dialled one more.
  ctx.onProgress({ ramTransferred: final?.ram?.transferred ?? 0, ramStreams: ramProxy?.connections() ?? 0, postcopyRequests: final?.ram?.['postcopy-requests'] ?? 0 });
  if (handoff.side === 'source') {
    ctx.onDecision(`${handoff.reason}: the guest was resumed here`);
    ctx.onPhase('failed');
    throw new MigrationFailedError(ctx.id, 'finishing', handoff.reason);
  }
  if (handoff.answer) {
    const { stoppedAt, mirrorsDoneAt, completedAt } = marks;
    const { contAt, resumedAt } = handoff.answer;
    ctx.onBlackout({
      ms: resumedAt - stoppedAt,
      qemuDowntimeMs: info?.downtime ?? 0,
      parts: { mirrors: mirrorsDoneAt - stoppedAt, lastRamPass: completedAt - mirrorsDoneAt, handoff: contAt - completedAt, cont: resumedAt - contAt },
      stoppedAt: new Date(stoppedAt).toISOString(),
      resumedAt: new Date(resumedAt).toISOString(),
    });
  } else {
    ctx.onDecision("an admin resolved it: the guest is the target's");
  }
  ctx.onPhase('completed');
}

/** The limits an admin set, by disk id, for the drives that have any (`query-block` reports all zeros for one nobody limited). */
function adminLimits(entries: ReadonlyArray<{ readonly qdev: string; readonly limits: IoLimits }>, disks: readonly DiskSpec[]): Map<string, IoLimits> {
  const limited = new Map<string, IoLimits>();
  for (const disk of disks) {
    const limits = entries.find((entry) => deviceIdOf(entry.qdev) === disk.id)?.limits;
    if (limits && Object.entries(limits).some(([key, value]) => key === 'group' || value !== 0)) limited.set(disk.id, limits);
  }
  return limited;
}

function overlayPath(ctx: SourceContext, disk: DiskSpec): string {
  return join(ctx.bufferPath, `${overlayName(ctx.id, disk.id)}.qcow2`);
}

/** Overlay file in the buffer, node added, made active; one undo that fits the stage reached. */
async function putOverlay(ctx: SourceContext, qmp: QmpCommands, disk: DiskSpec, index: number, virtualSize: number, revert: Revert): Promise<void> {
  const node = overlayNode(index);
  let stage: 'file' | 'node' | 'active' = 'file';
  const path = await createOverlay(ctx.bufferPath, overlayName(ctx.id, disk.id), { path: disk.file, format: disk.format, virtualSize }, { signal: ctx.signal });
  revert.add(async () => {
    if (stage === 'active') await commitBack(qmp, node, index);
    if (stage !== 'file') await qmp.blockdevDel(node);
    await removeOverlay(ctx.bufferPath, overlayName(ctx.id, disk.id));
  });
  await qmp.blockdevAdd({ driver: 'qcow2', 'node-name': node, file: { driver: 'file', 'node-name': overlayFileNode(index), filename: path }, backing: null });
  stage = 'node';
  await qmp.blockdevSnapshot(disk.nodeName, node);
  stage = 'active';
}

/**
 * The bounded disk phase: mirrors start in background mode; if they are not ready by the
 * deadline while the overlay grows, the throttle tightens, then the mirrors restart in
 * write-blocking mode (which converges however fast the guest writes), then the migration aborts.
 */
async function mirrorUntilReady(ctx: SourceContext, qmp: QmpCommands, count: number, migration: LoopMigration): Promise<void> {
  const start = async (mode: 'background' | 'write-blocking') => {
    for (let index = 0; index < count; index += 1) {
      await qmp.blockdevMirror({ jobId: mirrorJob(index), device: overlayNode(index), target: nbdNode(index), sync: 'top', copyMode: mode, filterNodeName: mirrorFilterNode(index) }, { signal: ctx.signal });
    }
  };
  const ready = async (seconds: number): Promise<boolean> => {
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
      ctx.signal.throwIfAborted();
      const jobs = (await qmp.queryBlockJobs({ signal: ctx.signal })).filter((job) => job.device.startsWith('cowbuf-mirror'));
      const failed = jobs.find((job) => job.status === 'concluded' || job.status === 'aborting');
      if (failed) throw new CowbufError(`mirror ${failed.device} stopped (${failed.status})`);
      const remaining = jobs.reduce((sum, job) => sum + Math.max(0, job.len - job.offset), 0);
      migration.remainingBytes = remaining + ctx.vm.spec.memoryMiB * 1024 ** 2;
      ctx.onProgress({ mirrorRemaining: remaining, mirrorCopied: jobs.reduce((sum, job) => sum + job.offset, 0) });
      if (jobs.length === count && jobs.every((job) => job.ready)) return true;
      await sleep(250, undefined, { signal: ctx.signal });
    }
    return false;
  };
  const seconds = ctx.mirrorReadySeconds;
  await start('background');
  if (await ready(seconds)) return;
  ctx.onDecision(`mirror not ready after ${seconds} s: throttle tightened to a quarter`);
  migration.throttleFactor = 0.25;
  if (await ready(seconds / 2)) return;
  ctx.onDecision('mirror still not ready: restarting it in write-blocking mode');
  await cancelMirrors(qmp, count);
  await start('write-blocking');
  if (await ready(seconds)) return;
  throw new CowbufError(`the disk mirror did not become ready within ${Math.round(seconds * 2.5)} s`);
}

/**
 * Runs the RAM phase until QEMU pauses the guest at pre-switchover, woken by QEMU's events (a
 * poll would add its period to the blackout) and sampling progress every half second for the
 * convergence policy. A mirror that fails meanwhile ends the migration at once: its target copy
 * is incomplete, and would only be found so at the switchover. Returns the STOP time (ms).
 */
async function convergeUntilPaused(ctx: SourceContext, qmp: QmpCommands, setup: ReturnType<typeof migrationSetup>, migration: LoopMigration, watch: EventListener): Promise<number> {
  const clock = () => performance.now() / 1000;
  let state = startConvergence(ctx.convergence, clock());
  let stoppedAt: number | undefined;
  let throttled = 0;
  for (let sampleAt = 0; ; ) {
    if (Date.now() >= sampleAt) {
      sampleAt = Date.now() + 500;
      const info = await qmp.queryMigrate({ signal: ctx.signal });
      if (info.status === 'pre-switchover') return stoppedAt ?? Date.now();
      if (RAM_FAILED.has(info.status ?? '')) throw new CowbufError(`RAM migration ${info.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
      throttled = Math.max(throttled, info['cpu-throttle-percentage'] ?? 0);
      // Only a running pass counts bytes: in `setup` QEMU reports no `ram` at all, and reading
      // that as 0 remaining would make the stall detector fire on a migration just starting.
      if ((info.status === 'active' || info.status === 'device') && info.ram) {
        const remaining = info.ram.remaining;
        migration.remainingBytes = remaining;
        ctx.onProgress({ ramRemaining: remaining, ramTotal: info.ram.total, ramTransferred: info.ram.transferred, downtimeLimitMs: state.downtimeMs, cpuThrottlePercent: throttled });
        const step = decide(ctx.convergence, setup, state, { t: clock(), remaining, transferred: info.ram.transferred });
        state = step.state;
        for (const action of step.actions) {
          if (action.kind === 'set-downtime') {
            ctx.onDecision(`downtime limit raised to ${action.ms} ms`);
            await qmp.migrateSetParameters({ 'downtime-limit': action.ms }, { signal: ctx.signal });
          } else if (action.kind === 'cpu-throttle') {
            // QEMU steps its own throttle (auto-converge is on); the log says when it should have.
            ctx.onDecision(`RAM dirtied faster than the link carried it: auto-converge throttles the guest CPU to ${action.percent} %`);
          } else if (action.kind === 'start-postcopy') {
            ctx.onDecision(`switching to post-copy: ${action.reason}`);
            await qmp.migrateStartPostcopy();
          } else {
            ctx.onDecision(`aborting RAM migration: ${action.reason}`);
            throw new CowbufError(`RAM migration did not converge: ${action.reason}`);
          }
        }
      }
    }
    const event = await watch.next({ timeoutMs: Math.max(1, sampleAt - Date.now()), signal: ctx.signal }).catch((error: unknown) => {
      if (ctx.signal.aborted) throw error;
      return undefined;
    });
    if (!event) continue;
    if (event.event === 'STOP') stoppedAt = eventTime(event);
    else if (event.event === 'MIGRATION' && event.data.status === 'pre-switchover') return stoppedAt ?? Date.now();
    else if (event.event === 'MIGRATION' && RAM_FAILED.has(String(event.data.status))) sampleAt = 0;
    else mirrorFailure(event);
  }
}

/** @throws CowbufError when `event` says one of this migration's mirrors failed */
function mirrorFailure(event: QmpEvent): void {
  const job = String(event.data.device ?? event.data.id ?? '');
  if (!job.startsWith(mirrorJob(0).slice(0, -1))) return;
  if (event.event === 'BLOCK_JOB_ERROR') throw new CowbufError(`mirror ${job} failed writing to the target (${String(event.data.operation)} error): its copy is incomplete`);
  if (event.event === 'JOB_STATUS_CHANGE' && (event.data.status === 'aborting' || event.data.status === 'concluded')) throw new CowbufError(`mirror ${job} stopped (${String(event.data.status)}) during the RAM phase`);
}
