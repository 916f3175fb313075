import { describe, expect, it } from 'vitest';
import { PeerError, PeerRequestError } from '../../src/errors.js';
import { listenForRecovery, resumePostcopy } from '../../src/migration/postcopy.js';
import type { MigrationInfo } from '../../src/qmp/commands.js';
import { QmpCommandError } from '../../src/qmp/errors.js';

/** A QEMU whose `query-migrate` walks through `statuses` (the last one sticks), recording the commands it was sent. */
function qemu(statuses: ReadonlyArray<string | undefined>, recover: () => void = () => undefined) {
  const sent: string[] = [];
  let next = 0;
  return {
    sent,
    queryMigrate: (): Promise<MigrationInfo> => {
      const status = statuses[Math.min(next, statuses.length - 1)];
      next += 1;
      return Promise.resolve(status === undefined ? {} : ({ status } as MigrationInfo));
    },
    migratePause: () => {
      sent.push('migrate-pause');
      return Promise.resolve();
    },
    migrateRecover: (uri: string) => {
      sent.push(`migrate-recover ${uri}`);
      recover();
      return Promise.resolve();
    },
    migrateResume: (uri: string) => {
      sent.push(`migrate resume ${uri}`);
      return Promise.resolve();
    },
  };
}

const signal = AbortSignal.timeout(5000);

describe('post-copy recovery, target side', () => {
  it('pauses a stream that never errored, waits for QEMU to say so, then listens on the URI', async () => {
    const target = qemu(['postcopy-active', 'postcopy-active', 'postcopy-paused']);
    await listenForRecovery(target, 'unix:/run/ram.sock', signal);
    expect(target.sent).toEqual(['migrate-pause', 'migrate-recover unix:/run/ram.sock']);
  });

  it('listens at once when the stream already broke, and does nothing when it already listens', async () => {
    const paused = qemu(['postcopy-paused']);
    await listenForRecovery(paused, 'unix:/r', signal);
    expect(paused.sent).toEqual(['migrate-recover unix:/r']);
    const recovering = qemu(['postcopy-recover']);
    await listenForRecovery(recovering, 'unix:/r', signal);
    expect(recovering.sent).toEqual([]);
  });

  it('takes a second ask of the same recovery as answered, and fails on any other refusal', async () => {
    const again = qemu(['postcopy-paused'], () => {
      throw new QmpCommandError('migrate-recover', {}, 'GenericError', 'Migrate recovery is triggered already', {});
    });
    await expect(listenForRecovery(again, 'unix:/r', signal)).resolves.toBeUndefined();
    const broken = qemu(['postcopy-paused'], () => {
      throw new QmpCommandError('migrate-recover', {}, 'GenericError', 'Failed to bind socket', {});
    });
    await expect(listenForRecovery(broken, 'unix:/r', signal)).rejects.toThrow('Failed to bind socket');
  });

  it('refuses, naming the status, when there is no post-copy left to recover', async () => {
    await expect(listenForRecovery(qemu(['completed']), 'unix:/r', signal)).rejects.toThrow(new PeerError('the post-copy is completed here: nothing to recover'));
    await expect(listenForRecovery(qemu([undefined]), 'unix:/r', signal)).rejects.toThrow('the post-copy is gone here');
  });
});

describe('post-copy recovery, source side', () => {
  it('asks through the partition until the target answers, then resumes on the proxy', async () => {
    const source = qemu([]);
    let asked = 0;
    await resumePostcopy(source, 'unix:/proxy', () => (++asked < 3 ? Promise.reject(new PeerRequestError('dst', 'timed out')) : Promise.resolve()), 1, signal);
    expect(asked).toBe(3);
    expect(source.sent).toEqual(['migrate resume unix:/proxy']);
  });

  it('gives up without resuming when the target refuses', async () => {
    const source = qemu([]);
    await expect(resumePostcopy(source, 'unix:/proxy', () => Promise.reject(new PeerRequestError('dst', 'no post-copy of m1', true)), 1, signal)).rejects.toThrow('no post-copy of m1');
    expect(source.sent).toEqual([]);
  });

  it('stops asking when the daemon shuts down', async () => {
    const shutdown = new AbortController();
    const source = qemu([]);
    let asked = 0;
    const resuming = resumePostcopy(source, 'unix:/proxy', () => (++asked === 2 ? (shutdown.abort(new Error('shutting down')), Promise.reject(new Error('aborted'))) : Promise.reject(new Error('timed out'))), 1, shutdown.signal);
    await expect(resuming).rejects.toThrow('shutting down');
    expect(asked).toBe(2);
    expect(source.sent).toEqual([]);
  });

  it('waits for the resumed stream to connect (QEMU reads postcopy-paused until it has) and resumes once', async () => {
    const source = qemu(['postcopy-paused', 'postcopy-paused', 'postcopy-recover']);
    await expect(resumePostcopy(source, 'unix:/proxy', () => Promise.resolve(), 1, signal)).resolves.toBe(true);
    expect(source.sent).toEqual(['migrate resume unix:/proxy']);
  });

  it('says so when the resumed stream never connected', async () => {
    const source = qemu(['postcopy-paused']);
    await expect(resumePostcopy(source, 'unix:/proxy', () => Promise.resolve(), 1, signal, 300)).resolves.toBe(false);
    expect(source.sent).toEqual(['migrate resume unix:/proxy']);
  });

  it('takes a refused resume for the recovery under way when QEMU has left postcopy-paused (an earlier resume connected late)', async () => {
    const source = { ...qemu(['postcopy-recover', 'postcopy-active']), migrateResume: () => Promise.reject(new QmpCommandError('migrate', {}, 'GenericError', 'Cannot resume if there is no paused migration', {})) };
    await expect(resumePostcopy(source, 'unix:/proxy', () => Promise.resolve(), 1, signal)).resolves.toBe(true);
  });

  it('passes on a refused resume while QEMU is still paused', async () => {
    const source = { ...qemu(['postcopy-paused']), migrateResume: () => Promise.reject(new QmpCommandError('migrate', {}, 'GenericError', 'no', {})) };
    await expect(resumePostcopy(source, 'unix:/proxy', () => Promise.resolve(), 1, signal)).rejects.toThrow('`migrate` failed: GenericError: no');
  });
});
