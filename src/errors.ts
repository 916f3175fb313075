/**
 * The one rooted error tree of cowbuf. Every error the project throws on purpose is a
 * `CowbufError`, carries the values that explain it as plain fields, and keeps the
 * original failure as `cause`.
 *
 *     CowbufError
 *     ├── ValidationError          bad input at a boundary (CLI, API, config, scenario, peer)
 *     ├── CommandError             a subprocess failed (cmd, args, exit code, stderr)
 *     ├── QmpError                 see src/qmp/errors.ts
 *     ├── PeerError                the other daemon: untrusted, unreachable, or it refused
 *     │   ├── TrustError               certificate not pinned, expired, or trust store problem
 *     │   ├── PeerRequestError         a control request failed (its reason from the peer)
 *     │   ├── UnreachableError         no connection to the peer (its address, the socket's code)
 *     │   └── LinkLostError            the link to the peer acknowledged nothing for too long
 *     ├── StorageError             the buffer volume cannot do what was asked
 *     │   ├── VolumeExistsError        the volume is already there (init on an initialised host)
 *     │   ├── VolumeMissingError       no buffer volume (not initialised)
 *     │   └── InsufficientSpaceError   the pool or filesystem lacks the room
 *     ├── BufferError              a request the partition cannot honour
 *     │   ├── ShrinkBelowUsedError     resize below the bytes in use
 *     │   ├── UnknownMigrationError    id not in the partition
 *     │   └── DuplicateMigrationError  id already admitted
 *     ├── MigrationFailedError     a migration rolled back (its phase and reason; `cause` is why)
 *     ├── UnknownEvacuationError   no evacuation batch with that id
 *     ├── UnknownVmError           no VM of that name on this host
 *     ├── VmBusyError              a migration or an evacuation batch holds the VM
 *     ├── NotOfferedError          the VM provider has no such operation (an embedder's own VMs)
 *     ├── InDoubtError             past the point of no return, the target's answer has not come
 *     ├── CancelledError           an admin or a shutdown stopped a migration (not a fault)
 *     └── BufferFullError          the buffer could not hold a migration's overlay
 *
 * Errors that only make sense inside one module extend this tree where they are thrown:
 * ConfigError (config/), AlreadyInitialisedError < StorageError (cli/commands/init.ts),
 * ApiError, MigrationNotCompleted and EvacuationNotCompleted (cli/), AlreadyRunningError (daemon/lock.ts), the API's
 * HttpError (daemon/api.ts), SocketStatsError (monitor/socket-stats.ts), VmStartError
 * (vm/launcher.ts), TapError (host/tap.ts), GuestTimeoutError (testbed/guest.ts).
 */

export class CowbufError extends Error {
  override readonly name: string = 'CowbufError';
}

/** Bad input at a boundary. `field` is a dotted path, `value` what was given. */
export class ValidationError extends CowbufError {
  override readonly name: string = 'ValidationError';
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly expected: string,
    options?: ErrorOptions,
  ) {
    super(`Expected \`${field}\` to be ${expected}, got ${describe(value)}`, options);
  }
}

/** A subprocess that failed: what ran, how it ended, what it said. */
export class CommandError extends CowbufError {
  override readonly name: string = 'CommandError';
  declare readonly cmd: string;
  declare readonly args: readonly string[];
  declare readonly exitCode: number | undefined;
  declare readonly stderr: string;
  declare readonly timedOut: boolean;
  declare readonly aborted: boolean;
  /** Why it did not run at all (binary missing, ...), when there is no exit code. */
  declare readonly reason: string | undefined;

  constructor(failure: CommandFailure, options?: ErrorOptions) {
    const how = failure.timedOut
      ? 'timed out'
      : failure.aborted
        ? 'was aborted'
        : failure.exitCode === undefined
          ? `could not run (${failure.reason ?? 'unknown reason'})`
          : `exited with ${failure.exitCode}`;
    const detail = failure.stderr.trim().split('\n').slice(-3).join(' | ');
    super(`\`${[failure.cmd, ...failure.args].join(' ')}\` ${how}${detail ? `: ${detail}` : ''}`, options);
    Object.assign(this, failure);
  }
}

export type CommandFailure = Pick<CommandError, 'cmd' | 'args' | 'exitCode' | 'stderr' | 'timedOut' | 'aborted' | 'reason'>;

export class PeerError extends CowbufError {
  override readonly name: string = 'PeerError';
}

export class TrustError extends PeerError {
  override readonly name: string = 'TrustError';
}

/** A dial that got no connection: `label` (which peer) at `address`, with the socket's `code`. */
export class UnreachableError extends PeerError {
  override readonly name: string = 'UnreachableError';
  constructor(
    readonly label: string,
    readonly address: string,
    readonly code: string | undefined,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`${label} (${address}) cannot be reached: ${reason}`, options);
  }
}

/** A cut link: bytes waited to go to `peerName` and none was acknowledged for `seconds`. */
export class LinkLostError extends PeerError {
  override readonly name: string = 'LinkLostError';
  constructor(
    readonly peerName: string,
    readonly seconds: number,
  ) {
    super(`the link to ${peerName} acknowledged nothing for ${Math.round(seconds)} s with bytes waiting to go`);
  }
}

export class PeerRequestError extends PeerError {
  override readonly name: string = 'PeerRequestError';
  /**
   * @param refused the peer answered and said no; false when no answer came (timeout, lost
   *   connection), which says nothing about what the peer did
   */
  constructor(
    readonly peerName: string,
    readonly reason: string,
    readonly refused = false,
  ) {
    super(`peer ${peerName}: ${reason}`);
  }
}

export class StorageError extends CowbufError {
  override readonly name: string = 'StorageError';
}

export class VolumeExistsError extends StorageError {
  override readonly name: string = 'VolumeExistsError';
  constructor(readonly where: string) {
    super(`the migration buffer already exists at ${where}`);
  }
}

export class VolumeMissingError extends StorageError {
  override readonly name: string = 'VolumeMissingError';
  constructor(readonly where: string) {
    super(`no migration buffer at ${where} (run \`cowbuf init\`)`);
  }
}

export class InsufficientSpaceError extends StorageError {
  override readonly name: string = 'InsufficientSpaceError';
  constructor(
    readonly requested: number,
    readonly available: number,
    readonly where: string,
  ) {
    super(`${where} cannot hold ${requested} bytes: only ${available} bytes are available`);
  }
}

export class BufferError extends CowbufError {
  override readonly name: string = 'BufferError';
}

export class ShrinkBelowUsedError extends BufferError {
  override readonly name: string = 'ShrinkBelowUsedError';
  constructor(
    readonly requested: number,
    readonly floor: number,
  ) {
    super(`cannot shrink the buffer to ${requested} bytes: ${floor} bytes are in use`);
  }
}

export class UnknownMigrationError extends BufferError {
  override readonly name: string = 'UnknownMigrationError';
  constructor(readonly migration: string) {
    super(`unknown migration ${JSON.stringify(migration)}`);
  }
}

export class DuplicateMigrationError extends BufferError {
  override readonly name: string = 'DuplicateMigrationError';
  constructor(readonly migration: string) {
    super(`migration ${JSON.stringify(migration)} is already admitted`);
  }
}

export class UnknownEvacuationError extends CowbufError {
  override readonly name: string = 'UnknownEvacuationError';
  constructor(readonly evacuation: string) {
    super(`unknown evacuation ${JSON.stringify(evacuation)}`);
  }
}

export class UnknownVmError extends CowbufError {
  override readonly name: string = 'UnknownVmError';
  constructor(
    readonly vm: string,
    readonly known: readonly string[],
  ) {
    super(`unknown VM ${JSON.stringify(vm)} (this host's VMs: ${known.join(', ') || 'none'})`);
  }
}

/** `holder` names what has the VM (a migration and its phase, an evacuation batch); `action` what was refused. */
export class VmBusyError extends CowbufError {
  override readonly name: string = 'VmBusyError';
  constructor(
    readonly vm: string,
    readonly action: string,
    readonly holder: string,
  ) {
    super(`VM ${vm} cannot be ${action}: ${holder}; it can be once that is over`);
  }
}

/**
 * The VM provider leaves out an optional operation (provider.ts): an embedding daemon keeps its
 * VMs in its own store and starts or removes them itself.
 */
export class NotOfferedError extends CowbufError {
  override readonly name: string = 'NotOfferedError';
  constructor(
    readonly vm: string,
    readonly operation: string,
  ) {
    super(`VM ${vm} cannot be ${operation} here: this engine's VM provider does not offer it (the daemon embedding the engine manages its own VMs)`);
  }
}

/** Renders a rejected value for a message: short, quoted when a string, typed otherwise. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return `\`${value.length > 80 ? `${value.slice(0, 77)}...` : value}\``;
  if (value === undefined) return 'nothing';
  if (value === null) return '`null`';
  if (typeof value === 'number' || typeof value === 'boolean') return `\`${String(value)}\``;
  if (Array.isArray(value)) return value.length === 0 ? 'an empty array' : `an array of ${value.length} item(s)`;
  return `a ${typeof value}`;
}

/** An admin asked for it (`cowbuf cancel`), as opposed to a fault. */
export class CancelledError extends CowbufError {
  override readonly name: string = 'CancelledError';
}

export class BufferFullError extends CowbufError {
  override readonly name: string = 'BufferFullError';
}

/**
 * The source's QEMU completed, so the guest may already run on the target, but the target has
 * not answered: neither copy may be resumed until it does, or an admin names the side.
 */
export class InDoubtError extends CowbufError {
  override readonly name: string = 'InDoubtError';
  constructor(
    readonly migration: string,
    readonly reason: string,
  ) {
    super(`migration ${migration} is in doubt: ${reason}`);
  }
}

export class MigrationFailedError extends CowbufError {
  override readonly name: string = 'MigrationFailedError';
  constructor(
    readonly migration: string,
    readonly phase: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`migration ${migration} failed in phase ${phase}: ${reason}`, options);
  }
}
