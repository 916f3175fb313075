/**
 * QMP errors (under `CowbufError`):
 *
 *     QmpError
 *     ├── QmpProtocolError      the peer sent something that is not QMP (bad JSON, no greeting)
 *     ├── QmpStateError         a call made in the wrong run state (e.g. execute while idle)
 *     ├── QmpDisconnectedError  the connection went away while a call was pending
 *     ├── QmpTimeoutError       no reply (or event) within the allotted time
 *     └── QmpCommandError       QEMU answered {"error": ...}: class, description, command, arguments
 */
import { CowbufError } from '../errors.js';

export class QmpError extends CowbufError {
  override readonly name: string = 'QmpError';
}

export class QmpProtocolError extends QmpError {
  override readonly name: string = 'QmpProtocolError';
  constructor(
    message: string,
    readonly received: string,
    options?: ErrorOptions,
  ) {
    super(`${message}: ${JSON.stringify(received.length > 120 ? `${received.slice(0, 117)}...` : received)}`, options);
  }
}

export class QmpStateError extends QmpError {
  override readonly name: string = 'QmpStateError';
  constructor(
    readonly action: string,
    readonly state: string,
    readonly required: string,
  ) {
    super(`cannot ${action} while the QMP client is ${state} (needs ${required})`);
  }
}

export class QmpDisconnectedError extends QmpError {
  override readonly name: string = 'QmpDisconnectedError';
  constructor(
    readonly command: string | undefined,
    readonly socketPath: string,
    options?: ErrorOptions,
  ) {
    super(`${command ? `\`${command}\` interrupted: ` : ''}QMP connection to ${socketPath} closed`, options);
  }
}

export class QmpTimeoutError extends QmpError {
  override readonly name: string = 'QmpTimeoutError';
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super(`${what} got no answer within ${timeoutMs} ms`);
  }
}

export class QmpCommandError extends QmpError {
  override readonly name: string = 'QmpCommandError';
  constructor(
    readonly command: string,
    readonly args: unknown,
    readonly errorClass: string,
    readonly description: string,
    readonly reply: unknown,
  ) {
    super(`\`${command}\` failed: ${errorClass}: ${description}`);
  }
}
