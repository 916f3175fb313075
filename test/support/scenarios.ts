/** The public scenarios bundled in `scenarios/` (cluster ones in `scenarios/cluster/`), loaded raw and parsed. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseScenario, type Scenario } from '../../src/sim/scenario.js';

export const PUBLIC_SCENARIOS = ['single-busy-vm', 'slow-link-flap', 'staggered-four'] as const;

export function scenarioPath(name: string): string {
  return fileURLToPath(new URL(`../../scenarios/${name}.json`, import.meta.url));
}

export function rawScenario(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(scenarioPath(name), 'utf8')) as Record<string, unknown>;
}

export function loadScenario(name: string): Scenario {
  return parseScenario(rawScenario(name));
}

export const CLUSTER_SCENARIOS = ['drain-one-of-100', 'rolling-100'] as const;

export function clusterScenarioPath(name: string): string {
  return fileURLToPath(new URL(`../../scenarios/cluster/${name}.json`, import.meta.url));
}

export function rawCluster(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(clusterScenarioPath(name), 'utf8')) as Record<string, unknown>;
}
