import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { clusterScenarioPath, scenarioPath } from '../support/scenarios.js';
import { useTempDir } from '../support/temp-dir.js';

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'cowbuf', ...args], { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

const tempDir = useTempDir('sim');

describe('cowbuf sim', () => {
  it('lists the policies one per line', async () => {
    const { code, stdout } = await cli('sim', '--list-policies');
    expect(code).toBe(0);
    expect(stdout).toBe('none\nsize-state\nlx066\ndeadline\n');
  });

  it('prints the JSON summary in the documented shape', async () => {
    const { code, stdout } = await cli('sim', scenarioPath('slow-link-flap'), '--policy', 'lx066', '--json');
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as Record<string, unknown>;
    expect(Object.keys(result)).toEqual(
      expect.arrayContaining(['scenario', 'policy', 'completed', 'failed', 'overflowEvents', 'freezeEvents', 'shardEvents', 'peakBufferBytes', 'makespanSeconds', 'lowerBoundSeconds', 'retainedWriteFraction', 'floorSeconds', 'starvedSeconds', 'migrations']),
    );
    expect(result).toMatchObject({ scenario: 'slow-link-flap', policy: 'lx066', completed: 0, failed: 2 });
  });

  it('writes one trace line per tick and a readable SVG', async () => {
    const trace = join(tempDir(), 't.jsonl');
    const plot = join(tempDir(), 'p.svg');
    const { code } = await cli('sim', scenarioPath('staggered-four'), '--trace', trace, '--plot', plot);
    expect(code).toBe(0);
    const lines = (await readFile(trace, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { t: number; migrations: unknown[] });
    expect(lines[0]?.t).toBe(0);
    expect(lines[1]?.t).toBe(0.5);
    const svg = await readFile(plot, 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('staggered-four — policy deadline: 4 completed, 0 failed');
  });

  it.each([
    [['sim', 'nope.json'], 'Error: Expected `scenario` to be a readable file, got `nope.json`\n'],
    [['sim'], 'Error: Expected `scenario` to be a scenario file path, got nothing\n'],
  ])('fails with one clear line and exit 2: %j', async (args, message) => {
    const { code, stderr } = await cli(...args);
    expect(code).toBe(2);
    expect(stderr).toBe(message);
  });

  it('names a bad field of a scenario file', async () => {
    const path = join(tempDir(), 'bad.json');
    await writeFile(path, JSON.stringify({ name: 'x', buffer: { size: '1 parsec' }, link: { bandwidth: '1Gbit' }, migrations: [] }));
    const { code, stderr } = await cli('sim', path);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^Error: Expected `buffer.size` to be a size such as `10GiB`.*got `1 parsec`\n$/);
    await writeFile(path, '{"name": ');
    expect((await cli('sim', path)).stderr).toMatch(/^Error: Expected `scenario` to be valid JSON/);
  });

  it('works as the installed `cowbuf` binary', async () => {
    const bin = new URL('../../bin/cowbuf.js', import.meta.url).pathname;
    const { stdout } = await promisify(execFile)(process.execPath, [bin, 'sim', '--list-policies']);
    expect(stdout.split('\n')).toContain('deadline');
  });

  describe('a cluster scenario', () => {
    it('compares every evacuation rule in one table', async () => {
      const { code, stdout } = await cli('sim', clusterScenarioPath('drain-one-of-100'));
      expect(code).toBe(0);
      const lines = stdout.split('\n');
      expect(lines[0]).toBe('scenario drain-one-of-100: 100 hosts, 2420 VMs; drain of gen3-01 (36 VMs, 3.6 TiB of disk and RAM to start with)');
      expect(lines[1]).toBe("throttle policy deadline; floor 1259 s (those bytes over each drained host's uplink)");
      expect(lines[3]).toMatch(/^\| rule \| moved \| failed \| left behind \|/);
      expect(lines.filter((line) => line.startsWith('| ')).map((line) => line.split(' | ')[0])).toEqual(['| rule', '| ---', '| cowbuf', '| incus', '| kubevirt', '| vmware']);
    });

    it('runs one rule as JSON, with a plot and a trace', async () => {
      const plot = join(tempDir(), 'c.svg');
      const trace = join(tempDir(), 'c.jsonl');
      const { code, stdout } = await cli('sim', clusterScenarioPath('drain-one-of-100'), '--strategy', 'kubevirt', '--json', '--plot', plot, '--trace', trace);
      expect(code).toBe(0);
      const output = JSON.parse(stdout) as { scenario: string; policy: string; results: { strategy: string; completed: number }[] };
      expect(output).toMatchObject({ scenario: 'drain-one-of-100', policy: 'deadline', results: [{ strategy: 'kubevirt', completed: 36 }] });
      expect(await readFile(plot, 'utf8')).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[\s\S]*kubevirt/);
      const first = JSON.parse((await readFile(trace, 'utf8')).split('\n')[0] ?? '') as Record<string, unknown>;
      expect(Object.keys(first)).toEqual(['strategy', 't', 'running', 'rate', 'buffer', 'capacity']);
    });

    it.each([
      [['--strategy', 'drs'], 'Error: Expected `--strategy` to be one of cowbuf, incus, kubevirt, vmware, got `drs`\n'],
      [['--policy', 'fast'], 'Error: Expected `--policy` to be one of none, size-state, lx066, deadline, got `fast`\n'],
    ])('refuses %j with one line', async (flags, message) => {
      const { code, stderr } = await cli('sim', clusterScenarioPath('rolling-100'), ...flags);
      expect(code).toBe(2);
      expect(stderr).toBe(message);
    });

    it('refuses a rule for a single-host scenario', async () => {
      const { code, stderr } = await cli('sim', scenarioPath('staggered-four'), '--strategy', 'cowbuf');
      expect(code).toBe(2);
      expect(stderr).toBe('Error: Expected `--strategy` to be absent (only cluster scenarios have evacuation rules), got `cowbuf`\n');
    });
  });
});
