/**
 * Framing for a byte stream of unknown length (a `zfs send`): each chunk is a 4-byte big-endian
 * length and that many bytes; a zero length ends the stream, and what follows belongs to the
 * caller (the checksum trailer). Pure, so it is fuzzed without sockets.
 */
import { PeerError } from '../errors.js';

/** Largest chunk accepted: a peer cannot make us buffer more than this at once. */
export const MAX_CHUNK = 1 << 20;

export function chunkHeader(length: number): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(length);
  return header;
}

export const END_OF_CHUNKS = chunkHeader(0);

export class ChunkDecoder {
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes still owed to the current chunk; undefined while a header is expected. */
  private left: number | undefined;
  private ended = false;

  /**
   * Feeds bytes from the wire. @returns the payload bytes they carried and, once the end marker
   * was seen, `rest`: whatever followed it.
   * @throws PeerError for a chunk longer than MAX_CHUNK
   */
  push(data: Buffer): { payload: Buffer[]; rest?: Buffer } {
    if (this.ended) return { payload: [], rest: data };
    const payload: Buffer[] = [];
    let input = this.pending.length > 0 ? Buffer.concat([this.pending, data]) : data;
    this.pending = Buffer.alloc(0);
    while (input.length > 0) {
      if (this.left === undefined) {
        if (input.length < 4) {
          this.pending = input;
          break;
        }
        const length = input.readUInt32BE(0);
        input = input.subarray(4);
        if (length === 0) {
          this.ended = true;
          return { payload, rest: input };
        }
        if (length > MAX_CHUNK) throw new PeerError(`chunk of ${length} bytes is larger than ${MAX_CHUNK}`);
        this.left = length;
      }
      const part = input.subarray(0, this.left);
      payload.push(part);
      this.left -= part.length;
      input = input.subarray(part.length);
      if (this.left === 0) this.left = undefined;
    }
    return { payload };
  }
}
