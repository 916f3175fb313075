import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { renderApiReference } from '../../src/daemon/api-reference.js';
import { BODIES, ENDPOINTS } from '../../src/daemon/endpoints.js';

describe('docs/api.md', () => {
  it('is what the endpoint table and schemas render (run `npm run docs:api` after changing them)', async () => {
    expect(await readFile(new URL('../../docs/api.md', import.meta.url), 'utf8')).toBe(renderApiReference());
  });

  it('documents every endpoint and every body field', () => {
    const doc = renderApiReference();
    for (const endpoint of Object.values(ENDPOINTS)) expect(doc).toContain(`### \`${endpoint.method} ${endpoint.path}\``);
    for (const schema of Object.values(BODIES)) for (const key of Object.keys(schema)) expect(doc).toContain(`| \`${key}\` |`);
    expect(doc).toContain('| `disks[].file` | absolute path | yes |');
  });
});
