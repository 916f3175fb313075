import { randomBytes } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { dialPeer } from '../../src/peer/channel.js';
import { ExtentEncoder } from '../../src/peer/extents.js';
import { receiveStream, sendStream } from '../../src/peer/transfer.js';
import { RawShipping } from '../../src/storage/raw/shipping-raw.js';
import { dataExtents } from '../../src/storage/raw/sparse.js';
import type { Extent } from '../../src/storage/shipping.js';
import { handlers, usePeers } from '../support/peers.js';

const { pair, tempDir } = usePeers('transfer');
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const raw = new RawShipping();

/** A sparse file of `size` bytes holding random data at these offsets. */
async function sparse(path: string, size: number, extents: ReadonlyArray<{ offset: number; length: number }>): Promise<Extent[]> {
  const handle = await open(path, 'w');
  await handle.truncate(size);
  const written = extents.map(({ offset, length }) => ({ offset, data: randomBytes(length) }));
  for (const { offset, data } of written) await handle.write(data, 0, data.length, offset);
  await handle.close();
  return written;
}

async function collect(extents: AsyncIterable<Extent>): Promise<Extent[]> {
  const all: Extent[] = [];
  for await (const extent of extents) all.push(extent);
  return all;
}

/** A source and a target whose `base` handler lands what arrives at `path`, as a sparse file. */
async function toTarget(path: string) {
  const landed: Array<Promise<unknown>> = [];
  const ends = await pair(handlers({ base: (_peer, hello, socket) => void landed.push(receiveStream(socket, `base of ${hello.disk}`, () => raw.receiveFile(path, hello.size), { size: hello.size }).catch((error: Error) => error)) }));
  return { ...ends, landed: () => Promise.all(landed) };
}

/** Sends `wire` and a checksum trailer on a `base` connection of `size` bytes; the target's one-line answer. */
async function sendFramed(ends: Awaited<ReturnType<typeof toTarget>>, size: number, wire: readonly Buffer[], sha256: string): Promise<string> {
  const { tls } = await dialPeer(ends.peer, ends.source.identity, { type: 'hello', kind: 'base', migration: 'm2', disk: 'root', size });
  const answer = new Promise<string>((resolve) => tls.once('data', (chunk: Buffer) => resolve(chunk.toString())));
  for (const part of wire) tls.write(part);
  tls.write(`${JSON.stringify({ sha256 })}\n`);
  try {
    return await answer;
  } finally {
    tls.destroy();
  }
}

describe('shipping a base between daemons', () => {
  it('ships only the data of a sparse 1 GiB disk holding two 1 MiB extents; it arrives sparse, byte for byte, the checksums agreeing', async () => {
    const received = join(tempDir(), 'received.img');
    const ends = await toTarget(received);
    const file = join(ends.source.dir, 'root.img');
    const written = await sparse(file, GiB, [
      { offset: 100 * MiB, length: MiB },
      { offset: 900 * MiB, length: MiB },
    ]);
    const [outgoing] = (await raw.outgoing('m1', [{ id: 'root', file }])).streams;
    if (outgoing?.kind !== 'file') throw new Error('a raw base travels as a file stream');
    const shipped = await sendStream(ends.peer, ends.source.identity, { type: 'hello', kind: 'base', migration: 'm1', disk: 'root', size: outgoing.size }, outgoing.extents);
    expect(await ends.landed()).toEqual([undefined]);
    expect(shipped).toMatchObject({ bytes: 2 * MiB, size: GiB, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const arrived = await stat(received);
    expect(arrived.size).toBe(GiB);
    expect(arrived.blocks * 512).toBeLessThan(3 * MiB);
    const back = await collect(dataExtents(received, GiB));
    expect(back.map((extent) => extent.offset)).toEqual([100 * MiB, 900 * MiB]);
    expect(Buffer.concat(back.map((extent) => extent.data)).equals(Buffer.concat(written.map((extent) => extent.data)))).toBe(true);
  });

  it('refuses a stream whose extent was corrupted on the way (the checksum disagrees) and keeps nothing of it', async () => {
    const received = join(tempDir(), 'corrupt.img');
    const ends = await toTarget(received);
    const encoder = new ExtentEncoder();
    const [header, data] = encoder.encode({ offset: MiB, data: randomBytes(64 * 1024) }) as [Buffer, Buffer];
    const { end, sha256 } = encoder.finish(4 * MiB);
    const corrupt = Buffer.from(data);
    corrupt[1000] = (corrupt[1000] ?? 0) ^ 0x01;
    expect(await sendFramed(ends, 4 * MiB, [header, corrupt, end], sha256)).toMatch(/^\{"ok":false,"error":"checksum mismatch for base of root: sent [0-9a-f]{64}, received [0-9a-f]{64}"\}/);
    expect(String(((await ends.landed()) as Error[])[0])).toMatch(/checksum mismatch/);
    await expect(stat(received)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('stops a shipment the target does not read the moment its signal aborts', async () => {
    const held: TLSSocket[] = [];
    const { source, peer } = await pair(handlers({ dataset: (_peer, _hello, socket) => void held.push(socket) }));
    async function* endless(): AsyncGenerator<Extent> {
      for (let offset = 0; ; offset += MiB) yield { offset, data: Buffer.alloc(MiB) };
    }
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('cancelled by request')), 200);
    const started = Date.now();
    await expect(sendStream(peer, source.identity, { type: 'hello', kind: 'dataset', migration: 'm3', files: { root: 'root.raw' } }, endless(), { signal: controller.signal })).rejects.toThrow('cancelled by request');
    expect(Date.now() - started).toBeLessThan(2000);
    for (const socket of held) socket.destroy();
  });

  it('refuses an extent past the announced size before writing it', async () => {
    const ends = await toTarget(join(tempDir(), 'past.img'));
    const encoder = new ExtentEncoder();
    const wire = encoder.encode({ offset: 4 * MiB - 10, data: Buffer.alloc(20, 1) });
    const { end, sha256 } = encoder.finish();
    expect(await sendFramed(ends, 4 * MiB, [...wire, end], sha256)).toContain(`"error":"bad extent stream: a record ends at ${4 * MiB + 10}, past the size ${4 * MiB}"`);
  });
});
