import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { abortUnheard, mayDiscardUnheard, ROLLBACK_ABORT_TIMEOUT_MS, SilenceWatch, sourceGivesUpSeconds, type Unheard } from '../../src/migration/source-silence.js';
import type { IncomingEntry } from '../../src/migration/journal.js';
import { REQUEST_TIMEOUT_MS } from '../../src/peer/channel.js';
import { facts, host, peer, targetSide } from '../support/target-side.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('source-silence');
const GiB = 1024 ** 3;

/** A clock the test moves, in seconds. */
function clock(): { now: () => number; at: (seconds: number) => void } {
  let ms = 0;
  return { now: () => ms, at: (seconds) => void (ms = seconds * 1000) };
}

const stream = (bytesRead = 0) => ({ bytesRead, destroyed: false });

describe("the target's patience with a silent source", () => {
  it('outlasts the source: its link watch or its longest wait on a request, then its rollback asking `abort`, for any configured linkLostSeconds', () => {
    for (const linkLost of [2, 30, 3600]) expect(sourceGivesUpSeconds(linkLost)).toBeGreaterThan(Math.max(linkLost, REQUEST_TIMEOUT_MS / 1000) + ROLLBACK_ABORT_TIMEOUT_MS / 1000);
  });

  it('discards only a copy that can never run: never one holding the whole guest or running post-copy', () => {
    for (const status of [undefined, 'none', 'setup', 'active', 'failed', 'cancelled']) expect(mayDiscardUnheard(status)).toBe(true);
    for (const status of ['completed', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'device', 'unknown']) expect(mayDiscardUnheard(status)).toBe(false);
  });
});

describe('SilenceWatch', () => {
  it('counts from the last request, and not while one is under way', async () => {
    const time = clock();
    const watch = new SilenceWatch(time.now);
    watch.heard('src', 'm1');
    time.at(10);
    expect(watch.silence('src', 'm1')).toBe(10);
    // Another peer naming the same migration is not its source.
    watch.heard('other', 'm1');
    expect(watch.silence('src', 'm1')).toBe(10);
    let answer: () => void = () => undefined;
    const request = watch.during('src', 'm1', () => new Promise<void>((resolve) => (answer = resolve)));
    time.at(500);
    expect(watch.silence('src', 'm1')).toBe(0);
    answer();
    await request;
    time.at(503);
    expect(watch.silence('src', 'm1')).toBe(3);
  });

  it('hears bytes arriving on a stream, not an open stream that moves nothing', () => {
    const time = clock();
    const watch = new SilenceWatch(time.now);
    const ram = stream(100);
    watch.stream('src', 'm1', ram);
    time.at(5);
    expect(watch.silence('src', 'm1')).toBe(5);
    Object.assign(ram, { bytesRead: 200 });
    time.at(7);
    expect(watch.silence('src', 'm1')).toBe(0);
    time.at(9);
    expect(watch.silence('src', 'm1')).toBe(2);
    // A stream that ended is read once more, then forgotten.
    Object.assign(ram, { bytesRead: 300, destroyed: true });
    time.at(12);
    expect(watch.silence('src', 'm1')).toBe(0);
    Object.assign(ram, { bytesRead: 400 });
    time.at(20);
    expect(watch.silence('src', 'm1')).toBe(8);
  });

  it('starts the silence of a migration it never heard of (one kept over a restart) at the first look, and forgets what is pruned', () => {
    const time = clock();
    const watch = new SilenceWatch(time.now);
    time.at(100);
    expect(watch.silence('src', 'kept')).toBe(0);
    time.at(130);
    expect(watch.silence('src', 'kept')).toBe(30);
    watch.prune([{ peer: 'src', id: 'other' }]);
    expect(watch.silence('src', 'kept')).toBe(0);
  });
});

interface Fake extends Unheard {
  status?: string | Error;
}

/** Incoming migrations on fakes: `status` is what its QEMU answers (absent: no QEMU runs). */
function fakes(time: ReturnType<typeof clock>, incoming: readonly Fake[], onStatus: (id: string) => void = () => undefined) {
  const map = new Map(incoming.map((fake) => [fake.id, fake]));
  const discarded: string[] = [];
  const logged: Array<{ message: string; migration: string | undefined }> = [];
  const watch = new SilenceWatch(time.now);
  for (const fake of incoming) watch.heard(fake.peer, fake.id);
  const vm = (fake: Fake) =>
    fake.status === undefined
      ? undefined
      : {
          running: () => fake.status !== 'dead',
          commands: {
            queryMigrate: async () => {
              onStatus(fake.id);
              if (fake.status instanceof Error) throw fake.status;
              // An incoming QEMU whose RAM stream never connected reports no status at all.
              return fake.status === 'absent' ? {} : { status: fake.status as string };
            },
          },
        };
  for (const fake of incoming) Object.assign(fake, { vm: vm(fake) });
  const port = {
    incoming: map,
    discard: async (fake: Fake) => {
      map.delete(fake.id);
      discarded.push(fake.id);
    },
    log: (message: string, migration?: string) => void logged.push({ message, migration }),
  };
  return { watch, port, map, discarded, logged, look: () => abortUnheard(watch, 48, port) };
}

describe('abortUnheard', () => {
  it('aborts, past the bound, each copy that cannot run, naming the migration, its peer and the silence; keeps the others, saying so once', async () => {
    const time = clock();
    const cases: Fake[] = [
      { id: 'unstarted', peer: 'src' },
      { id: 'receiving', peer: 'src', status: 'active' },
      { id: 'dead', peer: 'src', status: 'dead' },
      { id: 'unconnected', peer: 'src', status: 'absent' },
      { id: 'whole', peer: 'src', status: 'completed' },
      { id: 'postcopy', peer: 'src', status: 'postcopy-paused' },
      { id: 'finishing', peer: 'src', status: 'active', finishing: Promise.resolve() },
      { id: 'heard', peer: 'src', status: 'active' },
    ];
    const { watch, discarded, logged, look } = fakes(time, cases);
    time.at(48);
    await look();
    expect(discarded).toEqual([]);
    time.at(60);
    watch.heard('src', 'heard');
    await look();
    time.at(61);
    await look();
    expect(discarded).toEqual(['unstarted', 'receiving', 'dead', 'unconnected']);
    expect(logged.map(({ migration }) => migration)).toEqual(['unstarted', 'receiving', 'dead', 'unconnected', 'whole', 'postcopy']);
    expect(logged[1]?.message).toBe('receiving: nothing heard from src for 60 s, past the 48 s its source takes to give up; aborted here as its `abort` would (its incoming QEMU: active)');
    expect(logged[0]?.message).toMatch(/its incoming QEMU: not running\)$/);
    expect(logged[4]?.message).toBe("whole: nothing heard from src for 60 s, past the 48 s its source takes to give up; kept: its incoming QEMU is completed, it may hold the guest's only copy, so it waits paused for its source's `finish` or `abort`");
  });

  it('aborts nothing its source spoke of, or that went, while its QEMU answered, nor one whose QEMU cannot say', async () => {
    const time = clock();
    const cases: Fake[] = [
      { id: 'spoke', peer: 'src', status: 'active' },
      { id: 'went', peer: 'src', status: 'active' },
      { id: 'mute', peer: 'src', status: new Error('QMP timeout') },
    ];
    const context = fakes(time, cases, (id) => {
      if (id === 'spoke') context.watch.heard('src', id);
      if (id === 'went') context.map.delete(id);
    });
    time.at(100);
    await context.look();
    expect(context.discarded).toEqual([]);
    expect(context.logged).toEqual([]);
  });
});

describe('a target whose source fell silent', () => {
  afterEach(() => void vi.useRealTimers());

  it('aborts the incoming migration as its source would; the source asking `abort` later hears success, its `finish` `not-run`', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
    const saved: IncomingEntry[] = [];
    const logged: string[] = [];
    const side = targetSide(tempDir(), host({ memory: 8 * GiB, disk: 100 * GiB }), saved, facts(), 1, { sourceGivesUpSeconds: 40, log: (message) => void logged.push(message) });
    const wire = { name: 'g1', memoryMiB: 64, vcpus: 1, disks: [{ id: 'root', nodeName: 'root', format: 'raw' as const, virtualSize: GiB }] };
    await side.handle(peer, { id: 1, method: 'prepare', migration: 'm1', vm: wire });
    const dir = join(tempDir(), 'vms', 'm1');
    await access(dir);
    // A request it refuses is the source speaking all the same.
    await vi.advanceTimersByTimeAsync(30_000);
    await expect(side.handle(peer, { id: 2, method: 'start-target', migration: 'm1', capabilities: { 'postcopy-ram': false, multifd: false } })).rejects.toThrow('bases not received: root');
    await vi.advanceTimersByTimeAsync(39_000);
    await expect(access(dir)).resolves.toBeUndefined();
    await vi.advanceTimersByTimeAsync(2000);
    for (let i = 0; i < 100 && (await access(dir).then(() => true, () => false)); i += 1) await sleep(20);
    await expect(access(dir)).rejects.toThrow(/ENOENT/);
    expect(logged).toEqual(['m1: nothing heard from src for 41 s, past the 40 s its source takes to give up; aborted here as its `abort` would (its incoming QEMU: not running)']);
    expect(side.arriving()).toEqual([]);
    await expect(side.handle(peer, { id: 3, method: 'abort', migration: 'm1' })).resolves.toBeUndefined();
    await expect(side.handle(peer, { id: 4, method: 'finish', migration: 'm1' })).resolves.toMatchObject({ outcome: 'not-run' });
    await side.abortAll();
  });
});
