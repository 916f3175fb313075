/**
 * Request-body schemas of the REST API: each field knows how to check an untrusted value (naming
 * the field and the value in its error) and how to describe itself. The same objects validate
 * requests in api.ts and write docs/api.md (`npm run docs:api`), so the reference cannot drift
 * from what the daemon accepts.
 */
import { isAbsolute } from 'node:path';
import { ValidationError } from '../errors.js';
import { checkName } from '../exec/run.js';
import { checkAddress } from '../peer/trust.js';
import { parsePositiveSize } from '../units.js';
import { array, number, object, string } from '../validate.js';

export interface Field<T> {
  /** How the reference shows the type. */
  readonly type: string;
  readonly doc: string;
  readonly optional: boolean;
  /** Fields of an object (or of each item of an array of objects), for the reference. */
  readonly fields?: Schema;
  /** `fields` are those of each item of an array. */
  readonly list?: boolean;
  parse(field: string, value: unknown): T;
}

export type Schema = Readonly<Record<string, Field<unknown>>>;

export type Parsed<S extends Schema> = { -readonly [K in keyof S]: S[K] extends Field<infer T> ? T : never };

function field<T>(type: string, doc: string, parse: (field: string, value: unknown) => T, fields?: Schema): Field<T> {
  return { type, doc, optional: false, parse, ...(fields ? { fields } : {}) };
}

/** The same field, absent allowed (parses to `undefined`, or `fallback` when given). */
export function optional<T>(inner: Field<T>): Field<T | undefined>;
export function optional<T>(inner: Field<T>, fallback: T): Field<T>;
export function optional<T>(inner: Field<T>, fallback?: T): Field<T | undefined> {
  return { ...inner, optional: true, parse: (name, value) => (value === undefined ? fallback : inner.parse(name, value)) };
}

export const text = (doc: string): Field<string> => field('string', doc, (name, value) => string(name, value));

export const name = (doc: string): Field<string> => field('name', doc, (f, value) => checkName(f, string(f, value)));

/** A string `check` accepts (it names the field in its error, and may normalise the value). */
export const checked = (type: string, doc: string, check: (field: string, value: string) => string): Field<string> => field(type, doc, (f, value) => check(f, string(f, value)));

export const path = (doc: string): Field<string> =>
  field('absolute path', doc, (f, value) => {
    const given = string(f, value);
    if (!isAbsolute(given) || given.includes('\0')) throw new ValidationError(f, value, 'an absolute path');
    return given;
  });

export const address = (doc: string): Field<string> => field('host:port', doc, (f, value) => checkAddress(f, string(f, value)));

export const size = (doc: string): Field<number> => field('size', doc, (f, value) => parsePositiveSize(f, value));

export const flag = (doc: string): Field<boolean> =>
  field('boolean', doc, (f, value) => {
    if (typeof value !== 'boolean') throw new ValidationError(f, value, 'true or false');
    return value;
  });

export const integer = (doc: string, min: number, max: number): Field<number> => field(`integer ${min}…${max}`, doc, (f, value) => number(f, value, { min, max, integer: true }));

export function oneOf<const T extends string>(doc: string, choices: readonly T[]): Field<T> {
  return field(choices.map((choice) => `\`${choice}\``).join(' \\| '), doc, (f, value) => {
    if (!choices.includes(value as T)) throw new ValidationError(f, value, `one of ${choices.join(', ')}`);
    return value as T;
  });
}

/** An object with exactly these fields (unknown ones refused). */
export function parseObject<S extends Schema>(schema: S, field: string, value: unknown): Parsed<S> {
  const keys = Object.keys(schema);
  const raw = object(field, value, keys.filter((key) => !schema[key]?.optional), keys.filter((key) => schema[key]?.optional));
  const prefix = field === 'body' ? '' : `${field}.`;
  return Object.fromEntries(keys.map((key) => [key, (schema[key] as Field<unknown>).parse(`${prefix}${key}`, raw[key])])) as Parsed<S>;
}

/** An array of names, each checked as `name` is (errors name the item, e.g. `targets[0]`). */
export const names = (doc: string): Field<string[]> => field('array of names', doc, (f, value) => array(f, value).map((item, index) => checkName(`${f}[${index}]`, string(`${f}[${index}]`, item))));

export function listOf<S extends Schema>(doc: string, schema: S, minLength: number): Field<Array<Parsed<S>>> {
  return { ...field(`array of objects (≥ ${minLength})`, doc, (f, value) => array(f, value, minLength).map((item, index) => parseObject(schema, `${f}[${index}]`, item)), schema), list: true };
}

export function objectOf<S extends Schema>(doc: string, schema: S): Field<Parsed<S>> {
  return field('object', doc, (f, value) => parseObject(schema, f, value), schema);
}
