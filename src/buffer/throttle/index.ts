/** The registry of throttle policies, by name. */
import { ValidationError } from '../../errors.js';
import { deadline } from './deadline.js';
import { lx066 } from './lx066.js';
import type { ThrottlePolicy } from './policy.js';

export const THROTTLE_POLICIES: ReadonlyMap<string, ThrottlePolicy> = new Map(
  [lx066, deadline].map((policy) => [policy.name, policy]),
);

/** @throws ValidationError naming the unknown policy and the known ones */
export function throttlePolicy(name: string, field = 'policy'): ThrottlePolicy {
  const policy = THROTTLE_POLICIES.get(name);
  if (!policy) throw new ValidationError(field, name, `one of ${[...THROTTLE_POLICIES.keys()].join(', ')}`);
  return policy;
}
