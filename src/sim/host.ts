/**
 * One host's outgoing migrations under its daemon: the buffer they share (or, for `size-state`,
 * each VM's own cap), the simulated daemon that decides γ from lagged samples, and what a tick
 * does to them. `simulate` drives one of these over the scenario's one link; the cluster
 * simulator drives one per draining host, each migration at its own share of the links between
 * hosts. Every tick, in this order: `beginTick`, `advanceAll`, (the caller's trace), `releaseEnded`.
 */
import { DaemonView, type MigrationReading } from './daemon-view.js';
import type { SimPolicy } from './policies.js';
import type { Phase } from './report.js';
import { advance, end, isOpen, reportedRemaining, throttleFactor, type Run } from './run.js';
import type { ScenarioControl } from './scenario.js';

export class HostSim {
  readonly daemon: DaemonView;
  /** Ticks in which the overlays needed more space than the buffer (or a VM's cap) could give. */
  overflowEvents = 0;
  peakBuffer = 0;
  private readonly shared: boolean;
  private linkBytes = 0;
  private nextControl = 0;

  constructor(
    private readonly bufferSize: number,
    policy: SimPolicy,
    private readonly control: ScenarioControl,
  ) {
    this.daemon = new DaemonView(bufferSize, policy, control);
    this.shared = policy.buffer === 'shared';
  }

  /** `run` starts (its phase already set): the daemon re-cuts the bins. `open`: every open run, `run` included. */
  admit(run: Run, open: readonly Run[]): void {
    if (this.shared) this.daemon.admit(run.spec.id, reportedRemaining(run), new Map(open.map((other) => [other.spec.id, other.cow] as const)));
  }

  /** Start of a tick: the γ decided at the last control tick takes effect. `active`: the open runs. */
  beginTick(active: readonly Run[]): void {
    this.daemon.applyPending(new Map(active.map((run) => [run.spec.id, throttleFactor(run)])));
  }

  /**
   * Advances every active run at its share, holds the overlays to the disk, records the sample
   * and, on control ticks, lets the daemon decide; what no bin can hold fails.
   * @param granted bytes/s the runs were given in all: using less of it marks the sample app-limited
   * @returns bytes the runs put on the link
   */
  advanceAll(t: number, dt: number, active: readonly Run[], shareOf: (run: Run) => number, granted: number): number {
    const { control } = this;
    let sent = 0;
    let onDisk = active.reduce((sum, run) => sum + run.cow, 0);
    let overflowed = false;
    for (const run of active) {
      const cowBefore = run.cow;
      sent += advance(run, { t, dt, share: shareOf(run), gamma: this.daemon.throttleOf(run.spec.id), mirrorReadySeconds: control.mirrorReadySeconds, targetStartSeconds: control.targetStartSeconds, convergence: control.convergence });
      const room = this.shared ? this.bufferSize - (onDisk - cowBefore) : (run.spec.sizeState ?? Infinity);
      if (holdToDisk(run, cowBefore, room, t + dt)) overflowed = true;
      onDisk += run.cow - cowBefore;
    }
    this.linkBytes += sent;
    this.peakBuffer = Math.max(this.peakBuffer, onDisk);
    this.daemon.record({
      t: t + dt,
      linkBytes: this.linkBytes,
      saturated: sent >= 0.99 * granted * dt,
      migrations: new Map(active.map((run) => [run.spec.id, reading(run)] as const)),
    });
    if (this.shared && t + dt >= this.nextControl - 1e-9) {
      this.nextControl = t + dt + control.periodSeconds;
      const open = active.filter(isOpen);
      const mustFail = this.daemon.tick(t + dt, new Map(open.map((run) => [run.spec.id, run.phase as Phase] as const)));
      for (const id of mustFail) {
        const run = open.find((candidate) => candidate.spec.id === id);
        if (run) end(run, 'failed', t + dt, 'its overlay no longer fits any bin');
      }
      if (mustFail.length > 0) overflowed = true;
    }
    if (overflowed) this.overflowEvents += 1;
    return sent;
  }

  /** End of a tick: the runs of `active` that ended give their bins back. */
  releaseEnded(active: readonly Run[]): void {
    if (this.shared) for (const run of active) if (!isOpen(run)) this.daemon.release(run.spec.id);
  }
}

function reading(run: Run): MigrationReading {
  return { cow: run.cow, written: Math.round(run.written), remaining: reportedRemaining(run), phase: run.phase as Phase };
}

/**
 * The disk holds `room` bytes for this overlay: a write beyond it fails (the guest pauses on
 * werror=stop) and the engine rolls the migration back. Returns whether it overflowed.
 */
function holdToDisk(run: Run, cowBefore: number, room: number, at: number): boolean {
  if (run.cow <= room) return false;
  run.cow = Math.max(cowBefore, Math.floor(room));
  if (isOpen(run)) end(run, 'failed', at, 'the buffer was full');
  return true;
}
