/**
 * One simulated migration's physics over a tick, phase by phase as the engine drives it
 * (src/migration/source.ts):
 * - base: the frozen base crosses the link; guest writes only grow the overlay;
 * - mirror: background first (writes dirty the overlay, the mirror copies what is dirty); not
 *   ready after `mirrorReadySeconds` tightens γ to a quarter, not ready half that again restarts
 *   it write-blocking (from scratch: the whole overlay again; writes now cross synchronously and
 *   take at most half the share), and not ready after that fails the migration;
 * - ram: the ready mirror keeps copying, pre-copy sends RAM and the guest re-dirties it from the
 *   first page on; the engine's own convergence policy (`decide`) steps the downtime limit,
 *   follows auto-converge's CPU throttle and aborts or switches to post-copy; switchover once
 *   what is left fits the downtime limit at the link share.
 */
import { EPSILON } from '../buffer/throttle/policy.js';
import { decide, migrationSetup, startConvergence, type ConvergenceConfig, type ConvergenceState, type MigrationSetup } from '../migration/convergence.js';
import type { MigrationStatus, Phase } from './report.js';
import type { ScenarioMigration } from './scenario.js';

/** The engine's escalation factor once the mirror is late (source.ts `mirrorUntilReady`). */
const LATE_MIRROR_THROTTLE_FACTOR = 0.25;
/** A guest counts as starved while it wants more than γ and γ is within this many ε of the floor. */
const STARVED_EPSILONS = 3;
const FLOOR_EPSILONS = 2;

type Mirror = 'background' | 'tightened' | 'write-blocking';

export interface Run {
  readonly spec: ScenarioMigration;
  phase: Phase | 'waiting' | MigrationStatus;
  baseLeft: number;
  /** When the base had crossed: the target's QEMU starts then, the mirror once it runs. */
  baseDoneAt: number | undefined;
  cow: number;
  /** Overlay bytes the mirror has still to copy. */
  backlog: number;
  mirror: Mirror;
  mirrorSince: number;
  /** RAM QEMU still counts as to send (zero pages included), of it `ramDirty` re-dirtied after it was sent. */
  ramLeft: number;
  ramDirty: number;
  /** RAM bytes that crossed the link. */
  ramSent: number;
  convergence: ConvergenceState | undefined;
  setup: MigrationSetup | undefined;
  postcopy: boolean;
  wanted: number;
  written: number;
  starved: number;
  floor: number;
  endedAt: number;
  /** Why it failed, for the summary. */
  reason: string | undefined;
}

export function newRun(spec: ScenarioMigration): Run {
  return {
    spec,
    phase: 'waiting',
    baseLeft: spec.disk,
    baseDoneAt: undefined,
    cow: 0,
    backlog: 0,
    mirror: 'background',
    mirrorSince: 0,
    ramLeft: spec.ram,
    ramDirty: 0,
    ramSent: 0,
    convergence: undefined,
    setup: undefined,
    postcopy: false,
    wanted: 0,
    written: 0,
    starved: 0,
    floor: 0,
    endedAt: 0,
    reason: undefined,
  };
}

export function isOpen(run: Run): boolean {
  return run.phase === 'base' || run.phase === 'mirror' || run.phase === 'ram';
}

export function end(run: Run, status: MigrationStatus, at: number, reason?: string): void {
  run.phase = status;
  run.endedAt = at;
  if (reason !== undefined) run.reason = reason;
}

/** The factor the engine multiplies γ by: < 1 while the mirror is late. */
export function throttleFactor(run: Run): number {
  return run.phase === 'mirror' && run.mirror === 'tightened' ? LATE_MIRROR_THROTTLE_FACTOR : 1;
}

/** Bytes still to cross as the orchestrator reports them: base + RAM, then mirror + RAM, then RAM. */
export function reportedRemaining(run: Run): number {
  if (run.phase === 'base') return run.baseLeft + run.spec.ram;
  if (run.phase === 'mirror') return run.backlog + run.spec.ram;
  return run.ramLeft;
}

export interface TickContext {
  readonly t: number;
  readonly dt: number;
  /** This migration's link share, bytes/s. */
  readonly share: number;
  /** γ in effect, bytes/s (Infinity: unthrottled). */
  readonly gamma: number;
  readonly mirrorReadySeconds: number;
  readonly targetStartSeconds: number;
  readonly convergence: ConvergenceConfig;
}

/** Advances one open migration by a tick; returns the bytes it put on the link. */
export function advance(run: Run, ctx: TickContext): number {
  const { dt, gamma } = ctx;
  const budget = ctx.share * dt;
  const synchronous = run.phase !== 'base' && run.mirror === 'write-blocking';
  const wantedBytes = run.spec.writeRate * dt;
  // After a post-copy switch the guest runs on the target: its writes no longer touch the overlay.
  const written = run.postcopy ? wantedBytes : Math.min(wantedBytes, gamma * dt, synchronous ? budget / 2 : Infinity);
  run.wanted += wantedBytes;
  run.written += written;
  if (run.spec.writeRate > gamma && gamma <= STARVED_EPSILONS * EPSILON) run.starved += dt;
  if (run.spec.writeRate > gamma && gamma <= FLOOR_EPSILONS * EPSILON) run.floor += dt;
  const unique = uniqueShare(run);
  const copiedBefore = run.cow > 0 ? 1 - run.backlog / run.cow : 1;
  if (!run.postcopy) run.cow += Math.round(written * unique);

  let left = budget;
  if (run.phase === 'base') {
    const sent = Math.min(left, run.baseLeft);
    run.baseLeft -= sent;
    left -= sent;
    if (run.baseLeft > 0) return budget;
    run.baseDoneAt ??= ctx.t + dt - left / ctx.share;
    if (ctx.t + dt < run.baseDoneAt + ctx.targetStartSeconds) return budget - left;
    startMirror(run, ctx.t + dt);
  } else if (!run.postcopy) {
    // A write-blocking mirror carries each write before it completes; a background one marks its
    // cluster dirty, which adds to the copy only if the cluster was new or already copied.
    if (synchronous) left -= written;
    else run.backlog += written * (unique + (1 - unique) * copiedBefore);
  }
  const copied = Math.min(left, run.backlog);
  run.backlog -= copied;
  left -= copied;
  if (run.phase === 'mirror') {
    if (run.backlog > 0) {
      escalateMirror(run, ctx);
      return budget - left;
    }
    run.phase = 'ram';
    run.convergence = startConvergence(ctx.convergence, ctx.t + dt);
    run.setup = migrationSetup(ctx.convergence, run.spec.ram, run.spec.disk, ctx.share);
  }
  left -= sendRam(run, left);
  if (!run.postcopy) redirty(run, dt);
  converge(run, ctx);
  return budget - left;
}

/** Share of this tick's writes that land on clusters not yet in the overlay. */
function uniqueShare(run: Run): number {
  const set = run.spec.workingSet;
  if (set === undefined) return run.spec.uniqueFraction;
  if (run.spec.writePattern === 'sequential') return run.cow < set ? run.spec.uniqueFraction : 0;
  return run.spec.uniqueFraction * Math.max(0, 1 - run.cow / set);
}

function startMirror(run: Run, at: number): void {
  run.phase = 'mirror';
  run.mirror = 'background';
  run.mirrorSince = at;
  run.backlog = run.cow;
}

function escalateMirror(run: Run, ctx: TickContext): void {
  const late = ctx.t + ctx.dt - run.mirrorSince;
  const seconds = ctx.mirrorReadySeconds;
  if (run.mirror === 'background' && late >= seconds) {
    run.mirror = 'tightened';
  } else if (run.mirror === 'tightened' && late >= 1.5 * seconds) {
    run.mirror = 'write-blocking';
    run.backlog = run.cow;
  } else if (run.mirror === 'write-blocking' && late >= 2.5 * seconds) {
    end(run, 'failed', ctx.t + ctx.dt, `the disk mirror did not become ready within ${Math.round(2.5 * seconds)} s`);
  }
}

/**
 * Pre-copy's first pass walks all of RAM, paying the link only for pages that hold data; pages
 * re-dirtied after they were sent cross in full. @returns the link bytes spent
 */
function sendRam(run: Run, budget: number): number {
  const { ram } = run.spec;
  const density = ram > 0 ? Math.min(1, (run.spec.ramResident ?? ram) / ram) : 1;
  const firstLeft = run.ramLeft - run.ramDirty;
  const first = density > 0 ? Math.min(firstLeft, budget / density) : firstLeft;
  const dirty = Math.min(budget - first * density, run.ramDirty);
  run.ramLeft -= first + dirty;
  run.ramDirty -= dirty;
  run.ramSent += first * density + dirty;
  return first * density + dirty;
}

/**
 * The guest dirties its RAM working set at its rate, slowed by the CPU throttle. A write adds to
 * what is left only if it hits a page of the set that was sent and is clean again, so at most the
 * sent part of the set is ever dirty.
 */
function redirty(run: Run, dt: number): void {
  const { ram } = run.spec;
  if (ram <= 0) return;
  const set = Math.min(ram, run.spec.ramWorkingSet ?? ram);
  const throttle = (run.convergence?.cpuThrottlePercent ?? 0) / 100;
  const sentOnce = 1 - (run.ramLeft - run.ramDirty) / ram;
  const clean = Math.max(0, set * sentOnce - run.ramDirty);
  const added = Math.min(clean, run.spec.ramDirtyRate * (1 - throttle) * dt * (clean / set));
  run.ramDirty += added;
  run.ramLeft += added;
}

/** The engine's convergence policy, sampled once per tick, and the switchover it waits for. */
function converge(run: Run, ctx: TickContext): void {
  const at = ctx.t + ctx.dt;
  if (run.postcopy) {
    if (run.ramLeft + run.backlog <= 0) end(run, 'completed', at);
    return;
  }
  const state = run.convergence;
  const setup = run.setup;
  if (!state || !setup) return;
  const left = run.ramLeft + run.backlog;
  if (left <= (ctx.share * state.downtimeMs) / 1000) {
    // The guest pauses while the rest crosses: the migration ends once it has.
    end(run, 'completed', at + left / ctx.share);
    return;
  }
  const step = decide(ctx.convergence, setup, state, { t: at, remaining: run.ramLeft, transferred: run.ramSent });
  run.convergence = step.state;
  for (const action of step.actions) {
    if (action.kind === 'start-postcopy') run.postcopy = true;
    else if (action.kind === 'abort') end(run, 'failed', at, `RAM migration did not converge: ${action.reason}`);
  }
}
