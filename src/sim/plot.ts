/**
 * `cowbuf sim --plot`: one self-contained SVG of a run, three panels sharing the time axis:
 * buffer fill stacked per migration (own bin sizes dashed, frozen bins marked), γ per migration
 * on a log scale, and the link rate U with its per-migration share U/N.
 */
import type { SimResult, TraceLine } from './report.js';

export const WIDTH = 960;
export const PANEL = 210;
export const GAP = 48;
export const LEFT = 78;
export const RIGHT = 150;
export const TOP = 40;
const MAX_POINTS = 800;
export const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export interface Panel {
  readonly top: number;
  readonly title: string;
}

export function renderPlot(result: SimResult, trace: readonly TraceLine[]): string {
  const lines = downsample(trace);
  const ids = result.migrations.map((m) => m.id);
  const color = (id: string) => COLORS[ids.indexOf(id) % COLORS.length] ?? '#000';
  const tMax = Math.max(1, ...lines.map((line) => line.t));
  const x = (t: number) => LEFT + ((WIDTH - LEFT - RIGHT) * t) / tMax;
  const panels = panelsTitled(['buffer fill per migration (stacked), own bins dashed, ▲ frozen', 'write throttle γ per migration (log scale)', 'link rate U and share U/N']);
  const [fill, gamma, link] = panels;
  const parts: string[] = [];

  // Panel 1: stacked overlay bytes, with each migration's own bin as a dashed line.
  const capacity = Math.max(1, ...lines.map((line) => line.capacity));
  const yFill = (bytes: number) => fill.top + PANEL - (PANEL * bytes) / capacity;
  const below = new Map<number, number>();
  for (const id of ids) {
    const top: string[] = [];
    const bottom: string[] = [];
    const bin: string[] = [];
    lines.forEach((line, index) => {
      const entry = line.migrations.find((m) => m.id === id);
      const base = below.get(index) ?? 0;
      const cow = entry?.cow ?? 0;
      top.push(`${x(line.t).toFixed(1)},${yFill(base + cow).toFixed(1)}`);
      bottom.unshift(`${x(line.t).toFixed(1)},${yFill(base).toFixed(1)}`);
      below.set(index, base + cow);
      if (entry) bin.push(`${x(line.t).toFixed(1)},${yFill(entry.bin).toFixed(1)}`);
      if (entry?.frozen && index % 8 === 0) {
        parts.push(`<text x="${x(line.t).toFixed(1)}" y="${(yFill(base + cow) - 2).toFixed(1)}" font-size="9" fill="${color(id)}" text-anchor="middle">▲</text>`);
      }
    });
    parts.push(`<polygon points="${[...top, ...bottom].join(' ')}" fill="${color(id)}" fill-opacity="0.55" stroke="none"/>`);
    if (bin.length > 0) parts.push(polyline(bin, color(id), '4 3'));
  }
  parts.push(polyline([`${LEFT},${yFill(capacity)}`, `${WIDTH - RIGHT},${yFill(capacity)}`], '#000', '2 2'));
  parts.push(axis(fill, `${gib(capacity)} GiB`, '0'));

  // Panel 2: γ on a log scale from ε-ish to the largest γ seen.
  const rates = lines.flatMap((line) => line.migrations.map((m) => m.throttle).filter((r): r is number => r !== null));
  const high = Math.log10(Math.max(1e5, ...rates));
  const low = Math.log10(Math.max(1, Math.min(1e4, ...rates)));
  const yGamma = (rate: number) => gamma.top + PANEL - (PANEL * (Math.log10(Math.max(rate, 1)) - low)) / Math.max(1e-9, high - low);
  for (const id of ids) {
    const points = lines.flatMap((line) => {
      const rate = line.migrations.find((m) => m.id === id)?.throttle;
      return rate === null || rate === undefined ? [] : [`${x(line.t).toFixed(1)},${yGamma(rate).toFixed(1)}`];
    });
    if (points.length > 0) parts.push(polyline(points, color(id)));
  }
  parts.push(axis(gamma, rates.length > 0 ? `${rate(10 ** high)}` : 'no throttle', rates.length > 0 ? rate(10 ** low) : ''));

  // Panel 3: U and U/N.
  const uMax = Math.max(1, ...lines.map((line) => line.linkRate));
  const yLink = (value: number) => link.top + PANEL - (PANEL * value) / uMax;
  parts.push(polyline(lines.map((line) => `${x(line.t).toFixed(1)},${yLink(line.linkRate).toFixed(1)}`), '#444'));
  parts.push(
    polyline(
      lines.map((line) => `${x(line.t).toFixed(1)},${yLink(line.migrations[0]?.linkShare ?? line.linkRate).toFixed(1)}`),
      '#999',
      '5 3',
    ),
  );
  parts.push(axis(link, rate(uMax), '0'));
  parts.push(`<text x="${WIDTH / 2}" y="${link.top + PANEL + 32}" font-size="12" text-anchor="middle">time (s), 0 – ${tMax.toFixed(0)}</text>`);

  const legend = ids.map(
    (id, index) =>
      `<rect x="${WIDTH - RIGHT + 14}" y="${TOP + index * 18}" width="12" height="12" fill="${color(id)}"/><text x="${WIDTH - RIGHT + 32}" y="${TOP + index * 18 + 10}" font-size="12">${escape(id)} (${result.migrations[index]?.status ?? ''})</text>`,
  );
  const heading = `${escape(result.scenario)} — policy ${escape(result.policy)}: ${result.completed} completed, ${result.failed} failed, ${result.overflowEvents} overflow events, makespan ${result.makespanSeconds.toFixed(0)} s`;
  return svgDocument(heading, panels, [...parts, ...legend, `<text x="${WIDTH - RIGHT + 14}" y="${link.top + 12}" font-size="11">— U   - - U/N</text>`]);
}

/** Three panels of PANEL height stacked under a heading (already escaped), with their titles and `parts`. */
export function svgDocument(heading: string, panels: readonly Panel[], parts: readonly string[]): string {
  const height = TOP + 3 * PANEL + 2 * GAP + 44;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${LEFT}" y="20" font-size="14" font-weight="bold">${heading}</text>`,
    ...panels.map((panel) => `<text x="${LEFT}" y="${panel.top - 6}" font-size="12">${panel.title}</text>`),
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

/** The three panels' places, top to bottom. */
export function panelsTitled(titles: readonly [string, string, string]): [Panel, Panel, Panel] {
  return titles.map((title, index) => ({ top: TOP + index * (PANEL + GAP), title })) as [Panel, Panel, Panel];
}

/** At most MAX_POINTS of `trace`, evenly spaced, the last one kept. */
export function downsample<T>(trace: readonly T[]): readonly T[] {
  const step = Math.max(1, Math.ceil(trace.length / MAX_POINTS));
  return trace.filter((_, index) => index % step === 0 || index === trace.length - 1);
}

export function polyline(points: readonly string[], stroke: string, dash?: string): string {
  return `<polyline points="${points.join(' ')}" fill="none" stroke="${stroke}" stroke-width="1.4"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`;
}

export function axis(panel: Panel, topLabel: string, bottomLabel: string): string {
  return [
    `<rect x="${LEFT}" y="${panel.top}" width="${WIDTH - LEFT - RIGHT}" height="${PANEL}" fill="none" stroke="#888"/>`,
    `<text x="${LEFT - 6}" y="${panel.top + 10}" font-size="11" text-anchor="end">${escape(topLabel)}</text>`,
    `<text x="${LEFT - 6}" y="${panel.top + PANEL}" font-size="11" text-anchor="end">${escape(bottomLabel)}</text>`,
  ].join('\n');
}

export function gib(bytes: number): string {
  return (bytes / 1024 ** 3).toFixed(1);
}

export function rate(bytesPerSecond: number): string {
  return bytesPerSecond >= 1e9 ? `${(bytesPerSecond / 1e9).toFixed(1)} GB/s` : bytesPerSecond >= 1e6 ? `${(bytesPerSecond / 1e6).toFixed(1)} MB/s` : `${(bytesPerSecond / 1e3).toFixed(0)} kB/s`;
}

export function escape(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] ?? c);
}
