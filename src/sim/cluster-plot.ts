/**
 * `cowbuf sim CLUSTER.json --plot`: one SVG comparing the rules over the same time axis, one
 * line per rule in each of three panels: migrations in flight, what the draining hosts send, and
 * how full their buffers are. Built from the single-host plot's parts (src/sim/plot.ts).
 */
import type { ClusterResult, ClusterSample } from './cluster-report.js';
import { axis, COLORS, downsample, escape, LEFT, PANEL, panelsTitled, polyline, rate, RIGHT, svgDocument, TOP, WIDTH, type Panel } from './plot.js';

export interface ClusterRun {
  readonly result: ClusterResult;
  readonly samples: readonly ClusterSample[];
}

export function renderClusterPlot(runs: readonly ClusterRun[]): string {
  // A rolling maintenance has tens of thousands of samples: too many to spread into Math.max.
  const most = (of: (sample: ClusterSample) => number) => runs.reduce((top, run) => run.samples.reduce((inRun, sample) => Math.max(inRun, of(sample)), top), 1);
  const tMax = most((sample) => sample.t);
  const x = (t: number) => LEFT + ((WIDTH - LEFT - RIGHT) * t) / tMax;
  const panels = panelsTitled(['migrations in flight', 'sent by the draining host(s)', 'their buffers: overlay bytes ÷ size']);
  const [flying, sending, filling] = panels;
  const runningMax = most((sample) => sample.running);
  const rateMax = most((sample) => sample.rate);
  const parts: string[] = [];
  const line = (panel: Panel, max: number, of: (sample: ClusterSample) => number) => (run: ClusterRun, index: number) => {
    const points = downsample(run.samples).map((sample) => `${x(sample.t).toFixed(1)},${(panel.top + PANEL - (PANEL * of(sample)) / max).toFixed(1)}`);
    // Dashed every other rule: two rules that behave alike stay visible on top of each other.
    parts.push(polyline(points, COLORS[index % COLORS.length] as string, index % 2 === 1 ? '6 4' : undefined));
  };
  runs.forEach(line(flying, runningMax, (sample) => sample.running));
  runs.forEach(line(sending, rateMax, (sample) => sample.rate));
  runs.forEach(line(filling, 1, (sample) => (sample.capacity > 0 ? sample.buffer / sample.capacity : 0)));
  parts.push(axis(flying, String(runningMax), '0'), axis(sending, rate(rateMax), '0'), axis(filling, '100 %', '0'));
  parts.push(`<text x="${WIDTH / 2}" y="${filling.top + PANEL + 32}" font-size="12" text-anchor="middle">time (s), 0 – ${tMax.toFixed(0)}</text>`);
  runs.forEach(({ result }, index) => {
    const y = TOP + index * 34;
    parts.push(
      `<rect x="${WIDTH - RIGHT + 14}" y="${y}" width="12" height="12" fill="${COLORS[index % COLORS.length] as string}"/>`,
      `<text x="${WIDTH - RIGHT + 32}" y="${y + 10}" font-size="12">${escape(result.strategy)}</text>`,
      `<text x="${WIDTH - RIGHT + 32}" y="${y + 24}" font-size="10">${result.makespanSeconds.toFixed(0)} s, ${result.completed} moved, ${result.failed} failed</text>`,
    );
  });
  const first = runs[0]?.result;
  const heading = first ? `${escape(first.scenario)} — throttle policy ${escape(first.policy)}: floor ${first.floorSeconds.toFixed(0)} s` : 'no runs';
  return svgDocument(heading, panels, parts);
}
