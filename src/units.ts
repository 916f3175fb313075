/**
 * Sizes and rates as people write them ("10GiB", "80MB", "200Mbit") turned into integer bytes
 * and bytes per second. Used at every boundary (CLI flags, config, scenarios, API bodies);
 * nothing inward ever sees a unit string.
 */
import { ValidationError } from './errors.js';

const SIZE_UNITS: Readonly<Record<string, number>> = {
  B: 1,
  kB: 1e3,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
};

const BIT_UNITS: Readonly<Record<string, number>> = {
  bit: 1 / 8,
  kbit: 1e3 / 8,
  Mbit: 1e6 / 8,
  Gbit: 1e9 / 8,
};

const QUANTITY = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/;

function parseWith(
  field: string,
  input: unknown,
  units: Readonly<Record<string, number>>,
  expected: string,
): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 0) return input;
    throw new ValidationError(field, input, expected);
  }
  if (typeof input !== 'string') throw new ValidationError(field, input, expected);
  const match = QUANTITY.exec(input);
  if (!match) throw new ValidationError(field, input, expected);
  const [, digits = '', unit = ''] = match;
  const factor = unit === '' ? 1 : units[unit];
  if (factor === undefined) throw new ValidationError(field, input, expected);
  const value = Math.round(Number(digits) * factor);
  if (!Number.isSafeInteger(value)) throw new ValidationError(field, input, expected);
  return value;
}

const SIZE_EXPECTED = 'a size such as `10GiB` or `512MB` (units B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)';
const RATE_EXPECTED = 'a rate such as `80MB` (bytes per second) or `200Mbit` (units bit, kbit, Mbit, Gbit)';

/** A size in bytes. A bare number (or digits without a unit) counts as bytes. */
export function parseSize(field: string, input: unknown): number {
  return parseWith(field, input, SIZE_UNITS, SIZE_EXPECTED);
}

/** A rate in bytes per second: a size per second ("80MB") or bits per second ("200Mbit"). */
export function parseRate(field: string, input: unknown): number {
  return parseWith(field, input, { ...SIZE_UNITS, ...BIT_UNITS }, RATE_EXPECTED);
}

/** A size that must be strictly positive. */
export function parsePositiveSize(field: string, input: unknown): number {
  const bytes = parseSize(field, input);
  if (bytes <= 0) throw new ValidationError(field, input, `a positive size (${SIZE_EXPECTED})`);
  return bytes;
}

/** Human-readable binary size, e.g. `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}
