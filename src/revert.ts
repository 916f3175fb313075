/**
 * A revert stack for multi-step side effects (after LXD's `revert`): each step registers how to
 * undo itself; on failure the undos run in reverse order; `success()` keeps everything.
 */
export class Revert {
  private readonly undos: Array<() => Promise<void> | void> = [];

  add(undo: () => Promise<void> | void): void {
    this.undos.push(undo);
  }

  success(): void {
    this.undos.length = 0;
  }

  /** Runs the undos, newest first. An undo that fails does not stop the others; the errors are returned. */
  async fail(): Promise<unknown[]> {
    const errors: unknown[] = [];
    for (const undo of this.undos.splice(0).reverse()) {
      try {
        await undo();
      } catch (error) {
        errors.push(error);
      }
    }
    return errors;
  }

  /** Runs `work`; if it throws, unwinds and rethrows the original error (undo failures attached as `cause`). */
  static async run<T>(work: (revert: Revert) => Promise<T>): Promise<T> {
    const revert = new Revert();
    try {
      const result = await work(revert);
      revert.success();
      return result;
    } catch (error) {
      const undoErrors = await revert.fail();
      if (undoErrors.length > 0 && error instanceof Error && error.cause === undefined) {
        Object.defineProperty(error, 'cause', { value: new AggregateError(undoErrors, 'undo failed'), enumerable: false });
      }
      throw error;
    }
  }
}
