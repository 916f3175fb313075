/** `cowbuf buffer show|set`: the migration buffer's state, and its one setting, `size`. */
import { Command } from 'commander';
import { loadConfig, setConfigValue, volumeConfig, type Config } from '../../config/config.js';
import { VolumeMissingError, ValidationError } from '../../errors.js';
import { openVolume } from '../../storage/registry.js';
import { formatBytes, parsePositiveSize } from '../../units.js';
import { ApiClient, ApiError } from '../client.js';
import { parseFormat, render, table } from '../format.js';
import { configPath, type Io } from '../io.js';

async function requireConfig(command: Command): Promise<{ path: string; config: Config }> {
  const path = configPath(command);
  const config = await loadConfig(path);
  if (!config) throw new VolumeMissingError(`${path} (no configuration)`);
  return { path, config };
}

export function bufferCommand(io: Io): Command {
  const buffer = new Command('buffer').description('show or change the migration buffer');
  buffer
    .command('show')
    .description('size, use and overlays of the migration buffer')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (flags: { format?: string }, command: Command) => {
      const format = parseFormat(flags.format);
      const { config } = await requireConfig(command);
      const volume = openVolume(volumeConfig(config));
      const status = await volume.status();
      const data = { ...status, capabilities: volume.capabilities };
      io.stdout(
        render(format, data, () =>
          [
            table(
              ['DRIVER', 'SOURCE', 'SIZE', 'USED', 'AVAILABLE', 'HARD LIMIT'],
              [[status.driver, status.source, formatBytes(status.size), formatBytes(status.used), formatBytes(status.available), volume.capabilities.hardLimit ? 'yes' : 'no (accounting)']],
            ),
            status.overlays.length > 0 ? `\n${table(['OVERLAY', 'ALLOCATED'], status.overlays.map((o) => [o.name, formatBytes(o.allocated)]))}` : '',
          ].join(''),
        ),
      );
    });
  buffer
    .command('set')
    .description('change a buffer setting: size=SIZE (grow any time; never below the bytes in use)')
    .argument('<key=value...>', 'settings, e.g. size=20GiB')
    .action(async (pairs: string[], _flags: unknown, command: Command) => {
      const { path, config } = await requireConfig(command);
      let size: number | undefined;
      for (const pair of pairs) {
        const [key, value] = pair.split(/=(.*)/s);
        if (key !== 'size' || value === undefined) throw new ValidationError('buffer setting', pair, '`size=SIZE` (the only setting)');
        size = parsePositiveSize('size', value);
      }
      if (size === undefined) return;
      // With a daemon running, it resizes (and re-partitions its migrations); without one, the
      // volume is resized here.
      const client = await ApiClient.for(command);
      try {
        await client.call('PATCH', '/1.0/buffer', { size });
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 0) throw error;
        await openVolume(volumeConfig(config)).resize(size);
      }
      await setConfigValue(path, ['buffer', 'size'], String(size));
      io.stdout(`buffer size set to ${formatBytes(size)}\n`);
    });
  return buffer;
}
