/** The CLI's only way to the daemon: HTTP over its unix socket, LXD's response envelope. */
import { request } from 'node:http';
import type { Command } from 'commander';
import { DEFAULT_STATE_DIR, loadConfig } from '../config/config.js';
import { CowbufError } from '../errors.js';
import { configPath } from './io.js';

export class ApiError extends CowbufError {
  override readonly name: string = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** `--socket`, else `$COWBUF_SOCKET`, else the config's `daemon.socket`, else the default. */
export async function socketPath(command: Command): Promise<string> {
  const globals = command.optsWithGlobals<{ socket?: string }>();
  if (globals.socket) return globals.socket;
  if (process.env.COWBUF_SOCKET) return process.env.COWBUF_SOCKET;
  const config = await loadConfig(configPath(command)).catch(() => undefined);
  return config?.daemon.socket ?? `${DEFAULT_STATE_DIR}/unix.socket`;
}

export class ApiClient {
  constructor(readonly socket: string) {}

  static async for(command: Command): Promise<ApiClient> {
    return new ApiClient(await socketPath(command));
  }

  /** The `metadata` of a sync or async response. @throws ApiError with the daemon's message */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request({ socketPath: this.socket, method, path, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', (error: NodeJS.ErrnoException) =>
        reject(new ApiError(0, error.code === 'ENOENT' || error.code === 'ECONNREFUSED' ? `cowbufd is not running (no socket at ${this.socket})` : `cannot reach cowbufd at ${this.socket}: ${error.message}`)),
      );
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
    let parsed: { type?: string; error?: string; metadata?: T };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw new ApiError(status, `cowbufd answered ${status} with a body that is not JSON`);
    }
    if (parsed.type === 'error' || status >= 400) throw new ApiError(status, parsed.error ?? `cowbufd answered ${status}`);
    return parsed.metadata as T;
  }

  /** Streams `/1.0/events` lines to `onEvent` until `signal` aborts. */
  events(onEvent: (event: { type: string; metadata: unknown }) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socket, method: 'GET', path: '/1.0/events', signal }, (res) => {
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            if (line) onEvent(JSON.parse(line) as { type: string; metadata: unknown });
          }
        });
        res.on('end', () => resolve());
        // A daemon that dies mid-stream ends the response without an end: say so, never hang.
        res.on('close', () => (res.complete || signal.aborted ? resolve() : reject(new ApiError(0, `cowbufd at ${this.socket} closed the event stream`))));
      });
      req.on('error', (error) => (signal.aborted ? resolve() : reject(new ApiError(0, `cannot reach cowbufd at ${this.socket}: ${error.message}`))));
      req.end();
    });
  }
}
