/**
 * The example embedder as a user gets it: cowbuf packed with `npm pack` (which builds it), and
 * examples/embedder installed beside that tarball, so it can reach nothing but the package's
 * public entry point.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/exec/run.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = join(REPO, 'examples', 'embedder');

/** @returns the installed example's entry script */
export async function installEmbedder(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const packed = await run('npm', ['pack', REPO, '--pack-destination', dir, '--json'], { timeoutMs: 180_000 });
  const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];
  const manifest = JSON.parse(await readFile(join(EXAMPLE, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  manifest.dependencies.cowbuf = `file:${join(dir, filename)}`;
  await writeFile(join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  await copyFile(join(EXAMPLE, 'minilxd.mjs'), join(dir, 'minilxd.mjs'));
  await run('npm', ['install', '--prefix', dir, '--prefer-offline', '--no-audit', '--no-fund'], { timeoutMs: 180_000 });
  return join(dir, 'minilxd.mjs');
}
