/**
 * QMP wire framing: newline-delimited JSON over a stream. `FrameDecoder` is pure (bytes in,
 * messages out) so it can be fuzzed; it survives fragmented and coalesced reads, multi-byte
 * UTF-8 split across chunks, and refuses lines that are not JSON objects or grow beyond
 * `maxLineBytes`, with a typed error instead of a crash.
 */
import { StringDecoder } from 'node:string_decoder';
import { QmpProtocolError } from './errors.js';

export type QmpMessage = Readonly<Record<string, unknown>>;

export const MAX_LINE_BYTES = 16 * 1024 * 1024;

export class FrameDecoder {
  private readonly text = new StringDecoder('utf8');
  private pending = '';

  constructor(private readonly maxLineBytes = MAX_LINE_BYTES) {}

  /**
   * Feeds one chunk; returns every complete message in it.
   * @throws QmpProtocolError on a line that is not a JSON object, or an over-long line
   */
  push(chunk: Buffer | string): QmpMessage[] {
    this.pending += typeof chunk === 'string' ? chunk : this.text.write(chunk);
    const messages: QmpMessage[] = [];
    let newline = this.pending.indexOf('\n');
    while (newline >= 0) {
      const line = this.pending.slice(0, newline).trim();
      this.pending = this.pending.slice(newline + 1);
      if (line !== '') messages.push(parseLine(line));
      newline = this.pending.indexOf('\n');
    }
    if (this.pending.length > this.maxLineBytes) {
      const head = this.pending.slice(0, 80);
      this.pending = '';
      throw new QmpProtocolError(`line longer than ${this.maxLineBytes} bytes`, head);
    }
    return messages;
  }
}

function parseLine(line: string): QmpMessage {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new QmpProtocolError('not JSON', line, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new QmpProtocolError('not a JSON object', line);
  return value as QmpMessage;
}

export function encode(message: QmpMessage): string {
  return `${JSON.stringify(message)}\n`;
}
