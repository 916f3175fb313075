import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { splice } from '../../src/peer/transfer.js';

let dir: string;
const servers: Server[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'splice-'));
});
afterEach(async () => {
  for (const server of servers.splice(0)) server.close();
  await rm(dir, { recursive: true, force: true });
});

/** A unix socket server; resolves with its path and the first connection it accepts. */
async function listen(name: string): Promise<{ path: string; accepted: Promise<Socket> }> {
  const path = join(dir, name);
  let accept: (socket: Socket) => void = () => undefined;
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  const server = createServer(accept);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, accepted };
}

/** Reads `socket` to its end at a few MB/s, slower than the writer: the proxy in between buffers. */
function slowDigestOf(socket: Socket): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  return new Promise((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
      socket.pause();
      setTimeout(() => socket.resume(), 5);
    });
    socket.once('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
    socket.once('error', reject);
  });
}

describe('splice', () => {
  it('delivers every byte to a reader slower than the writer, which ends and closes at once', async () => {
    // QEMU writes the last of its stream and closes its end; what the proxy still holds for the
    // slow side (a link, a loading target QEMU) must reach it before that side is closed.
    const writerSide = await listen('writer');
    const readerSide = await listen('reader');
    const writer = connect(writerSide.path);
    const reader = connect(readerSide.path);
    splice(await writerSide.accepted, await readerSide.accepted);
    const data = randomBytes(4 * 1024 ** 2);
    const received = slowDigestOf(reader);
    writer.end(data);
    expect(await received).toEqual({ bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') });
  });

  it('breaks the stream for a writer whose reader went away cleanly, rather than leaving it blocked', async () => {
    // The target daemon dies mid-stream: its end closes with a FIN, and the QEMU still sending
    // into the proxy must see an error instead of a socket nobody reads. Like QEMU, the writer
    // takes no notice of a FIN (half-open).
    const writerSide = await listen('writer');
    const readerSide = await listen('reader');
    const writer = connect({ path: writerSide.path, allowHalfOpen: true });
    const reader = connect(readerSide.path);
    splice(await writerSide.accepted, await readerSide.accepted);
    writer.on('error', () => undefined);
    const broken = new Promise((resolve) => writer.once('close', resolve));
    const pump = setInterval(() => writer.write(randomBytes(64 * 1024)), 5);
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      reader.end();
      reader.resume();
      await broken;
    } finally {
      clearInterval(pump);
    }
    expect(writer.destroyed).toBe(true);
  });

  it('destroys both sides when one fails', async () => {
    const left = await listen('left');
    const right = await listen('right');
    const a = connect(left.path);
    const b = connect(right.path);
    const [ours, theirs] = [await left.accepted, await right.accepted];
    splice(ours, theirs);
    a.on('error', () => undefined);
    b.on('error', () => undefined);
    ours.destroy(new Error('gone'));
    await new Promise((resolve) => b.once('close', resolve));
    expect(theirs.destroyed).toBe(true);
  });
});
