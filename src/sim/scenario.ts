/**
 * Scenario files for `cowbuf sim` (format: shared/scenarios/README.md), parsed and validated at
 * the boundary into plain numbers: bytes, bytes/s, seconds.
 */
import { parseConvergence } from '../config/config.js';
import type { ConvergenceConfig } from '../migration/convergence.js';
import { parsePositiveSize, parseRate, parseSize } from '../units.js';
import { array, join, number, object, string, type Json } from '../validate.js';
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
  /**
   * Guest write pattern: writes spread evenly over this many bytes of disk, so the share that
   * lands on new clusters falls as the overlay covers them (uniqueFraction × (1 − cow ÷ set)).
   * Absent: every write has the constant uniqueFraction.
   */
  readonly workingSet: number | undefined;
  /**
   * How writes cover the working set: `random` (the default) lands each on a uniformly random
   * cluster, so new clusters thin out as the overlay fills; `sequential` cycles over it, so every
   * write is new until the overlay holds the whole set (the test bed's guest writes this way).
   */
  readonly writePattern: WritePattern;
  /** Bytes of RAM the guest keeps re-dirtying (pages outside it, once sent, stay clean); absent: all of `ram`. */
  readonly ramWorkingSet: number | undefined;
  /**
   * Bytes of RAM that hold data. Pre-copy sends a zero page as a header of a few bytes, so the
   * first pass costs the link only this much; absent: all of `ram`.
   */
  readonly ramResident: number | undefined;
}

export type WritePattern = 'random' | 'sequential';
const WRITE_PATTERNS: readonly WritePattern[] = ['random', 'sequential'];

/** How the daemon watches and acts, so policies get what they would get for real. */
export interface ScenarioControl {
  /** Seconds between two control-loop ticks (the daemon's migration.controlPeriodMs). */
  readonly periodSeconds: number;
  /** Age of the samples the loop sees: 0 where QEMU reports the written extent, a zfs sync's for st_blocks alone. */
  readonly samplingLagSeconds: number;
  /** Relative change of γ below which the throttle is not re-applied. */
  readonly hysteresis: number;
  /** Link rate assumed until the first measurement, bytes/s. */
  readonly assumedLinkRate: number;
  /** Seconds the disk mirror gets in each mode before the engine escalates. */
  readonly mirrorReadySeconds: number;
  /** Seconds from the base's end to the mirror's start: the engine starts the target's QEMU (0: at once). */
  readonly targetStartSeconds: number;
  readonly convergence: ConvergenceConfig;
}

export interface Scenario {
  readonly name: string;
  readonly tickSeconds: number;
  readonly maxSeconds: number;
  readonly bufferSize: number;
  readonly link: { readonly bandwidth: number; readonly rampSeconds: number; readonly trace: readonly LinkStep[] };
  readonly migrations: readonly ScenarioMigration[];
  readonly control: ScenarioControl;
}

export const DEFAULT_TICK_SECONDS = 0.5;
export const DEFAULT_MAX_SECONDS = 86_400;
/**
 * The daemon's defaults (config/cowbuf.example.yaml). No sampling lag: the daemon sizes an
 * overlay by the larger of st_blocks and the written extent QEMU reports, and the extent is not
 * held back by a filesystem's sync (a zfs buffer's st_blocks lags by seconds).
 */
const DEFAULT_CONTROL = { periodSeconds: 0.5, samplingLagSeconds: 0, hysteresis: 0.05, assumedLinkRate: 12_500_000, mirrorReadySeconds: 60, targetStartSeconds: 0 };

/** @throws ValidationError naming the first bad field, e.g. `migrations[1].writeRate` */
export function parseScenario(input: unknown): Scenario {
  const root = object('', input, ['name', 'buffer', 'link', 'migrations'], ['tickSeconds', 'maxSeconds', 'control']);
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
    control: parseControl(root.control),
  };
}

/** The `control` section: what the daemon does; its defaults when absent. */
export function parseControl(input: unknown): ScenarioControl {
  if (input === undefined) return { ...DEFAULT_CONTROL, convergence: parseConvergence('control.convergence', undefined) };
  const c = object('control', input, [], ['periodSeconds', 'samplingLagSeconds', 'hysteresis', 'assumedLinkRate', 'mirrorReadySeconds', 'targetStartSeconds', 'convergence']);
  const seconds = (key: 'periodSeconds' | 'samplingLagSeconds' | 'mirrorReadySeconds' | 'targetStartSeconds', min: number) =>
    c[key] === undefined ? DEFAULT_CONTROL[key] : number(`control.${key}`, c[key], { min });
  return {
    periodSeconds: seconds('periodSeconds', 0.05),
    samplingLagSeconds: seconds('samplingLagSeconds', 0),
    hysteresis: c.hysteresis === undefined ? DEFAULT_CONTROL.hysteresis : number('control.hysteresis', c.hysteresis, { min: 0, max: 1 }),
    assumedLinkRate: c.assumedLinkRate === undefined ? DEFAULT_CONTROL.assumedLinkRate : positiveRate('control.assumedLinkRate', c.assumedLinkRate),
    mirrorReadySeconds: seconds('mirrorReadySeconds', 1),
    targetStartSeconds: seconds('targetStartSeconds', 0),
    convergence: parseConvergence('control.convergence', c.convergence),
  };
}

function parseMigration(field: string, input: unknown): ScenarioMigration {
  const entry = object(field, input, ['id', 'start', ...WORKLOAD_REQUIRED], WORKLOAD_OPTIONAL);
  return { id: string(`${field}.id`, entry.id), start: number(`${field}.start`, entry.start, { min: 0 }), ...parseWorkload(field, entry) };
}

/** The fields of a migration that describe the guest and its disk, not when it moves. */
export type Workload = Omit<ScenarioMigration, 'id' | 'start'>;

export const WORKLOAD_REQUIRED = ['disk', 'ram', 'writeRate', 'uniqueFraction', 'ramDirtyRate'] as const;
export const WORKLOAD_OPTIONAL = ['sizeState', 'workingSet', 'writePattern', 'ramWorkingSet', 'ramResident'] as const;

/** The workload fields of `entry`, an object already checked for its keys. */
export function parseWorkload(field: string, entry: Json): Workload {
  return {
    disk: parseSize(`${field}.disk`, entry.disk),
    ram: parseSize(`${field}.ram`, entry.ram),
    writeRate: parseRate(`${field}.writeRate`, entry.writeRate),
    uniqueFraction: number(`${field}.uniqueFraction`, entry.uniqueFraction, { min: 0, max: 1 }),
    ramDirtyRate: parseRate(`${field}.ramDirtyRate`, entry.ramDirtyRate),
    sizeState: optionalSize(`${field}.sizeState`, entry.sizeState),
    workingSet: optionalSize(`${field}.workingSet`, entry.workingSet),
    writePattern: parsePattern(`${field}.writePattern`, entry.writePattern),
    ramWorkingSet: optionalSize(`${field}.ramWorkingSet`, entry.ramWorkingSet),
    ramResident: optionalSize(`${field}.ramResident`, entry.ramResident),
  };
}

function optionalSize(field: string, input: unknown): number | undefined {
  return input === undefined ? undefined : parsePositiveSize(field, input);
}

function parsePattern(field: string, input: unknown): WritePattern {
  if (input === undefined) return 'random';
  const pattern = WRITE_PATTERNS.find((candidate) => candidate === input);
  if (!pattern) throw new ValidationError(field, input, `one of ${WRITE_PATTERNS.join(', ')}`);
  return pattern;
}

function parseStep(field: string, input: unknown): LinkStep {
  const pair = array(field, input);
  if (pair.length !== 2) throw new ValidationError(field, input, 'a pair [atSecond, bandwidth]');
  return { at: number(`${field}[0]`, pair[0], { min: 0 }), bandwidth: positiveRate(`${field}[1]`, pair[1]) };
}

export function positiveRate(field: string, input: unknown): number {
  const rate = parseRate(field, input);
  if (rate <= 0) throw new ValidationError(field, input, 'a positive rate');
  return rate;
}
