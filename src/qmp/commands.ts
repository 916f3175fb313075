/**
 * One typed method per QMP command cowbuf uses, over a connected `QmpClient`. Argument names
 * follow QEMU's schema (qapi/*.json) so a reader can check them against the QMP reference;
 * comments explain choices, not the commands.
 */
import type { QmpClient, ExecuteOptions } from './client.js';

export interface StatusInfo {
  readonly status: string;
  readonly running: boolean;
}

export interface BlockJobInfo {
  readonly device: string;
  readonly type: string;
  readonly len: number;
  readonly offset: number;
  readonly ready: boolean;
  readonly status: string;
  readonly speed: number;
  /** Paused by a `job-pause` (a ready one then reads `standby`): it copies nothing until resumed. */
  readonly paused: boolean;
  /** Why a concluded job failed. */
  readonly error?: string;
}

export interface NamedBlockNode {
  readonly 'node-name': string;
  readonly drv: string;
  readonly file: string;
  readonly image: { readonly filename: string; readonly 'virtual-size': number; readonly 'actual-size'?: number };
}

export interface BlockStatsEntry {
  readonly device?: string;
  readonly qdev?: string;
  readonly 'node-name'?: string;
  readonly stats: { readonly wr_bytes: number; readonly wr_operations: number; readonly rd_bytes: number; readonly wr_highest_offset: number };
  /** The node's file child (protocol layer), e.g. the file under a qcow2 node. */
  readonly parent?: BlockStatsEntry;
  readonly backing?: BlockStatsEntry;
}

export interface MigrationInfo {
  readonly status?: string;
  readonly 'total-time'?: number;
  readonly downtime?: number;
  readonly 'expected-downtime'?: number;
  readonly 'cpu-throttle-percentage'?: number;
  readonly 'error-desc'?: string;
  readonly ram?: {
    readonly transferred: number;
    readonly remaining: number;
    readonly total: number;
    readonly mbps: number;
    readonly 'dirty-sync-count': number;
    readonly 'dirty-pages-rate': number;
    /** Pages the target asked for out of turn during post-copy: its guest ran without them. */
    readonly 'postcopy-requests'?: number;
  };
}

export interface IoThrottle {
  readonly bps: number;
  readonly bps_rd: number;
  readonly bps_wr: number;
  readonly iops: number;
  readonly iops_rd: number;
  readonly iops_wr: number;
}

/** The six limits and, optionally, the rest `block_set_io_throttle` knows (`bps_max`, `group`, …). */
export type IoLimits = IoThrottle & Readonly<Record<string, number | string>>;

export type NbdServerAddress =
  | { readonly type: 'inet'; readonly data: { readonly host: string; readonly port: string } }
  | { readonly type: 'unix'; readonly data: { readonly path: string } };

export type BlockdevOptions = Readonly<Record<string, unknown>> & { readonly driver: string; readonly 'node-name': string };

export class QmpCommands {
  constructor(private readonly client: QmpClient) {}

  private run<T = void>(command: string, args?: Readonly<Record<string, unknown>>, options?: ExecuteOptions): Promise<T> {
    return this.client.execute<T>(command, args, options);
  }

  queryStatus(options?: ExecuteOptions): Promise<StatusInfo> {
    return this.run('query-status', undefined, options);
  }

  /**
   * Gratuitous ARP/RARP from every NIC, so switches learn the guest's MACs on this port. QEMU's
   * own defaults (50 ms first, 100 ms steps, 5 rounds).
   */
  announceSelf(options?: ExecuteOptions): Promise<void> {
    return this.run('announce-self', { initial: 50, max: 550, rounds: 5, step: 100 }, options);
  }

  queryKvm(options?: ExecuteOptions): Promise<{ readonly enabled: boolean; readonly present: boolean }> {
    return this.run('query-kvm', undefined, options);
  }

  cont(options?: ExecuteOptions): Promise<void> {
    return this.run('cont', undefined, options);
  }

  stop(options?: ExecuteOptions): Promise<void> {
    return this.run('stop', undefined, options);
  }

  quit(options?: ExecuteOptions): Promise<void> {
    return this.run('quit', undefined, options);
  }

  blockdevAdd(node: BlockdevOptions, options?: ExecuteOptions): Promise<void> {
    return this.run('blockdev-add', node, options);
  }

  blockdevDel(nodeName: string, options?: ExecuteOptions): Promise<void> {
    return this.run('blockdev-del', { 'node-name': nodeName }, options);
  }

  /** Makes `overlay` (added with `backing: null`) the active layer above `node`: writes now land in it. */
  blockdevSnapshot(node: string, overlay: string, options?: ExecuteOptions): Promise<void> {
    return this.run('blockdev-snapshot', { node, overlay }, options);
  }

  /**
   * `sync: top` ships only the overlay (the base travels separately); `write-blocking` makes a
   * guest write complete only once it reached the target too, so the job converges however fast
   * the guest writes (at the price of guest write latency), which `background` does not. The job
   * puts a filter node above `device`, and while it runs the guest's device writes through it: a
   * write error names that node, so it gets `filterNodeName` rather than a name QEMU makes up.
   */
  blockdevMirror(
    args: { readonly jobId: string; readonly device: string; readonly target: string; readonly sync: 'top' | 'full'; readonly copyMode: 'background' | 'write-blocking'; readonly filterNodeName?: string },
    options?: ExecuteOptions,
  ): Promise<void> {
    return this.run(
      'blockdev-mirror',
      { 'job-id': args.jobId, device: args.device, target: args.target, sync: args.sync, 'copy-mode': args.copyMode, 'auto-dismiss': false, ...(args.filterNodeName ? { 'filter-node-name': args.filterNodeName } : {}) },
      options,
    );
  }

  /** On a ready mirror this completes it *without* pivoting: the source keeps its own chain. */
  blockJobCancel(device: string, force = false, options?: ExecuteOptions): Promise<void> {
    return this.run('block-job-cancel', { device, force }, options);
  }

  blockJobComplete(device: string, options?: ExecuteOptions): Promise<void> {
    return this.run('block-job-complete', { device }, options);
  }

  /** Commits the active overlay down into its backing file (the rollback path). */
  blockCommit(args: { readonly jobId: string; readonly device: string; readonly topNode?: string; readonly baseNode?: string }, options?: ExecuteOptions): Promise<void> {
    return this.run(
      'block-commit',
      {
        'job-id': args.jobId,
        device: args.device,
        'auto-dismiss': false,
        ...(args.topNode ? { 'top-node': args.topNode } : {}),
        ...(args.baseNode ? { 'base-node': args.baseNode } : {}),
      },
      options,
    );
  }

  jobDismiss(id: string, options?: ExecuteOptions): Promise<void> {
    return this.run('job-dismiss', { id }, options);
  }

  queryBlockJobs(options?: ExecuteOptions): Promise<readonly BlockJobInfo[]> {
    return this.run('query-block-jobs', undefined, options);
  }

  queryNamedBlockNodes(options?: ExecuteOptions): Promise<readonly NamedBlockNode[]> {
    return this.run('query-named-block-nodes', { flat: true }, options);
  }

  /** One entry per guest device (with its qdev): the I/O counters are kept per device. */
  queryBlockstats(options?: ExecuteOptions): Promise<readonly BlockStatsEntry[]> {
    return this.run('query-blockstats', undefined, options);
  }

  /**
   * One entry per named node, whatever sits above it (a mirror inserts a filter over the
   * overlay): only `wr_highest_offset` is kept per node, the other counters are 0 there.
   */
  queryNodeBlockstats(options?: ExecuteOptions): Promise<readonly BlockStatsEntry[]> {
    return this.run('query-blockstats', { 'query-nodes': true }, options);
  }

  /** The I/O limits in force on each attached drive, by qdev path (all zeros: unthrottled). */
  async queryIoThrottles(options?: ExecuteOptions): Promise<ReadonlyArray<{ readonly qdev: string } & IoThrottle>> {
    return (await this.queryIoLimits(options)).map(({ qdev, limits }) => {
      const { bps, bps_rd, bps_wr, iops, iops_rd, iops_wr } = limits as unknown as IoThrottle;
      return { qdev, bps, bps_rd, bps_wr, iops, iops_rd, iops_wr };
    });
  }

  /**
   * Every limit of each attached drive as `block_set_io_throttle` takes it back (bursts, burst
   * lengths, `iops_size`, the group): what an admin set, to be restored after a migration.
   */
  async queryIoLimits(options?: ExecuteOptions): Promise<ReadonlyArray<{ readonly qdev: string; readonly limits: IoLimits }>> {
    const devices = await this.run<ReadonlyArray<{ qdev?: string; inserted?: Readonly<Record<string, unknown>> }>>('query-block', undefined, options);
    return devices.flatMap(({ qdev = '', inserted }) => {
      if (!inserted) return [];
      const limits = Object.fromEntries(Object.entries(inserted).filter(([key, value]) => (/^(bps|iops)/.test(key) && typeof value === 'number') || (key === 'group' && typeof value === 'string')));
      return [{ qdev, limits: limits as IoLimits }];
    });
  }

  /** A QOM property (a device's `werror`, say). */
  qomGet(path: string, property: string, options?: ExecuteOptions): Promise<unknown> {
    return this.run('qom-get', { path, property }, options);
  }

  /**
   * `id` is the qdev path (`<qdev-id>/virtio-backend` for virtio-blk-pci). QEMU wants all six
   * limits; 0 means unlimited, so "remove the throttle" is all zeros.
   */
  setIoThrottle(id: string, limits: Partial<IoLimits>, options?: ExecuteOptions): Promise<void> {
    return this.run('block_set_io_throttle', { id, bps: 0, bps_rd: 0, bps_wr: 0, iops: 0, iops_rd: 0, iops_wr: 0, ...limits }, options);
  }

  /** Arms BLOCK_WRITE_THRESHOLD on a node: an event the moment a write crosses `threshold` bytes. */
  setWriteThreshold(nodeName: string, threshold: number, options?: ExecuteOptions): Promise<void> {
    return this.run('block-set-write-threshold', { 'node-name': nodeName, 'write-threshold': threshold }, options);
  }

  nbdServerStart(addr: NbdServerAddress, options?: ExecuteOptions): Promise<void> {
    return this.run('nbd-server-start', { addr }, options);
  }

  nbdServerStop(options?: ExecuteOptions): Promise<void> {
    return this.run('nbd-server-stop', undefined, options);
  }

  blockExportAdd(args: { readonly id: string; readonly nodeName: string; readonly name: string; readonly writable: boolean }, options?: ExecuteOptions): Promise<void> {
    return this.run('block-export-add', { type: 'nbd', id: args.id, 'node-name': args.nodeName, name: args.name, writable: args.writable }, options);
  }

  blockExportDel(id: string, mode: 'safe' | 'hard' = 'safe', options?: ExecuteOptions): Promise<void> {
    return this.run('block-export-del', { id, mode }, options);
  }

  migrateSetCapabilities(capabilities: Readonly<Record<string, boolean>>, options?: ExecuteOptions): Promise<void> {
    return this.run(
      'migrate-set-capabilities',
      { capabilities: Object.entries(capabilities).map(([capability, state]) => ({ capability, state })) },
      options,
    );
  }

  migrateSetParameters(parameters: Readonly<Record<string, unknown>>, options?: ExecuteOptions): Promise<void> {
    return this.run('migrate-set-parameters', parameters, options);
  }

  queryMigrateParameters(options?: ExecuteOptions): Promise<Readonly<Record<string, unknown>>> {
    return this.run('query-migrate-parameters', undefined, options);
  }

  migrate(uri: string, options?: ExecuteOptions): Promise<void> {
    return this.run('migrate', { uri }, options);
  }

  /** Source side of a paused post-copy: carries on from where it stopped, on a new connection to `uri`. */
  migrateResume(uri: string, options?: ExecuteOptions): Promise<void> {
    return this.run('migrate', { uri, resume: true }, options);
  }

  /** Breaks a post-copy's stream on purpose (either side): `postcopy-paused`, from which it can be recovered. */
  migratePause(options?: ExecuteOptions): Promise<void> {
    return this.run('migrate-pause', undefined, options);
  }

  /** Target side of a paused post-copy: listens on `uri` for the source's resumed stream. */
  migrateRecover(uri: string, options?: ExecuteOptions): Promise<void> {
    return this.run('migrate-recover', { uri }, options);
  }

  migrateIncoming(uri: string, options?: ExecuteOptions): Promise<void> {
    return this.run('migrate-incoming', { uri }, options);
  }

  migrateContinue(state = 'pre-switchover', options?: ExecuteOptions): Promise<void> {
    return this.run('migrate-continue', { state }, options);
  }

  migrateCancel(options?: ExecuteOptions): Promise<void> {
    return this.run('migrate_cancel', undefined, options);
  }

  migrateStartPostcopy(options?: ExecuteOptions): Promise<void> {
    return this.run('migrate-start-postcopy', undefined, options);
  }

  queryMigrate(options?: ExecuteOptions): Promise<MigrationInfo> {
    return this.run('query-migrate', undefined, options);
  }

  /**
   * HMP reports its failures in the returned text ("Error: ..."), not as a QMP error, so callers
   * must check the output. `qemu-io -d <qdev path>` addresses a device, plain `qemu-io` a node.
   */
  humanMonitorCommand(commandLine: string, options?: ExecuteOptions): Promise<string> {
    return this.run('human-monitor-command', { 'command-line': commandLine }, options);
  }
}
