/**
 * The handoff (DESIGN §10). Ownership of the guest moves exactly once: when the source's QEMU
 * reports `completed`, its copy is the target's to resume. From then on the source asks the target
 * to `finish` until it gets an answer, and it may take its own copy back only when the target
 * answers that its copy did not run and never will. While no answer comes the migration is in
 * doubt: both copies stay paused, and it ends when the target answers or when an admin names the
 * side to resume — never on a timer, which is how a partition would otherwise run the guest twice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CowbufError, InDoubtError, PeerRequestError } from '../errors.js';
import { ControlClient } from '../peer/channel.js';
import type { Identity } from '../peer/identity.js';
import type { TrustedPeer } from '../peer/trust.js';
import { removeOverlay } from '../storage/overlays.js';
import type { DiskShipping } from '../storage/shipping.js';
import { parseFinish, type FinishAnswer } from '../peer/protocol.js';
import type { MigrationInfo } from '../qmp/commands.js';
import type { ManagedVm } from '../vm/provider.js';
import { POSTCOPY_STALL_MS, RESUME_CONNECT_MS, resumePostcopy } from './postcopy.js';
import { commitBack, ensureRunning, overlayName, overlayNode, RAM_FAILED } from './qemu-steps.js';

export type Side = 'source' | 'target';

export type Handoff =
  /**
   * The guest is the target's: `answer` is the target's word, absent when an admin decided;
   * `sent` is QEMU's last report once every page crossed (post-copy included).
   */
  | { readonly side: 'target'; readonly answer?: Extract<FinishAnswer, { outcome: 'running' }>; readonly sent?: MigrationInfo }
  | { readonly side: 'source'; readonly reason: string };

export interface HandoffContext {
  readonly migration: string;
  readonly peer: TrustedPeer | undefined;
  readonly identity: Identity;
  /** What shipping the bases left on this host goes with the guest, or stays with it. */
  readonly shipping: Pick<DiskShipping, 'release' | 'abandon'>;
  /** Daemon shutdown: stop asking; the journal keeps the migration in doubt for the next start. */
  readonly signal: AbortSignal;
  /** Settles when an admin names the side to resume (`cowbuf resolve`). */
  readonly decided: Promise<Side>;
  /** The first unanswered `finish`: the migration is in doubt from now on. */
  readonly onDoubt: (reason: string) => void;
  /** Post-copy stopped making progress after the target took the guest (ownership is not in doubt). */
  readonly onStall: (reason: string) => void;
  readonly retryMs?: number;
  /** The local RAM proxy's URI, for a post-copy stream that must be carried on over a new one. */
  readonly ramUri?: string;
  /** The migration's open control connection: the first `finish` needs no new handshake. */
  readonly client?: ControlClient;
  /** The target took the guest and every page crossed: the VM provider retires this copy. */
  readonly departed: (vm: ManagedVm) => Promise<void>;
}

/** One `finish` to the target; the target makes it idempotent and bounds its own wait. */
async function ask(ctx: HandoffContext, method: 'finish' | 'abort' | 'recover', signal: AbortSignal, open?: ControlClient): Promise<FinishAnswer | undefined> {
  if (!ctx.peer) throw new PeerRequestError('(untrusted)', 'the target is no longer trusted');
  const client = open ?? (await ControlClient.open(ctx.peer, ctx.identity, { timeoutMs: 10_000, signal }));
  try {
    const result = await client.request({ method, migration: ctx.migration }, { timeoutMs: 30_000, signal });
    return method === 'finish' ? parseFinish(result) : undefined;
  } finally {
    client.close();
  }
}

/**
 * Resolves to the side that owns the guest. @throws InDoubtError when the signal stopped it
 * before anyone knew (the migration stays in doubt).
 */
export async function handOff(ctx: HandoffContext): Promise<Handoff> {
  let decision: Side | undefined;
  const woken = new AbortController();
  void ctx.decided.then((side) => {
    decision = side;
    woken.abort();
  });
  const signal = AbortSignal.any([ctx.signal, woken.signal]);
  let doubt: string | undefined;
  for (let attempt = 0; ; attempt += 1) {
    if (decision) return decided(ctx, decision);
    if (ctx.signal.aborted) throw new InDoubtError(ctx.migration, doubt ?? 'stopped before the target answered');
    try {
      const answer = (await ask(ctx, 'finish', ctx.signal, attempt === 0 ? ctx.client : undefined)) as FinishAnswer;
      if (answer.outcome === 'running') return { side: 'target', answer };
      return { side: 'source', reason: `the target's copy did not run and never will: ${answer.reason}` };
    } catch (error) {
      if (doubt === undefined) {
        doubt = (error as Error).message;
        ctx.onDoubt(doubt);
      }
    }
    await sleep(ctx.retryMs ?? 2000, undefined, { signal }).catch(() => undefined);
  }
}

/**
 * An admin named the side. Resuming the source still asks the target to abort first: a target
 * that refuses because its copy runs wins over the admin, since resuming here too would put the
 * guest in two places; an unreachable target leaves the admin's word standing.
 */
async function decided(ctx: HandoffContext, side: Side): Promise<Handoff> {
  if (side === 'target') return { side };
  try {
    await ask(ctx, 'abort', AbortSignal.timeout(40_000));
  } catch (error) {
    if (error instanceof PeerRequestError && error.refused) return { side: 'target' };
  }
  return { side: 'source', reason: 'an admin resolved it: resume on the source' };
}

/**
 * Hands the guest over, then tidies the copy on this side: stopped if the target took it,
 * resumed if not. `vm` is absent when the source's QEMU died after completing (a restart found
 * it gone): then only the target's copy can run.
 * @throws CowbufError when neither copy can run (the overlays are kept: they hold its writes)
 */
export async function completeHandoff(ctx: HandoffContext, vm: ManagedVm | undefined, bufferPath: string, disks: readonly string[]): Promise<Handoff> {
  const handoff = await handOff(ctx);
  if (handoff.side === 'source') {
    if (!vm) throw new CowbufError(`${handoff.reason}, and the source's QEMU is gone: the guest runs nowhere; its overlays are kept in the buffer`);
    await takeBack(vm, ctx, bufferPath);
    return handoff;
  }
  const sent = vm ? await untilSent(vm, ctx) : undefined;
  if (vm) await ctx.departed(vm);
  for (const disk of disks) await removeOverlay(bufferPath, overlayName(ctx.migration, disk));
  await ctx.shipping.release(ctx.migration);
  return sent ? { ...handoff, sent } : handoff;
}

/**
 * In post-copy the target runs the guest while this QEMU still holds the pages it has not sent:
 * it must live until QEMU says `completed`. Timed by progress, not by a constant: as long as
 * pages keep crossing it waits. A stream that stopped is carried on over a new one
 * (postcopy.ts) when there is a RAM proxy to dial it; otherwise the stall is reported, since
 * nothing can take the guest back.
 */
async function untilSent(vm: ManagedVm, ctx: HandoffContext): Promise<MigrationInfo | undefined> {
  let transferred = -1;
  let movedAt = Date.now();
  let reported = false;
  for (;;) {
    const info = await vm.commands.queryMigrate();
    if (info.status === 'completed') return info;
    if (info.status === undefined) return undefined;
    if (RAM_FAILED.has(info.status)) throw new CowbufError(`post-copy ended ${info.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}; the guest on the target has lost the pages it had not received`);
    if (info.status === 'postcopy-paused' && ctx.ramUri) {
      ctx.onStall(`post-copy paused with ${info.ram?.remaining ?? 0} bytes left: resuming it on a new stream once the target answers`);
      const connected = await resumePostcopy(vm.commands, ctx.ramUri, () => ask(ctx, 'recover', ctx.signal), ctx.retryMs ?? 2000, ctx.signal);
      ctx.onStall(connected ? 'post-copy resumed on a new stream' : `post-copy still paused ${RESUME_CONNECT_MS / 1000} s after its resume: its new stream did not connect`);
      movedAt = Date.now();
      continue;
    }
    const now = info.ram?.transferred ?? 0;
    if (now > transferred) {
      transferred = now;
      movedAt = Date.now();
      reported = false;
    } else if (info.status === 'postcopy-active' && ctx.ramUri && Date.now() - movedAt > POSTCOPY_STALL_MS) {
      ctx.onStall(`post-copy moved nothing for ${POSTCOPY_STALL_MS / 1000} s: pausing its stream`);
      await vm.commands.migratePause();
      continue;
    } else if (!reported && Date.now() - movedAt > 30_000) {
      reported = true;
      ctx.onStall(`post-copy has sent nothing for 30 s (${info.status}, ${info.ram?.remaining ?? 0} bytes left)`);
    }
    await sleep(500);
  }
}

/**
 * The target's copy never ran, so the source takes its guest back after RAM completed. QEMU
 * inactivated the images at `completed`: `cont` re-activates them before the overlays are
 * committed down, and the guest runs again whatever else fails.
 */
async function takeBack(vm: ManagedVm, ctx: HandoffContext, bufferPath: string): Promise<void> {
  const { migration } = ctx;
  const qmp = vm.commands;
  try {
    await ensureRunning(qmp);
    const nodes = new Set((await qmp.queryNamedBlockNodes()).map((node) => node['node-name']));
    for (const [index, disk] of vm.spec.disks.entries()) {
      if (!nodes.has(overlayNode(index))) continue;
      await commitBack(qmp, overlayNode(index), index);
      await qmp.blockdevDel(overlayNode(index));
      await removeOverlay(bufferPath, overlayName(migration, disk.id));
    }
    await ctx.shipping.abandon(migration);
  } finally {
    await ensureRunning(qmp);
  }
}
