/**
 * Newline-delimited JSON framing, shared by QMP and the peer channel. `FrameDecoder` is pure
 * (bytes in, objects out): it survives fragmented and coalesced reads and multi-byte UTF-8 split
 * across chunks, and refuses lines that are not JSON objects or grow beyond `maxLineBytes` with
 * the caller's own typed error instead of a crash.
 */
import { StringDecoder } from 'node:string_decoder';

export type JsonObject = Readonly<Record<string, unknown>>;
export type FramingErrorFactory = (problem: string, line: string, cause?: unknown) => Error;

export const MAX_LINE_BYTES = 16 * 1024 * 1024;

export class FrameDecoder {
  private readonly text = new StringDecoder('utf8');
  private pending = '';

  constructor(
    private readonly error: FramingErrorFactory,
    private readonly maxLineBytes = MAX_LINE_BYTES,
  ) {}

  /** Feeds one chunk; returns every complete object in it. @throws the factory's error */
  push(chunk: Buffer | string): JsonObject[] {
    this.pending += typeof chunk === 'string' ? chunk : this.text.write(chunk);
    const messages: JsonObject[] = [];
    let newline = this.pending.indexOf('\n');
    while (newline >= 0) {
      const line = this.pending.slice(0, newline).trim();
      this.pending = this.pending.slice(newline + 1);
      if (line !== '') messages.push(this.parse(line));
      newline = this.pending.indexOf('\n');
    }
    if (this.pending.length > this.maxLineBytes) {
      const head = this.pending.slice(0, 80);
      this.pending = '';
      throw this.error(`line longer than ${this.maxLineBytes} bytes`, head);
    }
    return messages;
  }

  private parse(line: string): JsonObject {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (cause) {
      throw this.error('not JSON', line, cause);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw this.error('not a JSON object', line);
    return value as JsonObject;
  }
}

export function encodeLine(message: JsonObject): string {
  return `${JSON.stringify(message)}\n`;
}
