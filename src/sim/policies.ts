/**
 * What `cowbuf sim --policy NAME` can compare: the two status-quo baselines and every throttle
 * policy of `src/buffer/throttle` (the simulator drives the real code, never a copy of it).
 */
import { THROTTLE_POLICIES } from '../buffer/throttle/index.js';
import type { ThrottlePolicy } from '../buffer/throttle/policy.js';
import { ValidationError } from '../errors.js';

export interface SimPolicy {
  readonly name: string;
  readonly summary: string;
  /** `shared`: one buffer partitioned by Π; `size-state`: each VM capped by its own sizeState. */
  readonly buffer: 'shared' | 'size-state';
  /** No throttle: guests write as fast as they want (the write-blocking mirror still paces them). */
  readonly throttle: ThrottlePolicy | undefined;
}

export const SIM_POLICIES: readonly SimPolicy[] = [
  { name: 'none', summary: 'no throttle, one shared buffer', buffer: 'shared', throttle: undefined },
  { name: 'size-state', summary: "no throttle, each VM capped by its own sizeState (LXD's status quo)", buffer: 'size-state', throttle: undefined },
  ...[...THROTTLE_POLICIES.values()].map((throttle): SimPolicy => ({ name: throttle.name, summary: throttle.summary, buffer: 'shared', throttle })),
];

/** @throws ValidationError naming the unknown policy and the known ones */
export function simPolicy(name: string): SimPolicy {
  const policy = SIM_POLICIES.find((candidate) => candidate.name === name);
  if (!policy) throw new ValidationError('--policy', name, `one of ${SIM_POLICIES.map((p) => p.name).join(', ')}`);
  return policy;
}
