/** `cowbufd [--config FILE]`: runs the daemon until SIGTERM/SIGINT; SIGHUP reloads the config. */
import { pino } from 'pino';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { CowbufError } from '../errors.js';
import { startDaemon } from './daemon.js';

export async function main(argv: readonly string[]): Promise<number> {
  const flag = argv.indexOf('--config');
  const configPath = flag >= 0 ? (argv[flag + 1] ?? '') : (process.env.COWBUF_CONFIG ?? DEFAULT_CONFIG_PATH);
  // JSON lines for journald and log shippers; readable lines when a person watches a terminal.
  const log = pino({
    name: 'cowbufd',
    level: process.env.COWBUF_LOG_LEVEL ?? 'info',
    ...(process.stdout.isTTY ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
  });
  let daemon;
  try {
    daemon = await startDaemon(configPath, log);
  } catch (error) {
    if (!(error instanceof CowbufError)) throw error;
    process.stderr.write(`Error: ${error.message}\n`);
    return 1;
  }
  const running = daemon;
  await new Promise<void>((resolve) => {
    process.on('SIGHUP', () => void running.reload().catch((error: unknown) => log.error({ err: error }, 'reload failed')));
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
  });
  log.info('shutting down: rolling back what is in flight');
  await running.close();
  return 0;
}
