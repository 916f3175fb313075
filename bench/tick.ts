/**
 * One control tick of the pure core — observe every overlay, then γ for every migration — for
 * N = 10 … 10 000 concurrent migrations. Prints µs per tick and the per-migration cost relative
 * to N = 10 measured in the same run (1.0 = perfectly linear).
 *
 *     npx tsx bench/tick.ts
 */
import { observe, type Partition } from '../src/buffer/partition.js';
import { lx066 } from '../src/buffer/throttle/lx066.js';
import { deadline } from '../src/buffer/throttle/deadline.js';
import { computeThrottles, type ThrottleDemand, type ThrottlePolicy } from '../src/buffer/throttle/policy.js';

const GiB = 1024 ** 3;

/** N equal bins, each overlay 30–70 % full, and 1 % of migrations pushed past their bin so shards exist. */
function setup(n: number): { partition: Partition; cow: Map<string, number>; demands: Map<string, ThrottleDemand> } {
  const capacity = n * GiB;
  const ids = Array.from({ length: n }, (_, i) => `vm${i}`);
  const cow = new Map(ids.map((id, i) => [id, Math.floor(GiB * (0.3 + 0.4 * ((i * 7919) % 100) / 100))]));
  let partition: Partition = {
    capacity,
    bins: ids.map((id) => ({ owner: id, size: GiB, frozen: false, stack: [{ migration: id, bytes: cow.get(id) ?? 0 }] })),
    unplaced: [],
  };
  const overflowing = ids.filter((_, i) => i % 100 === 0);
  for (const id of overflowing) cow.set(id, Math.floor(1.2 * GiB));
  partition = observe(partition, overflowing.map((id) => [id, cow.get(id) ?? 0] as const));
  const demands = new Map(ids.map((id) => [id, { linkShare: 1.25e9 / n, remainingBytes: 50 * GiB, uniqueFraction: 0.5, periodSeconds: 0.5 }]));
  return { partition, cow, demands };
}

function measure(n: number, policy: ThrottlePolicy): number {
  const { partition: start, cow, demands } = setup(n);
  const ticks = Math.max(5, Math.round(200_000 / n));
  let partition = start;
  const run = (count: number) => {
    for (let tick = 0; tick < count; tick += 1) {
      for (const [id, bytes] of cow) cow.set(id, bytes + 4096);
      partition = observe(partition, cow);
      computeThrottles(policy, partition, demands);
    }
  };
  run(Math.max(2, Math.round(ticks / 10)));
  const began = performance.now();
  run(ticks);
  return ((performance.now() - began) * 1000) / ticks;
}

const sizes = [10, 100, 1_000, 10_000];
for (const policy of [lx066, deadline]) {
  const perTick = sizes.map((n) => measure(n, policy));
  const perMigration = perTick.map((us, i) => us / (sizes[i] as number));
  console.log(`policy ${policy.name}`);
  console.log('       N   µs/tick   µs/migration   per-migration cost ÷ N=10');
  sizes.forEach((n, i) => {
    const ratio = (perMigration[i] as number) / (perMigration[0] as number);
    console.log(`${String(n).padStart(8)} ${(perTick[i] as number).toFixed(1).padStart(9)} ${(perMigration[i] as number).toFixed(3).padStart(14)} ${ratio.toFixed(2).padStart(27)}`);
  });
}
