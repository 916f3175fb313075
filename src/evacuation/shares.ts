/**
 * Max-min fair rates of flows over shared capacities, by progressive filling: every flow's rate
 * rises together until a capacity it crosses is full or it reaches its own cap; those flows stop
 * there and the others go on rising. What one flow cannot use goes to the others, as TCP flows
 * roughly share a bottleneck. The evacuation planner and the cluster simulator share links with
 * it, so the planner predicts the shares the simulator then grants. Pure.
 */

export interface Flow {
  /** Names of the capacities this flow crosses (a host's uplink, a target's downlink, ...). */
  readonly uses: readonly string[];
  /** Its own ceiling in bytes/s; Infinity when only the capacities bound it. */
  readonly cap: number;
}

/** Below this relative slack a capacity or cap counts as reached: keeps float noise from looping. */
const REACHED = 1e-9;

/**
 * Rates in bytes/s, in flow order. A capacity name missing from `capacities` bounds nothing; a
 * flow bound by nothing at all gets Infinity.
 */
export function maxMinRates(capacities: ReadonlyMap<string, number>, flows: readonly Flow[]): number[] {
  const rates = flows.map(() => 0);
  let rising = flows.map((_, index) => index).filter((index) => (flows[index] as Flow).cap > 0);
  while (rising.length > 0) {
    const used = new Map<string, number>();
    flows.forEach((flow, index) => {
      for (const name of flow.uses) used.set(name, (used.get(name) ?? 0) + (rates[index] as number));
    });
    const left = new Map<string, { room: number; count: number }>();
    for (const index of rising) {
      for (const name of (flows[index] as Flow).uses) {
        const capacity = capacities.get(name);
        if (capacity === undefined) continue;
        const entry = left.get(name) ?? { room: capacity - (used.get(name) ?? 0), count: 0 };
        entry.count += 1;
        left.set(name, entry);
      }
    }
    let step = Infinity;
    for (const { room, count } of left.values()) step = Math.min(step, Math.max(0, room) / count);
    for (const index of rising) step = Math.min(step, (flows[index] as Flow).cap - (rates[index] as number));
    if (step === Infinity) {
      for (const index of rising) rates[index] = Infinity;
      break;
    }
    for (const index of rising) rates[index] = (rates[index] as number) + step;
    const full = new Set([...left].filter(([name, { room, count }]) => room - step * count <= REACHED * (capacities.get(name) ?? 0)).map(([name]) => name));
    rising = rising.filter((index) => {
      const flow = flows[index] as Flow;
      return !flow.uses.some((name) => full.has(name)) && (rates[index] as number) < flow.cap * (1 - REACHED);
    });
  }
  return rates;
}
