/**
 * The sending role: one migration of one VM, the flow of DESIGN §1, each step registering its
 * undo on a revert stack. Until the target confirms the VM runs there, the source is
 * authoritative: any failure or cancel unwinds in reverse (migrate_cancel, cancel the mirror,
 * drop the NBD path, abort the target, lift the throttle, commit the overlay back into the base,
 * make sure the guest runs) and the guest keeps running here with every write it made.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BufferFullError, CancelledError, CowbufError, MigrationFailedError, PeerRequestError } from '../errors.js';
import type { ThrottlePolicy } from '../buffer/throttle/policy.js';
import type { LinkTracker } from '../monitor/link-tracker.js';
import { ControlClient } from '../peer/channel.js';
import type { Identity } from '../peer/identity.js';
import type { WireVm } from '../peer/protocol.js';
import { proxyToPeer, type LocalProxy } from '../peer/transfer.js';
import type { TrustedPeer } from '../peer/trust.js';
import type { QmpCommands } from '../qmp/commands.js';
import { Revert } from '../revert.js';
import { createOverlay, removeOverlay } from '../storage/overlays.js';
import { zfsDestroy } from '../storage/zfs/zfs-commands.js';
import type { Json } from '../validate.js';
import type { RunningVm } from '../vm/launcher.js';
import { throttleTarget, type DiskSpec } from '../vm/spec.js';
import type { ControlLoop, LoopMigration } from './control-loop.js';
import { shipBases } from './base.js';
import { decide, migrationSetup, startConvergence, type ConvergenceConfig } from './convergence.js';
import { cancelMigration, cancelMirrors, commitBack, ensureRunning, finishMirrors, mirrorJob, nbdNode, overlayName, overlayNode } from './qemu-steps.js';

export type Phase = 'queued' | 'overlay' | 'prepare' | 'base' | 'target' | 'mirror' | 'ram' | 'switchover' | 'finishing' | 'completed' | 'rolling-back' | 'failed' | 'cancelled';

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
}

export interface SourceContext {
  readonly id: string;
  readonly vm: RunningVm;
  readonly peer: TrustedPeer;
  readonly identity: Identity;
  readonly bufferPath: string;
  readonly runDir: string;
  readonly loop: ControlLoop;
  readonly links: LinkTracker;
  readonly convergence: ConvergenceConfig;
  /** Floor of the mirror's deadline to become ready, before escalating. */
  readonly mirrorReadySeconds: number;
  readonly policy: ThrottlePolicy;
  readonly signal: AbortSignal;
  readonly onPhase: (phase: Phase) => void;
  readonly onProgress: (progress: Partial<Progress>) => void;
  /** Every decision the engine takes on its own (escalations, convergence steps), for the log. */
  readonly onDecision: (message: string) => void;
}

/** Resolves when the migration completed and the VM runs on the target. @throws MigrationFailedError */
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
  let snapshot: string | undefined;
  const proxies: LocalProxy[] = [];
  try {
    await Revert.run(async (revert) => {
      revert.add(() => ensureRunning(qmp));
      enter('prepare');
      // The target admits at most K incoming migrations: while it is busy, wait, visibly.
      const client = await ControlClient.open(ctx.peer, ctx.identity, { signal });
      control = client;
      let prepared: Json | undefined;
      const sizes = new Map((await qmp.queryNamedBlockNodes()).map((node) => [node['node-name'], node.image['virtual-size']]));
      for (let waited = false; ; waited = true) {
        try {
          prepared = await client.request({ method: 'prepare', migration: ctx.id, vm: wireVm(ctx.vm, sizes) });
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
      revert.add(async () => void (await client.request({ method: 'abort', migration: ctx.id }, 30_000)));

      enter('overlay');
      // What crosses the link in the base phase: the disk files as they are, not their virtual sizes.
      const baseTotal = (await Promise.all(disks.map(async (disk) => (await stat(disk.file)).size))).reduce((a, b) => a + b, 0);
      for (const [index, disk] of disks.entries()) await putOverlay(inner, qmp, disk, index, sizes.get(disk.nodeName) ?? 0, revert);
      const loopMigration: LoopMigration = {
        id: ctx.id,
        peer: ctx.peer.name,
        qmp,
        overlays: disks.map((disk, index) => ({ id: `${ctx.id}/${disk.id}`, path: overlayPath(ctx, disk), qmp, nodeName: overlayNode(index), qdev: disk.id })),
        throttleTargets: disks.map((disk) => throttleTarget(disk)),
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
      snapshot = await shipBases(
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
      await client.request({
        method: 'start-target',
        migration: ctx.id,
        capabilities: { 'postcopy-ram': setup.capabilities['postcopy-ram'] ?? false, multifd: setup.capabilities.multifd ?? false },
        ...(setup.parameters['multifd-channels'] ? { multifdChannels: setup.parameters['multifd-channels'] } : {}),
      });

      enter('mirror');
      for (const stream of ['nbd', 'ram'] as const) {
        const proxy = await proxyToPeer(join(ctx.runDir, `${ctx.id}-${stream}.sock`), ctx.peer, ctx.identity, ctx.id, stream, (socket) => ctx.links.track(ctx.peer.name, socket.raw, stream));
        proxies.push(proxy);
      }
      const nbdProxy = proxies[0] as LocalProxy;
      for (const [index, disk] of disks.entries()) {
        await qmp.blockdevAdd({ driver: 'nbd', 'node-name': nbdNode(index), server: { type: 'unix', path: nbdProxy.path }, export: disk.id });
        revert.add(() => qmp.blockdevDel(nbdNode(index)));
      }
      revert.add(() => cancelMirrors(qmp, disks.length));
      loopMigration.phase = 'mirror';
      await mirrorUntilReady(inner, qmp, disks.length, loopMigration);

      enter('ram');
      loopMigration.phase = 'ram';
      const multifdChannels = setup.parameters['multifd-channels'];
      ctx.onDecision(`RAM migration: ${multifdChannels ? `multifd with ${multifdChannels} channels` : 'one stream'}, auto-converge ${setup.capabilities['auto-converge'] ? 'on' : 'off'}, post-copy ${setup.capabilities['postcopy-ram'] ? 'allowed' : 'off'}`);
      await qmp.migrateSetCapabilities(setup.capabilities);
      await qmp.migrateSetParameters(setup.parameters);
      const events = ctx.vm.qmp.listen('MIGRATION');
      revert.add(() => cancelMigration(qmp));
      await qmp.migrate(`unix:${(proxies[1] as LocalProxy).path}`);
      await convergeUntilPaused(inner, qmp, setup, loopMigration);

      enter('switchover');
      // Lift the throttle while the guest is paused: no throttled request may be queued across
      // the switchover (destination guests crashed when migrated with a throttle active).
      await ctx.loop.lift(ctx.id);
      await finishMirrors(qmp, disks.length);
      await qmp.migrateContinue('pre-switchover');
      const done = await events.waitFor((e) => ['completed', 'failed', 'cancelled'].includes(String(e.data.status)), { timeoutMs: 120_000, signal: signal });
      events.close();
      if (done.data.status !== 'completed') throw new CowbufError(`RAM migration ended ${String(done.data.status)}`);
      ctx.onProgress({ ramTransferred: (await qmp.queryMigrate()).ram?.transferred ?? 0, ramStreams: (proxies[1] as LocalProxy).connections() });

      enter('finishing');
      await client.request({ method: 'finish', migration: ctx.id }, 60_000);
    });
  } catch (error) {
    const reason = signal.aborted && signal.reason instanceof Error ? signal.reason : (error as Error);
    ctx.onPhase(reason instanceof CancelledError ? 'cancelled' : 'failed');
    throw new MigrationFailedError(ctx.id, phase, reason.message, { cause: reason });
  } finally {
    ioErrors.close();
    ctx.signal.removeEventListener('abort', forward);
    control?.close();
    for (const proxy of proxies) await proxy.close();
  }
  // The VM runs on the target now; what is left here is only cleanup.
  for (const index of disks.keys()) await qmp.blockdevDel(nbdNode(index)).catch(() => undefined);
  await ctx.vm.stop();
  for (const disk of disks) await removeOverlay(ctx.bufferPath, overlayName(ctx.id, disk.id));
  if (snapshot) await zfsDestroy(snapshot).catch((error: Error) => ctx.onDecision(`left snapshot ${snapshot} behind: ${error.message}`));
  ctx.onPhase('completed');
}

function overlayPath(ctx: SourceContext, disk: DiskSpec): string {
  return join(ctx.bufferPath, `${overlayName(ctx.id, disk.id)}.qcow2`);
}

function wireVm(vm: RunningVm, sizes: ReadonlyMap<string, number>): WireVm {
  const { name, memoryMiB, vcpus, kernel, initrd, append } = vm.spec;
  return {
    name,
    memoryMiB,
    vcpus,
    ...(kernel ? { kernel } : {}),
    ...(initrd ? { initrd } : {}),
    ...(append ? { append } : {}),
    disks: vm.spec.disks.map((disk) => ({ id: disk.id, nodeName: disk.nodeName, format: disk.format, virtualSize: sizes.get(disk.nodeName) ?? 0 })),
  };
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
  await qmp.blockdevAdd({ driver: 'qcow2', 'node-name': node, file: { driver: 'file', filename: path }, backing: null });
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
      await qmp.blockdevMirror({ jobId: mirrorJob(index), device: overlayNode(index), target: nbdNode(index), sync: 'top', copyMode: mode });
    }
  };
  const ready = async (seconds: number): Promise<boolean> => {
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
      ctx.signal.throwIfAborted();
      const jobs = (await qmp.queryBlockJobs()).filter((job) => job.device.startsWith('cowbuf-mirror'));
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

/** Polls query-migrate until pre-switchover, applying the convergence policy's actions. */
async function convergeUntilPaused(ctx: SourceContext, qmp: QmpCommands, setup: ReturnType<typeof migrationSetup>, migration: LoopMigration): Promise<void> {
  const clock = () => performance.now() / 1000;
  let state = startConvergence(ctx.convergence, clock());
  for (;;) {
    const info = await qmp.queryMigrate();
    if (info.status === 'pre-switchover') return;
    if (info.status === 'failed' || info.status === 'cancelled') throw new CowbufError(`RAM migration ${info.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
    const remaining = info.ram?.remaining ?? 0;
    migration.remainingBytes = remaining;
    ctx.onProgress({ ramRemaining: remaining, ramTotal: info.ram?.total ?? 0, ramTransferred: info.ram?.transferred ?? 0, downtimeLimitMs: state.downtimeMs });
    const step = decide(ctx.convergence, setup, state, { t: clock(), remaining, transferred: info.ram?.transferred ?? 0 });
    state = step.state;
    for (const action of step.actions) {
      if (action.kind === 'set-downtime') {
        ctx.onDecision(`downtime limit raised to ${action.ms} ms`);
        await qmp.migrateSetParameters({ 'downtime-limit': action.ms });
      } else if (action.kind === 'cpu-throttle') {
        // QEMU steps its own throttle (auto-converge is on); the log says when it should have.
        ctx.onDecision(`RAM dirtied faster than half the link: auto-converge throttles the guest CPU to ${action.percent} %`);
      } else if (action.kind === 'start-postcopy') {
        ctx.onDecision(`switching to post-copy: ${action.reason}`);
        await qmp.migrateStartPostcopy();
      } else {
        ctx.onDecision(`aborting RAM migration: ${action.reason}`);
        throw new CowbufError(`RAM migration did not converge: ${action.reason}`);
      }
    }
    await sleep(500, undefined, { signal: ctx.signal });
  }
}
