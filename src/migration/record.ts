/**
 * What every view of an outgoing migration shares: its phases (which are final, which lie past
 * the point of no return) and its head, the fields the engine's live record and the journal's
 * entry both carry, so the two cannot drift apart.
 */

export type Phase = 'queued' | 'overlay' | 'prepare' | 'base' | 'target' | 'mirror' | 'ram' | 'switchover' | 'finishing' | 'in-doubt' | 'completed' | 'rolling-back' | 'failed' | 'cancelled';

/** Phases a migration never leaves. */
export const FINAL: ReadonlySet<string> = new Set<Phase>(['completed', 'failed', 'cancelled']);

/** Phases past the point of no return: the source's QEMU completed, the guest is the target's. */
export const HANDOFF: ReadonlySet<Phase> = new Set(['finishing', 'in-doubt']);

/** Which migration, and where it stands: journaled at each phase change. */
export interface MigrationHead {
  readonly id: string;
  readonly vm: string;
  readonly peer: string;
  readonly policy: string;
  phase: Phase;
  readonly createdAt: string;
  updatedAt: string;
  error?: string;
  /**
   * The I/O limits an admin had set, by disk id, for the drives that had any: a rollback after a
   * restart puts them back (cowbuf's cap in force then is no one's wish).
   */
  ioLimits?: Readonly<Record<string, Readonly<Record<string, number | string>>>>;
}

/** The head of a fuller record (the engine's carries progress and decisions too). */
export function headOf(record: MigrationHead): Readonly<MigrationHead> {
  const { id, vm, peer, policy, phase, createdAt, updatedAt, error, ioLimits } = record;
  return { id, vm, peer, policy, phase, createdAt, updatedAt, ...(error ? { error } : {}), ...(ioLimits ? { ioLimits } : {}) };
}
