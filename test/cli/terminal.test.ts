import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { loadConfig } from '../../src/config/config.js';
import { run } from '../../src/exec/run.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('terminal');
const ENTRY = fileURLToPath(new URL('../../src/cli/entry.ts', import.meta.url));

async function completionScript(): Promise<string> {
  let script = '';
  await main(['node', 'cowbuf', 'completion', 'bash'], { stdout: (t) => (script += t), stderr: () => undefined });
  return script;
}

describe('cowbuf in a terminal', { timeout: 60_000 }, () => {
  it('completes commands and options in bash', async () => {
    const script = await completionScript();
    const complete = async (...words: string[]) => {
      const { stdout } = await run('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _cowbuf; echo "\${COMPREPLY[@]}"`]);
      return stdout.split(' ').filter(Boolean).sort();
    };
    expect(await complete('cowbuf', 'buffer', '')).toEqual(['set', 'show']);
    expect(await complete('cowbuf', 'mi')).toEqual(['migrate']);
    expect(await complete('cowbuf', 'migrate', 'vm1', '--t')).toEqual(['--target']);
  });

  it('asks the init questions at a real terminal (tmux) and takes the typed answers', async () => {
    const session = `cbt${process.pid}`;
    const config = join(tempDir(), 'cowbuf.yaml');
    const command = `PATH=/usr/bin:/bin ${process.execPath} --import tsx ${ENTRY} --config ${config} init --state-dir ${join(tempDir(), 'state')}; echo EXIT=$?; sleep 30`;
    await run('tmux', ['new-session', '-d', '-s', session, '-x', '160', '-y', '40', command], { timeoutMs: 10_000 });
    const screen = async () => (await run('tmux', ['capture-pane', '-p', '-t', session])).stdout;
    const waitFor = async (text: string) => {
      for (let i = 0; i < 150; i += 1) {
        const shown = await screen();
        if (shown.includes(text)) return shown;
        await sleep(100);
      }
      throw new Error(`terminal never showed ${JSON.stringify(text)}:\n${await screen()}`);
    };
    try {
      // capture-pane drops trailing blanks, so prompts are matched without their final space.
      await waitFor('Name of the storage backend for the migration buffer (zfs, dir) [default=dir]:');
      await run('tmux', ['send-keys', '-t', session, 'dir', 'Enter']);
      await waitFor('Size of the migration buffer [default=10.0GiB]:');
      await run('tmux', ['send-keys', '-t', session, 'lots', 'Enter']);
      await waitFor('Invalid input: Expected `size` to be a size');
      await run('tmux', ['send-keys', '-t', session, '1GiB', 'Enter']);
      const done = await waitFor('EXIT=');
      expect(done).toContain('cowbuf initialised: dir buffer');
      expect(done).toContain('EXIT=0');
      expect((await loadConfig(config))?.buffer).toMatchObject({ driver: 'dir', size: 1024 ** 3 });
    } finally {
      await run('tmux', ['kill-session', '-t', session], { okExitCodes: [1] });
    }
  });
});
