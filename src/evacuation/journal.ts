/**
 * Evacuation batches on disk, one fsync'd file each (state-file.ts), rewritten at every change:
 * a restarted daemon resumes the unfinished ones and keeps the others as history. A damaged file
 * is reported, never trusted.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CowbufError } from '../errors.js';
import { OrderedWrites, readState } from '../state-file.js';
import type { BatchState } from './progress.js';

export class EvacuationJournal {
  private readonly writes = new OrderedWrites();

  constructor(private readonly dir: string) {}

  async save(state: BatchState): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.writes.write(join(this.dir, `${state.id}.json`), state);
  }

  /** Every batch saved, oldest first. @throws CowbufError naming a damaged file */
  async load(): Promise<BatchState[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const files = (await readdir(this.dir)).filter((file) => file.endsWith('.json'));
    const states = await Promise.all(
      files.map(async (file) => {
        const state = await readState<Partial<BatchState> | undefined>(join(this.dir, file), undefined);
        if (typeof state?.id !== 'string' || typeof state.status !== 'string' || !Array.isArray(state.vms) || typeof state.plan !== 'object') throw new CowbufError(`damaged evacuation journal entry ${join(this.dir, file)}`);
        return state as BatchState;
      }),
    );
    return states.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
}
