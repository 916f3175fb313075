/** Writes docs/api.md from the endpoint table (`npm run docs:api`). */
import { writeFile } from 'node:fs/promises';
import { renderApiReference } from '../src/daemon/api-reference.js';

await writeFile(new URL('../docs/api.md', import.meta.url), renderApiReference());
