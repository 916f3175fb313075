/** Measurements taken by integration tests, kept in build/reports/ for closing notes and benches. */
import { mkdir, writeFile } from 'node:fs/promises';

const DIR = new URL('../../build/reports/', import.meta.url).pathname;

export async function report(name: string, data: Readonly<Record<string, unknown>>): Promise<void> {
  await mkdir(DIR, { recursive: true });
  await writeFile(`${DIR}${name}.json`, `${JSON.stringify(data, null, 2)}\n`);
  console.info(`[report] ${name}: ${JSON.stringify(data)}`);
}
