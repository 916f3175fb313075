/** `--format json|yaml|table` for everything the CLI lists or shows. */
import { stringify } from 'yaml';
import { ValidationError } from '../errors.js';

export type Format = 'table' | 'json' | 'yaml';

export function parseFormat(value: string | undefined): Format {
  const format = value ?? 'table';
  if (format !== 'table' && format !== 'json' && format !== 'yaml') throw new ValidationError('--format', format, '`table`, `json` or `yaml`');
  return format;
}

/** Aligned columns with a header row; every cell already a string. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function render(format: Format, data: unknown, asTable: () => string): string {
  if (format === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  if (format === 'yaml') return stringify(data);
  return asTable();
}
