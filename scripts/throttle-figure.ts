/**
 * Draws docs/throttle-curves.svg from the real policy code: the paper's red curve (Σα = 1),
 * its penalised black curve (Σα = 2), the blue link share U/N, and our `deadline` bound for
 * comparison, for the paper's example bin (Π = 100 MB, U/N = 10 MB/s).
 *
 *     npx tsx scripts/throttle-figure.ts docs/throttle-curves.svg
 */
import { writeFile } from 'node:fs/promises';
import { admit, emptyPartition, observe } from '../src/buffer/partition.js';
import { deadline } from '../src/buffer/throttle/deadline.js';
import { lx066Red } from '../src/buffer/throttle/lx066.js';
import { computeThrottles } from '../src/buffer/throttle/policy.js';

const MB = 1e6;
const PI = 100 * MB;
const SHARE = 10 * MB;
const [W, H, L, B, T, R] = [760, 420, 70, 50, 40, 20];
const yMax = 40;
const x = (fill: number) => L + (W - L - R) * fill;
const y = (mbps: number) => H - B - ((H - B - T) * Math.min(mbps, yMax)) / yMax;
const fills = Array.from({ length: 401 }, (_, i) => i / 400);

function path(values: readonly number[]): string {
  return values.map((v, i) => `${x(fills[i] as number).toFixed(1)},${y(v / MB).toFixed(1)}`).join(' ');
}

const red = fills.map((f) => lx066Red(PI, f * PI, 1));
const black = fills.map((f) => lx066Red(PI, f * PI, 2));
const ours = fills.map((f) => {
  const partition = observe(admit(emptyPartition(PI), 'vm'), [['vm', Math.round(f * PI)]]);
  return computeThrottles(deadline, partition, new Map([['vm', { linkShare: SHARE, remainingBytes: 4 * PI, uniqueFraction: 1, periodSeconds: 0.5 }]]))[0]?.rate ?? 0;
});
const cross1 = Math.LN10 / (1 + Math.LN10);
const cross2 = Math.LN10 / (2 + Math.LN10);
const halve = Math.LN2 / (1 + Math.LN2);

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="${L}" y="22" font-size="14" font-weight="bold">Write throttle γ against overlay fill s/Π (Π = 100 MB, U/N = 10 MB/s)</text>
<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>
${[0, 10, 20, 30, 40].map((v) => `<text x="${L - 8}" y="${y(v) + 4}" text-anchor="end">${v}</text>`).join('\n')}
${[0, 0.2, 0.4, 0.6, 0.8, 1].map((f) => `<text x="${x(f)}" y="${H - B + 18}" text-anchor="middle">${f.toFixed(1)}</text>`).join('\n')}
<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">overlay fill s/Π</text>
<text x="18" y="${(T + H - B) / 2}" transform="rotate(-90 18 ${(T + H - B) / 2})" text-anchor="middle">MB/s (red term clipped at ${yMax})</text>
<polyline points="${path(red)}" fill="none" stroke="#d62728" stroke-width="2"/>
<polyline points="${path(black)}" fill="none" stroke="#000" stroke-width="2"/>
<polyline points="${path(fills.map(() => SHARE))}" fill="none" stroke="#1f77b4" stroke-width="2"/>
<polyline points="${path(ours)}" fill="none" stroke="#2ca02c" stroke-width="2" stroke-dasharray="6 4"/>
<line x1="${x(cross1)}" y1="${y(10)}" x2="${x(cross1)}" y2="${H - B}" stroke="#d62728" stroke-dasharray="2 3"/>
<text x="${x(cross1) + 4}" y="${H - B - 6}" fill="#d62728">${cross1.toFixed(3)}</text>
<line x1="${x(cross2)}" y1="${y(10)}" x2="${x(cross2)}" y2="${H - B}" stroke="#000" stroke-dasharray="2 3"/>
<text x="${x(cross2) + 4}" y="${H - B - 20}">${cross2.toFixed(3)}</text>
<line x1="${x(halve)}" y1="${T}" x2="${x(halve)}" y2="${H - B}" stroke="#999" stroke-dasharray="1 4"/>
<text x="${x(halve) + 4}" y="${T + 14}" fill="#666">black = red/2 at ${halve.toFixed(3)}</text>
<g transform="translate(${W - R - 290}, ${T + 30})">
<line x1="0" y1="0" x2="24" y2="0" stroke="#d62728" stroke-width="2"/><text x="30" y="4">red: lx066, Σα = 1</text>
<line x1="0" y1="18" x2="24" y2="18" stroke="#000" stroke-width="2"/><text x="30" y="22">black: lx066 sharded, Σα = 2</text>
<line x1="0" y1="36" x2="24" y2="36" stroke="#1f77b4" stroke-width="2"/><text x="30" y="40">blue: link share U/N</text>
<line x1="0" y1="54" x2="24" y2="54" stroke="#2ca02c" stroke-width="2" stroke-dasharray="6 4"/><text x="30" y="58">green: deadline, 400 MB still to ship</text>
</g>
</svg>
`;
await writeFile(process.argv[2] ?? 'docs/throttle-curves.svg', svg);
