/**
 * Random admit/observe/release/resize sequences for property tests, with a model of what each
 * migration's overlay must add up to (the largest size ever observed).
 */
import fc from 'fast-check';
import { admit, emptyPartition, observe, release, resize, usedBytes, type Partition } from '../../src/buffer/partition.js';
import { ShrinkBelowUsedError } from '../../src/errors.js';

export type Command =
  | { readonly kind: 'admit' }
  /** Grows one overlay by `fraction` of a third of the buffer. */
  | { readonly kind: 'grow'; readonly pick: number; readonly fraction: number }
  | { readonly kind: 'release'; readonly pick: number }
  /** Resizes to `factor` × the current capacity. */
  | { readonly kind: 'resize'; readonly factor: number };

const GiB = 1024 ** 3;

export const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'admit' as const }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('grow' as const),
      pick: fc.nat(),
      // Integers scaled down: fc.double clusters at 0 and 1 and would rarely fill a bin halfway.
      fraction: fc.integer({ min: 0, max: 1000 }).map((permille) => permille / 1000),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('resize' as const), factor: fc.integer({ min: 100, max: 2000 }).map((permille) => permille / 1000) }) },
);

export const commandsArb = fc.array(commandArb, { minLength: 10, maxLength: 80 });

export const capacityArb = fc.integer({ min: 64 * 1024 * 1024, max: 16 * GiB });

export interface Step {
  readonly before: Partition;
  readonly after: Partition;
  readonly command: Command;
  /** Per running migration after the step: the overlay size the caller has reported. */
  readonly observed: ReadonlyMap<string, number>;
  readonly released?: string;
}

/** Runs the commands, yielding every step; resizes below the floor are checked to throw and skipped. */
export function* run(capacity: number, commands: readonly Command[]): Generator<Step> {
  let partition = emptyPartition(capacity);
  const observed = new Map<string, number>();
  let next = 0;
  for (const command of commands) {
    const before = partition;
    const running = partition.bins.map((bin) => bin.owner);
    let released: string | undefined;
    if (command.kind === 'admit') {
      const id = `m${next++}`;
      partition = admit(partition, id);
      observed.set(id, 0);
    } else if (command.kind === 'grow' && running.length > 0) {
      const id = running[command.pick % running.length] as string;
      const size = (observed.get(id) ?? 0) + Math.floor((command.fraction * partition.capacity) / 3);
      observed.set(id, size);
      partition = observe(partition, [[id, size]]);
    } else if (command.kind === 'release' && running.length > 0) {
      released = running[command.pick % running.length] as string;
      partition = release(partition, released);
      observed.delete(released);
    } else if (command.kind === 'resize') {
      const capacity = Math.max(1, Math.floor(partition.capacity * command.factor));
      if (capacity < usedBytes(partition)) {
        let threw = false;
        try {
          resize(partition, capacity);
        } catch (error) {
          threw = error instanceof ShrinkBelowUsedError;
        }
        if (!threw) throw new Error('resize below the bytes in use did not throw ShrinkBelowUsedError');
      } else {
        partition = resize(partition, capacity);
      }
    }
    yield { before, after: partition, command, observed: new Map(observed), ...(released ? { released } : {}) };
  }
}
