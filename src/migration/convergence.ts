/**
 * The RAM convergence policy (DESIGN §6), pure: what to switch on before `migrate`, and what to
 * do at each progress sample. Anchors from the seeds and TESTBED.md: plain pre-copy, xbzrle and
 * multifd alone did not converge against a guest dirtying faster than the link; auto-converge
 * (CPU throttle 20 % → +10 %) did, and post-copy finished fastest but is an opt-in because a
 * failure after the switch loses the guest. So: auto-converge on, the downtime limit stepped up
 * over time, multifd only on fast links, xbzrle opt-in, a completion timeout per GiB of RAM +
 * disk, and a stall detector on `ram.remaining`; when either fires, the final action is post-copy
 * if allowed, else abort (and roll back).
 */

export interface ConvergenceConfig {
  readonly downtimeStartMs: number;
  readonly downtimeStepMs: number;
  readonly downtimeMaxMs: number;
  readonly downtimeStepSeconds: number;
  readonly autoConverge: boolean;
  readonly cpuThrottleInitial: number;
  readonly cpuThrottleIncrement: number;
  /**
   * QEMU's `throttle-trigger-threshold`: auto-converge throttles the vCPUs only once the guest
   * dirties more than this % of what the link carried in a period. QEMU's 50 slows a guest whose
   * RAM converges anyway. 100 would never fire: a pass that cannot converge re-dirties exactly
   * what it sends (remaining stays flat, the ratio is 1), so 90 throttles only a guest that
   * leaves remaining RAM shrinking by less than a tenth of what crosses: the last resort (seed 001).
   */
  readonly throttleTriggerPercent: number;
  readonly xbzrle: boolean;
  /** xbzrle cache as a fraction of guest RAM. */
  readonly xbzrleCacheFraction: number;
  /** Links measured faster than this (bytes/s) use multifd. */
  readonly multifdAboveBytesPerSecond: number;
  readonly multifdChannels: number;
  /** Escalate to post-copy instead of aborting. */
  readonly postcopy: boolean;
  readonly timeoutSecondsPerGiB: number;
  readonly timeoutMinSeconds: number;
  /** Abort (or escalate) when remaining RAM has not reached a new low for this long. */
  readonly stallSeconds: number;
}

export const DEFAULT_CONVERGENCE: ConvergenceConfig = {
  downtimeStartMs: 300,
  downtimeStepMs: 200,
  downtimeMaxMs: 2000,
  downtimeStepSeconds: 10,
  autoConverge: true,
  cpuThrottleInitial: 20,
  cpuThrottleIncrement: 10,
  throttleTriggerPercent: 90,
  xbzrle: false,
  xbzrleCacheFraction: 0.01,
  multifdAboveBytesPerSecond: 1.25e9,
  multifdChannels: 4,
  postcopy: false,
  timeoutSecondsPerGiB: 120,
  timeoutMinSeconds: 120,
  stallSeconds: 60,
};

export interface MigrationSetup {
  /** Set on the source; `postcopy-ram` and `multifd` must be set on the target too. */
  readonly capabilities: Readonly<Record<string, boolean>>;
  readonly parameters: Readonly<Record<string, number>>;
  /** Seconds after which the migration must have completed. */
  readonly timeoutSeconds: number;
}

const GiB = 1024 ** 3;

export function migrationSetup(config: ConvergenceConfig, ramBytes: number, diskBytes: number, linkBytesPerSecond: number): MigrationSetup {
  // QEMU before 10.0 cannot run post-copy over multifd channels (the test bed's 7.2 fails the
  // migration with "Unable to write to socket"): when post-copy may be needed, one stream.
  const multifd = !config.postcopy && linkBytesPerSecond > config.multifdAboveBytesPerSecond;
  return {
    capabilities: {
      events: true,
      'pause-before-switchover': true,
      'auto-converge': config.autoConverge,
      xbzrle: config.xbzrle,
      multifd,
      'postcopy-ram': config.postcopy,
    },
    parameters: {
      'downtime-limit': config.downtimeStartMs,
      // QEMU times its switchover by what it could write, and the proxy and TCP buffers take
      // writes faster than the link carries them: unbounded, QEMU stops the guest with more left
      // than the downtime limit allows. So it is held near the measured link, and told it (QEMU
      // 8.2+). Unmeasured, QEMU's default cap (128 MiB/s) would hide a fast link: no cap.
      'max-bandwidth': linkBytesPerSecond > 0 ? Math.round(linkBytesPerSecond * 1.05) : 4 * GiB,
      ...(linkBytesPerSecond > 0 ? { 'avail-switchover-bandwidth': Math.round(linkBytesPerSecond) } : {}),
      'cpu-throttle-initial': config.cpuThrottleInitial,
      'cpu-throttle-increment': config.cpuThrottleIncrement,
      'throttle-trigger-threshold': config.throttleTriggerPercent,
      ...(config.xbzrle ? { 'xbzrle-cache-size': Math.max(4 * 1024 ** 2, Math.round(ramBytes * config.xbzrleCacheFraction)) } : {}),
      ...(multifd ? { 'multifd-channels': config.multifdChannels } : {}),
    },
    timeoutSeconds: Math.max(config.timeoutMinSeconds, ((ramBytes + diskBytes) / GiB) * config.timeoutSecondsPerGiB),
  };
}

export interface ConvergenceState {
  readonly startedAt: number;
  readonly downtimeMs: number;
  readonly lastStepAt: number;
  readonly lowestRemaining: number;
  readonly lowestAt: number;
  /** When `ram.transferred` last grew, and to what: RAM that stalls with nothing moving is a cut link. */
  readonly movedAt: number;
  readonly transferred: number | undefined;
  readonly postcopyStarted: boolean;
  /** The guest CPU throttle auto-converge has reached, percent (0: not throttled). */
  readonly cpuThrottlePercent: number;
  /** The sample that opened the current auto-converge period, and how many periods in a row dirtied too much. */
  readonly periodStart: ProgressSample | undefined;
  readonly dirtyPeriods: number;
}

export interface ProgressSample {
  readonly t: number;
  readonly remaining: number;
  /** Cumulative RAM bytes sent (query-migrate `ram.transferred`): with it, auto-converge's steps are followed. */
  readonly transferred?: number;
}

export type ConvergenceAction =
  | { readonly kind: 'set-downtime'; readonly ms: number }
  | { readonly kind: 'cpu-throttle'; readonly percent: number }

  | { readonly kind: 'start-postcopy'; readonly reason: string }
  | { readonly kind: 'abort'; readonly reason: string };

/**
 * QEMU's auto-converge rule (migration_trigger_throttle): at every dirty-bitmap sync, about once
 * a second, a period that dirtied more than `throttle-trigger-threshold` (`throttleTriggerPercent`) of what it sent
 * counts as high; the second high period in a row throttles the guest CPU, to
 * cpu-throttle-initial the first time, then by cpu-throttle-increment more, at most 99 %.
 */
const SYNC_PERIOD_SECONDS = 1;
const HIGH_PERIODS_TO_THROTTLE = 2;
const CPU_THROTTLE_MAX = 99;

export function startConvergence(config: ConvergenceConfig, t: number): ConvergenceState {
  return {
    startedAt: t,
    downtimeMs: config.downtimeStartMs,
    lastStepAt: t,
    lowestRemaining: Infinity,
    lowestAt: t,
    movedAt: t,
    transferred: undefined,
    postcopyStarted: false,
    cpuThrottlePercent: 0,
    periodStart: undefined,
    dirtyPeriods: 0,
  };
}

/** Follows auto-converge over one sample: the state, and the throttle percent when it stepped. */
function autoConverge(config: ConvergenceConfig, state: ConvergenceState, sample: ProgressSample): { state: ConvergenceState; percent?: number } {
  if (!config.autoConverge || sample.transferred === undefined) return { state };
  const start = state.periodStart;
  if (start?.transferred === undefined) return { state: { ...state, periodStart: sample } };
  if (sample.t - start.t < SYNC_PERIOD_SECONDS) return { state };
  const sent = sample.transferred - start.transferred;
  const dirtied = sent - (start.remaining - sample.remaining);
  const dirtyPeriods = dirtied > (config.throttleTriggerPercent / 100) * sent ? state.dirtyPeriods + 1 : 0;
  if (dirtyPeriods < HIGH_PERIODS_TO_THROTTLE) return { state: { ...state, periodStart: sample, dirtyPeriods } };
  const percent = state.cpuThrottlePercent === 0 ? config.cpuThrottleInitial : Math.min(CPU_THROTTLE_MAX, state.cpuThrottlePercent + config.cpuThrottleIncrement);
  const stepped = percent !== state.cpuThrottlePercent;
  return { state: { ...state, periodStart: sample, dirtyPeriods: 0, cpuThrottlePercent: percent }, ...(stepped ? { percent } : {}) };
}

/** One decision per progress sample; every action carries the reason it is logged with. */
export function decide(config: ConvergenceConfig, setup: MigrationSetup, state: ConvergenceState, sample: ProgressSample): { state: ConvergenceState; actions: ConvergenceAction[] } {
  const actions: ConvergenceAction[] = [];
  let next = state;
  if (sample.remaining < state.lowestRemaining) next = { ...next, lowestRemaining: sample.remaining, lowestAt: sample.t };
  if (sample.transferred !== undefined && sample.transferred > (next.transferred ?? -1)) {
    next = { ...next, transferred: sample.transferred, movedAt: next.transferred === undefined ? next.movedAt : sample.t };
  }
  // A longer blackout is the price of convergence, paid only while remaining RAM stopped falling.
  const stepDue = sample.t - next.lastStepAt >= config.downtimeStepSeconds && sample.t - next.lowestAt >= config.downtimeStepSeconds;
  if (stepDue && next.downtimeMs < config.downtimeMaxMs) {
    const ms = Math.min(config.downtimeMaxMs, next.downtimeMs + config.downtimeStepMs);
    next = { ...next, downtimeMs: ms, lastStepAt: sample.t };
    actions.push({ kind: 'set-downtime', ms });
  }
  if (next.postcopyStarted) return { state: next, actions };
  const throttle = autoConverge(config, next, sample);
  next = throttle.state;
  if (throttle.percent !== undefined) actions.push({ kind: 'cpu-throttle', percent: throttle.percent });
  const elapsed = sample.t - next.startedAt;
  const stalled = sample.t - next.lowestAt >= config.stallSeconds;
  const late = elapsed >= setup.timeoutSeconds;
  // Into a cut link, post-copy would stop the guest here and never start it there.
  const cut = sample.transferred !== undefined && sample.t - next.movedAt >= config.stallSeconds;
  if ((stalled || late) && cut) {
    actions.push({ kind: 'abort', reason: `RAM moved nothing for ${Math.round(sample.t - next.movedAt)} s: the link looks cut, and post-copy would leave the guest running nowhere` });
  } else if (stalled || late) {
    const reason = late
      ? `not complete after ${Math.round(elapsed)} s (limit ${Math.round(setup.timeoutSeconds)} s)`
      : `remaining RAM has not fallen below ${next.lowestRemaining} bytes for ${Math.round(sample.t - next.lowestAt)} s`;
    if (config.postcopy) {
      next = { ...next, postcopyStarted: true };
      actions.push({ kind: 'start-postcopy', reason });
    } else {
      actions.push({ kind: 'abort', reason });
    }
  }
  return { state: next, actions };
}
