/**
 * Scenario files for `cowbuf sim` (format: shared/scenarios/README.md), parsed and validated at
 * the boundary into plain numbers: bytes, bytes/s, seconds.
 */
import { parsePositiveSize, parseRate, parseSize } from '../units.js';
import { array, join, number, object, string } from '../validate.js';
import { ValidationError } from '../errors.js';

export interface LinkStep {
  readonly at: number;
  readonly bandwidth: number;
}

export interface ScenarioMigration {
  readonly id: string;
  readonly start: number;
  readonly disk: number;
  readonly ram: number;
  readonly writeRate: number;
  readonly uniqueFraction: number;
  readonly ramDirtyRate: number;
  readonly sizeState: number | undefined;
}

export interface Scenario {
  readonly name: string;
  readonly tickSeconds: number;
  readonly maxSeconds: number;
  readonly bufferSize: number;
  readonly link: { readonly bandwidth: number; readonly rampSeconds: number; readonly trace: readonly LinkStep[] };
  readonly migrations: readonly ScenarioMigration[];
}

export const DEFAULT_TICK_SECONDS = 0.5;
export const DEFAULT_MAX_SECONDS = 86_400;

/** @throws ValidationError naming the first bad field, e.g. `migrations[1].writeRate` */
export function parseScenario(input: unknown): Scenario {
  const root = object('', input, ['name', 'buffer', 'link', 'migrations'], ['tickSeconds', 'maxSeconds']);
  const tickSeconds = root.tickSeconds === undefined ? DEFAULT_TICK_SECONDS : number('tickSeconds', root.tickSeconds, { min: 0, positive: true });
  const maxSeconds =
    root.maxSeconds === undefined ? DEFAULT_MAX_SECONDS : number('maxSeconds', root.maxSeconds, { min: tickSeconds });
  // Checked in document order, so the first error reported is the first bad field in the file.
  const name = string('name', root.name);
  const bufferSize = parsePositiveSize('buffer.size', object('buffer', root.buffer, ['size']).size);
  const link = object('link', root.link, ['bandwidth'], ['rampSeconds', 'trace']);
  const bandwidth = positiveRate('link.bandwidth', link.bandwidth);
  const rampSeconds = link.rampSeconds === undefined ? 0 : number('link.rampSeconds', link.rampSeconds, { min: 0 });
  const trace = link.trace === undefined ? [] : array('link.trace', link.trace).map((step, index) => parseStep(`link.trace[${index}]`, step));
  const migrations = array('migrations', root.migrations, 1).map((entry, index) => parseMigration(join('migrations', index), entry));
  const seen = new Set<string>();
  migrations.forEach((migration, index) => {
    if (seen.has(migration.id)) throw new ValidationError(`migrations[${index}].id`, migration.id, 'unique among migrations');
    seen.add(migration.id);
  });
  return {
    name,
    tickSeconds,
    maxSeconds,
    bufferSize,
    link: { bandwidth, rampSeconds, trace: [...trace].sort((a, b) => a.at - b.at) },
    migrations,
  };
}

function parseMigration(field: string, input: unknown): ScenarioMigration {
  const entry = object(
    field,
    input,
    ['id', 'start', 'disk', 'ram', 'writeRate', 'uniqueFraction', 'ramDirtyRate'],
    ['sizeState'],
  );
  return {
    id: string(`${field}.id`, entry.id),
    start: number(`${field}.start`, entry.start, { min: 0 }),
    disk: parseSize(`${field}.disk`, entry.disk),
    ram: parseSize(`${field}.ram`, entry.ram),
    writeRate: parseRate(`${field}.writeRate`, entry.writeRate),
    uniqueFraction: number(`${field}.uniqueFraction`, entry.uniqueFraction, { min: 0, max: 1 }),
    ramDirtyRate: parseRate(`${field}.ramDirtyRate`, entry.ramDirtyRate),
    sizeState: entry.sizeState === undefined ? undefined : parsePositiveSize(`${field}.sizeState`, entry.sizeState),
  };
}

function parseStep(field: string, input: unknown): LinkStep {
  const pair = array(field, input);
  if (pair.length !== 2) throw new ValidationError(field, input, 'a pair [atSecond, bandwidth]');
  return { at: number(`${field}[0]`, pair[0], { min: 0 }), bandwidth: positiveRate(`${field}[1]`, pair[1]) };
}

function positiveRate(field: string, input: unknown): number {
  const rate = parseRate(field, input);
  if (rate <= 0) throw new ValidationError(field, input, 'a positive rate');
  return rate;
}
