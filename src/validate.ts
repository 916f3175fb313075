/**
 * Small checkers for untrusted JSON at the boundaries (scenario files, config, API bodies, peer
 * messages). Each names the dotted field and the bad value in its `ValidationError`, and an
 * object check refuses unknown keys so a typo never silently falls back to a default.
 */
import { ValidationError } from './errors.js';

export type Json = Readonly<Record<string, unknown>>;

/** A plain object whose keys are all in `required` ∪ `optional`, with every required key present. */
export function object(field: string, value: unknown, required: readonly string[], optional: readonly string[] = []): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError(field || 'document', value, 'an object');
  }
  const record = value as Json;
  const known = new Set([...required, ...optional]);
  for (const key of Object.keys(record)) {
    if (!known.has(key)) throw new ValidationError(join(field, key), key, `absent (unknown field; known: ${[...known].join(', ')})`);
  }
  for (const key of required) {
    if (record[key] === undefined) throw new ValidationError(join(field, key), undefined, 'present (required field)');
  }
  return record;
}

/** A plain object with any keys (contents checked by the caller, if at all). */
export function record(field: string, value: unknown): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(field || 'document', value, 'an object');
  return value as Json;
}

export function string(field: string, value: unknown, pattern?: RegExp, expected = 'a non-empty string'): string {
  if (typeof value !== 'string' || value === '' || (pattern && !pattern.test(value))) {
    throw new ValidationError(field, value, expected);
  }
  return value;
}

export interface NumberRange {
  readonly min?: number;
  readonly max?: number;
  /** Excludes `min` itself. */
  readonly positive?: boolean;
  readonly integer?: boolean;
}

export function number(field: string, value: unknown, range: NumberRange = {}): number {
  const { min = -Infinity, max = Infinity, positive = false, integer = false } = range;
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (positive ? value > min : value >= min) &&
    value <= max &&
    (!integer || Number.isSafeInteger(value));
  if (!ok) {
    const bounds = [positive ? `> ${min}` : min > -Infinity ? `≥ ${min}` : '', max < Infinity ? `≤ ${max}` : '']
      .filter(Boolean)
      .join(' and ');
    throw new ValidationError(field, value, `${integer ? 'an integer' : 'a number'}${bounds ? ` ${bounds}` : ''}`);
  }
  return value;
}

export function array(field: string, value: unknown, minLength = 0): readonly unknown[] {
  if (!Array.isArray(value) || value.length < minLength) {
    throw new ValidationError(field, value, minLength > 0 ? `an array of at least ${minLength} item(s)` : 'an array');
  }
  return value;
}

export function join(field: string, key: string | number): string {
  if (typeof key === 'number') return `${field}[${key}]`;
  return field ? `${field}.${key}` : key;
}

/** An object's optional fields as `exactOptionalPropertyTypes` wants them: absent, never `undefined`. */
export type Defined<T> = { [K in keyof T as undefined extends T[K] ? never : K]: T[K] } & { [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined> };

/** The object without its `undefined` fields. */
export function defined<T extends object>(value: T): Defined<T> {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as Defined<T>;
}
