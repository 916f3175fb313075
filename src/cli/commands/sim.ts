/**
 * `cowbuf sim`: replays a scenario file against the buffer core under one policy. A single-host
 * scenario runs its migrations; a cluster scenario (it has `hosts`) plays its maintenance under
 * every evacuation rule, or the one named, and prints the comparison.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { renderClusterPlot, type ClusterRun } from '../../sim/cluster-plot.js';
import { describeCluster } from '../../sim/cluster-report.js';
import { isClusterScenario, parseClusterScenario } from '../../sim/cluster-scenario.js';
import { simulateCluster } from '../../sim/cluster.js';
import { renderPlot } from '../../sim/plot.js';
import { SIM_POLICIES, simPolicy, type SimPolicy } from '../../sim/policies.js';
import type { SimResult, TraceLine } from '../../sim/report.js';
import { parseScenario } from '../../sim/scenario.js';
import { simulate } from '../../sim/simulate.js';
import { STRATEGIES, strategyNamed } from '../../sim/strategies.js';
import { formatBytes } from '../../units.js';
import type { Io } from '../io.js';

interface SimFlags {
  readonly policy?: string;
  readonly json?: boolean;
  readonly trace?: string;
  readonly plot?: string;
  readonly strategy?: string;
  readonly listPolicies?: boolean;
}

export function simCommand(io: Io): Command {
  return new Command('sim')
    .description('simulate a scenario (shared/scenarios format) under a policy: what-if sizing and policy comparison')
    .argument('[scenario]', 'scenario JSON file')
    .option('--policy <name>', `one of ${SIM_POLICIES.map((p) => p.name).join(', ')}`, 'deadline')
    .option('--json', 'print the summary as one JSON object')
    .option('--trace <file>', 'write one JSON line per tick (the inputs and γ of every migration)')
    .option('--plot <file>', 'render an SVG of the run')
    .option('--strategy <name>', `cluster scenarios: only this evacuation rule (${STRATEGIES.map((s) => s.name).join(', ')}); default all, compared`)
    .option('--list-policies', 'print one policy name per line')
    .action(async (scenarioPath: string | undefined, flags: SimFlags) => {
      if (flags.listPolicies) {
        io.stdout(SIM_POLICIES.map((policy) => `${policy.name}\n`).join(''));
        return;
      }
      if (!scenarioPath) throw new ValidationError('scenario', undefined, 'a scenario file path');
      const policy = simPolicy(flags.policy ?? 'deadline');
      const input = await readJson(scenarioPath);
      if (isClusterScenario(input)) {
        await runCluster(io, input, policy, flags);
        return;
      }
      if (flags.strategy !== undefined) throw new ValidationError('--strategy', flags.strategy, 'absent (only cluster scenarios have evacuation rules)');
      const scenario = parseScenario(input);
      const lines: TraceLine[] = [];
      const keep = flags.trace !== undefined || flags.plot !== undefined;
      const result = simulate(scenario, policy, keep ? { onTick: (line) => lines.push(line) } : {});
      if (flags.trace) await writeFile(flags.trace, lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
      if (flags.plot) await writeFile(flags.plot, renderPlot(result, lines));
      io.stdout(flags.json ? `${JSON.stringify(result)}\n` : describeResult(result));
    });
}

async function runCluster(io: Io, input: unknown, policy: SimPolicy, flags: SimFlags): Promise<void> {
  const scenario = parseClusterScenario(input);
  const strategies = flags.strategy === undefined ? STRATEGIES : [strategyNamed(flags.strategy)];
  const keep = flags.trace !== undefined || flags.plot !== undefined;
  const runs: ClusterRun[] = strategies.map((strategy) => {
    const samples: ClusterRun['samples'][number][] = [];
    const result = simulateCluster(scenario, strategy, policy, keep ? { onSample: (sample) => samples.push(sample) } : {});
    return { result, samples };
  });
  if (flags.trace) await writeFile(flags.trace, runs.flatMap((run) => run.samples.map((sample) => `${JSON.stringify({ strategy: run.result.strategy, ...sample })}\n`)).join(''));
  if (flags.plot) await writeFile(flags.plot, renderClusterPlot(runs));
  const results = runs.map((run) => run.result);
  io.stdout(flags.json ? `${JSON.stringify({ scenario: scenario.name, policy: policy.name, results })}\n` : describeCluster(scenario, results));
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ValidationError('scenario', path, 'a readable file', { cause: error });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ValidationError('scenario', path, `valid JSON (${(error as Error).message})`, { cause: error });
  }
}

function describeResult(result: SimResult): string {
  const rows = result.migrations.map(
    (m) =>
      `  ${m.id.padEnd(12)} ${m.status.padEnd(10)} ${m.seconds.toFixed(1).padStart(9)} s  peak overlay ${formatBytes(m.peakCowBytes).padStart(10)}  writes kept ${percent(m.writtenBytes, m.wantedWriteBytes)}  starved ${m.starvedSeconds} s${m.reason ? `  (${m.reason})` : ''}`,
  );
  return [
    `scenario ${result.scenario}, policy ${result.policy}`,
    `  completed ${result.completed}, failed ${result.failed}, unfinished ${result.unfinished}, overflow events ${result.overflowEvents}`,
    `  bin overflows: ${result.freezeEvents} bins frozen, ${result.shardEvents} shards pushed (${result.recutEvents} of these by admissions' re-cuts)`,
    `  makespan ${result.makespanSeconds.toFixed(1)} s (lower bound for the completed ones ${result.lowerBoundSeconds.toFixed(1)} s), peak buffer ${formatBytes(result.peakBufferBytes)}`,
    `  writes kept ${(result.retainedWriteFraction * 100).toFixed(1)} %, starved (γ ≤ 3ε while wanting more) ${result.starvedSeconds} s, at the floor (γ ≤ 2ε) ${result.floorSeconds} s`,
    ...rows,
    '',
  ].join('\n');
}

function percent(part: number, whole: number): string {
  return `${whole > 0 ? ((part / whole) * 100).toFixed(1) : '100.0'} %`.padStart(7);
}
