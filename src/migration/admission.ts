/**
 * The outgoing queue. Migrations start in the order they were asked for, each only while the
 * limits allow: fewer than `maxOutgoing` running, at least a bin's floor of buffer left, and a
 * volume that can still give what it promised. Passes run one at a time (each awaits the
 * volume); a request for one while another runs makes that one go round again.
 */
import { usedBytes, type Partition } from '../buffer/partition.js';

export interface AdmissionDeps {
  readonly maxOutgoing: number;
  readonly minBinBytes: number;
  readonly running: () => number;
  readonly partition: () => Partition;
  /** @throws when the volume cannot give what it promised (admission pauses, and says why) */
  readonly verifyRoom: () => Promise<void>;
  readonly start: (id: string) => void;
  readonly paused: (reason: string) => void;
}

export class Admission {
  private readonly queue: string[] = [];
  private admitting: Promise<void> | undefined;
  private again = false;

  constructor(private readonly deps: AdmissionDeps) {}

  push(id: string): void {
    this.queue.push(id);
  }

  /** @returns whether `id` was waiting (it waits no longer) */
  remove(id: string): boolean {
    const index = this.queue.indexOf(id);
    if (index < 0) return false;
    this.queue.splice(index, 1);
    return true;
  }

  /** Everything still waiting, which waits no longer (a shutdown). */
  drain(): string[] {
    return this.queue.splice(0);
  }

  admit(): Promise<void> {
    if (this.admitting) {
      this.again = true;
      return this.admitting;
    }
    this.admitting = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again);
    })().finally(() => {
      this.admitting = undefined;
    });
    return this.admitting;
  }

  private async pass(): Promise<void> {
    const { deps } = this;
    while (this.queue.length > 0 && deps.running() < deps.maxOutgoing) {
      const partition = deps.partition();
      if (partition.capacity - usedBytes(partition) < deps.minBinBytes) return;
      try {
        await deps.verifyRoom();
      } catch (error) {
        deps.paused((error as Error).message);
        return;
      }
      deps.start(this.queue.shift() as string);
    }
  }
}
