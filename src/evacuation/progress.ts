/**
 * What an evacuation batch is and how it reads: the state it journals (the plan, and each VM's
 * target, migration and outcome) and the progress record derived from it with the engine's live
 * view of each migration (phase, bytes left) and an ETA for the whole batch. Pure.
 */
import type { EvacuationPlan, EvacuationVm } from './plan.js';

/** `unplaced`: no target could take it (`error` says why); the others end as their migration did. */
export type VmOutcome = 'waiting' | 'running' | 'moved' | 'failed' | 'cancelled' | 'unplaced';

export interface BatchVm {
  readonly vm: string;
  /** Where the plan sends it; absent when unplaced. */
  readonly target?: string;
  outcome: VmOutcome;
  migration?: string;
  /** Why it did not move. */
  error?: string;
}

/** `failed`: the batch itself could not go on (its VMs say what became of each). */
export type BatchStatus = 'running' | 'cancelling' | 'done' | 'cancelled' | 'failed';

export const BATCH_FINAL: ReadonlySet<BatchStatus> = new Set(['done', 'cancelled', 'failed']);

/** The journaled state of one batch: enough for a restarted daemon to carry on. */
export interface BatchState {
  readonly id: string;
  readonly createdAt: string;
  updatedAt: string;
  status: BatchStatus;
  /** The peers asked for their headroom. */
  readonly targets: readonly string[];
  /** Targets left out at planning, with why (unreachable, a bad answer). */
  readonly leftOut: readonly { readonly peer: string; readonly reason: string }[];
  readonly plan: EvacuationPlan;
  readonly vms: BatchVm[];
  error?: string;
}

/** Whether the batch still has `vm` to move or moving: not over, and its VM waiting or running. */
export function holdsVm(state: Pick<BatchState, 'status' | 'vms'>, vm: string): boolean {
  return !BATCH_FINAL.has(state.status) && state.vms.some((entry) => entry.vm === vm && (entry.outcome === 'waiting' || entry.outcome === 'running'));
}

/** A migration as the engine holds it; what is not known yet is absent. */
export interface MigrationStatus {
  readonly phase: string;
  readonly error?: string;
  /** Bytes its overlays hold now. */
  readonly cowBytes: number;
  /** Disk bytes still to send (base and mirror), once its base was sized. */
  readonly diskLeft?: number;
  /** RAM bytes still to send, once pre-copy began. */
  readonly ramLeft?: number;
  /** Its link has bytes waiting and none acknowledged (link-model.ts's stall), while it has. */
  readonly linkStalled?: boolean;
}

export interface VmProgress extends Readonly<BatchVm> {
  /** `waiting`, the migration's phase while it runs, else the outcome. */
  readonly phase: string;
  readonly bytesLeft: number;
}

export interface EvacuationRecord {
  readonly id: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly status: BatchStatus;
  readonly targets: readonly string[];
  readonly leftOut: BatchState['leftOut'];
  readonly concurrency: EvacuationPlan['concurrency'];
  readonly vms: readonly VmProgress[];
  readonly total: {
    readonly moved: number;
    /** Failed or unplaced: could not move. */
    readonly failed: number;
    readonly cancelled: number;
    /** Waiting or running. */
    readonly left: number;
    readonly bytesLeft: number;
    /** Seconds, from the bytes left over the measured rates; absent when nothing is left. */
    readonly etaSeconds?: number;
  };
  readonly error?: string;
}

/** Bytes a VM of the batch still has to send: all of it until its migration has sized a part. */
export function bytesLeft(vm: EvacuationVm, status: MigrationStatus | undefined): number {
  return (status?.diskLeft ?? vm.diskBytes) + (status?.ramLeft ?? vm.memoryBytes);
}

/**
 * The batch's floor for what is left: each target's bytes over its rate, and all of them over the
 * uplink, whichever is longer (the planner's own bound, so the ETA and the plan agree).
 * @param rates bytes/s to each target, as last measured
 */
export function etaSeconds(left: readonly { readonly target: string; readonly bytes: number }[], rates: ReadonlyMap<string, number>, uplink: number): number | undefined {
  const total = left.reduce((sum, entry) => sum + entry.bytes, 0);
  if (total === 0) return undefined;
  const perTarget = new Map<string, number>();
  for (const entry of left) perTarget.set(entry.target, (perTarget.get(entry.target) ?? 0) + entry.bytes);
  const slowest = Math.max(...[...perTarget].map(([target, bytes]) => bytes / (rates.get(target) ?? uplink)));
  return Math.round(Math.max(slowest, total / uplink));
}

export function progressRecord(state: BatchState, status: (migration: string) => MigrationStatus | undefined, rates: ReadonlyMap<string, number>): EvacuationRecord {
  const planned = new Map([...state.plan.placements.map((p) => p.vm), ...state.plan.unplaced.map((u) => u.vm)].map((vm) => [vm.name, vm]));
  const vms = state.vms.map((entry): VmProgress => {
    const live = entry.migration ? status(entry.migration) : undefined;
    const vm = planned.get(entry.vm) as EvacuationVm;
    const open = entry.outcome === 'waiting' || entry.outcome === 'running';
    return { ...entry, phase: entry.outcome === 'running' ? (live?.phase ?? 'queued') : entry.outcome, bytesLeft: open ? bytesLeft(vm, live) : 0 };
  });
  const count = (...outcomes: VmOutcome[]) => vms.filter((vm) => outcomes.includes(vm.outcome)).length;
  const open = vms.filter((vm) => vm.bytesLeft > 0 && vm.target !== undefined);
  const eta = etaSeconds(open.map((vm) => ({ target: vm.target as string, bytes: vm.bytesLeft })), rates, state.plan.uplink);
  return {
    id: state.id,
    createdAt: state.createdAt,
    updatedAt: state.updatedAt,
    status: state.status,
    targets: state.targets,
    leftOut: state.leftOut,
    concurrency: state.plan.concurrency,
    vms,
    total: {
      moved: count('moved'),
      failed: count('failed', 'unplaced'),
      cancelled: count('cancelled'),
      left: count('waiting', 'running'),
      bytesLeft: vms.reduce((sum, vm) => sum + vm.bytesLeft, 0),
      ...(eta !== undefined ? { etaSeconds: eta } : {}),
    },
    ...(state.error ? { error: state.error } : {}),
  };
}
