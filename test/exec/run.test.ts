import { describe, expect, it } from 'vitest';
import { CommandError, ValidationError } from '../../src/errors.js';
import { checkName, run } from '../../src/exec/run.js';

describe('run: the subprocess chokepoint', () => {
  it('returns stdout and stderr of a successful command, argv only (no shell)', async () => {
    expect(await run('printf', ['%s|', 'a b', '$HOME;'])).toMatchObject({ stdout: 'a b|$HOME;|', exitCode: 0 });
  });

  it('fails with the command, its arguments, exit code and stderr', async () => {
    const error = await run('sh', ['-c', 'echo boom >&2; exit 3']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect(error).toMatchObject({ cmd: 'sh', args: ['-c', 'echo boom >&2; exit 3'], exitCode: 3, stderr: 'boom', timedOut: false });
    expect((error as Error).message).toBe('`sh -c echo boom >&2; exit 3` exited with 3: boom');
  });

  it('accepts listed exit codes as success', async () => {
    expect((await run('sh', ['-c', 'exit 2'], { okExitCodes: [2] })).exitCode).toBe(2);
  });

  it('times out, aborts, and reports a missing binary, each distinctly', async () => {
    await expect(run('sleep', ['5'], { timeoutMs: 50 })).rejects.toMatchObject({ timedOut: true });
    const controller = new AbortController();
    const pending = run('sleep', ['5'], { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ aborted: true });
    const missing = await run('no-such-binary-cowbuf', []).catch((e: unknown) => e);
    expect(missing).toMatchObject({ exitCode: undefined });
    expect((missing as Error).message).toMatch(/^`no-such-binary-cowbuf` could not run \(.*ENOENT/);
  });

  it('validates names before they become argv elements', () => {
    expect(checkName('pool', 'tank-1.a_b')).toBe('tank-1.a_b');
    for (const bad of ['-rf', 'a b', 'a;b', '../x', '', 'x'.repeat(65)]) expect(() => checkName('pool', bad)).toThrow(ValidationError);
  });
});
