/**
 * Framing of a shipped stream (a disk's data extents, a `zfs send`): records of an 8-byte
 * big-endian offset, a 4-byte length and that many bytes, in increasing order and never
 * overlapping, then an end record whose length is 0 and whose offset is the stream's whole
 * size. What follows the end (the checksum trailer) is the caller's. A hole is what no record
 * covers. Pure, so it is fuzzed without sockets.
 *
 * The end-to-end SHA-256 is taken over the records, the end record included: every data byte
 * with its offset, and the size. A hole reads as zeros at both ends (the target writes into a
 * file created empty at its full size), so the digest fixes every byte of the image without
 * hashing its holes: a thin 32 GiB disk holding 1 GiB costs 1 GiB of hashing, not 32, on
 * CPUs the guests share. (It is not the `sha256sum` of the image, which would cost the 32.)
 */
import { createHash } from 'node:crypto';
import { PeerError } from '../errors.js';
import type { Extent } from '../storage/shipping.js';

/** Largest record: a peer cannot make the receiver buffer more than this at once. */
export const MAX_EXTENT = 1 << 20;
const HEADER_BYTES = 12;

export function extentHeader(offset: number, length: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeBigUInt64BE(BigInt(offset));
  header.writeUInt32BE(length, 8);
  return header;
}

/** Sender side: frames extents into records (split at MAX_EXTENT) and hashes what it framed. */
export class ExtentEncoder {
  private readonly hash = createHash('sha256');
  private end = 0;

  /** @returns the wire bytes carrying `extent` @throws PeerError for an extent before the previous one's end */
  encode(extent: Extent): Buffer[] {
    if (extent.offset < this.end) throw new PeerError(`extent at ${extent.offset} overlaps the one ending at ${this.end}`);
    const wire: Buffer[] = [];
    for (let at = 0; at < extent.data.length; at += MAX_EXTENT) {
      const data = extent.data.subarray(at, at + MAX_EXTENT);
      wire.push(extentHeader(extent.offset + at, data.length), data);
    }
    for (const part of wire) this.hash.update(part);
    this.end = extent.offset + extent.data.length;
    return wire;
  }

  /** The end record of a stream of `size` bytes (by default, where the last extent ended) and the digest. */
  finish(size = this.end): { readonly end: Buffer; readonly size: number; readonly sha256: string } {
    if (size < this.end) throw new PeerError(`a stream of ${size} bytes cannot hold an extent ending at ${this.end}`);
    const end = extentHeader(size, 0);
    this.hash.update(end);
    return { end, size, sha256: this.hash.digest('hex') };
  }
}

export interface Decoded {
  readonly extents: Extent[];
  /** Once the end record arrived: the stream's size and the digest of every record. */
  readonly end?: { readonly size: number; readonly sha256: string };
  /** What followed the end record in the bytes pushed. */
  readonly rest?: Buffer;
}

/** Receiver side: whole records out of the bytes as they come, checked and hashed. */
export class ExtentDecoder {
  private readonly hash = createHash('sha256');
  /** Bytes received and not yet decoded, in arrival order (joined only once a record is whole). */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The record whose data is awaited, once its header was read. */
  private record: { readonly offset: number; readonly length: number } | undefined;
  private endOfLast = 0;
  private done = false;

  /** @param size the stream's announced size, which every record must fit and the end must state */
  constructor(private readonly size?: number) {}

  /** @throws PeerError for a record too long, out of order, past the size, or an end that contradicts them */
  push(data: Buffer): Decoded {
    if (this.done) return { extents: [], rest: data };
    this.chunks.push(data);
    this.buffered += data.length;
    const extents: Extent[] = [];
    for (;;) {
      if (!this.record) {
        if (this.buffered < HEADER_BYTES) return { extents };
        const header = this.take(HEADER_BYTES);
        const offset = Number(header.readBigUInt64BE(0));
        const length = header.readUInt32BE(8);
        this.check(offset, length);
        this.hash.update(header);
        if (length === 0) {
          this.done = true;
          const rest = Buffer.concat(this.chunks.splice(0));
          return { extents, end: { size: offset, sha256: this.hash.digest('hex') }, rest };
        }
        this.record = { offset, length };
      }
      if (this.buffered < this.record.length) return { extents };
      const payload = this.take(this.record.length);
      this.hash.update(payload);
      extents.push({ offset: this.record.offset, data: payload });
      this.endOfLast = this.record.offset + this.record.length;
      this.record = undefined;
    }
  }

  /** The first `count` buffered bytes, removed. */
  private take(count: number): Buffer {
    const parts: Buffer[] = [];
    for (let missing = count; missing > 0; ) {
      const first = this.chunks[0] as Buffer;
      const part = first.subarray(0, missing);
      parts.push(part);
      missing -= part.length;
      if (part.length === first.length) this.chunks.shift();
      else this.chunks[0] = first.subarray(part.length);
    }
    this.buffered -= count;
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }

  private check(offset: number, length: number): void {
    const problem = (what: string) => new PeerError(`bad extent stream: ${what}`);
    const end = length === 0;
    if (length > MAX_EXTENT) throw problem(`a record of ${length} bytes is longer than ${MAX_EXTENT}`);
    if (!Number.isSafeInteger(offset + length)) throw problem(`offset ${offset} is out of range`);
    if (offset < this.endOfLast) throw problem(`${end ? 'the end' : 'a record'} at ${offset} lies before the previous record's end at ${this.endOfLast}`);
    if (this.size === undefined) return;
    if (end && offset !== this.size) throw problem(`the stream ends at ${offset}, not at its size ${this.size}`);
    if (!end && offset + length > this.size) throw problem(`a record ends at ${offset + length}, past the size ${this.size}`);
  }
}
