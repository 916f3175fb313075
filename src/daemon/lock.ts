/** One cowbufd per state directory: a pid file taken exclusively, stale ones (dead pid) replaced. */
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CowbufError } from '../errors.js';
import { processAlive } from '../exec/run.js';

export class AlreadyRunningError extends CowbufError {
  override readonly name: string = 'AlreadyRunningError';
}


/** @returns a release function. @throws AlreadyRunningError naming the other daemon's pid */
export async function lockStateDir(stateDir: string): Promise<() => Promise<void>> {
  const path = join(stateDir, 'cowbufd.pid');
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const file = await open(path, 'wx', 0o644);
      await file.write(`${process.pid}\n`);
      await file.sync();
      await file.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (pid && pid !== process.pid && processAlive(pid)) throw new AlreadyRunningError(`another cowbufd (pid ${pid}) already runs on ${stateDir}`);
      await rm(path, { force: true });
    }
  }
  throw new AlreadyRunningError(`cannot lock ${stateDir}`);
}
