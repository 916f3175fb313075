/** QMP wire framing: newline-delimited JSON (`src/jsonl.ts`) whose failures are `QmpProtocolError`. */
import { FrameDecoder as JsonLineDecoder, MAX_LINE_BYTES, encodeLine, type JsonObject } from '../jsonl.js';
import { QmpProtocolError } from './errors.js';

export type QmpMessage = JsonObject;
export { MAX_LINE_BYTES };

export class FrameDecoder extends JsonLineDecoder {
  constructor(maxLineBytes = MAX_LINE_BYTES) {
    super((problem, line, cause) => new QmpProtocolError(problem, line, cause === undefined ? undefined : { cause }), maxLineBytes);
  }
}

export const encode = encodeLine;
