import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { finishMirrors } from '../../src/migration/qemu-steps.js';
import { QmpClient } from '../../src/qmp/client.js';
import { QmpCommands } from '../../src/qmp/commands.js';
import { fakeQmp, type FakeQmp } from '../support/fake-qmp.js';

const opened: Array<{ server: FakeQmp; client: QmpClient }> = [];
afterEach(async () => {
  for (const { server, client } of opened.splice(0)) {
    await client.disconnect();
    await server.close();
  }
});

const job = (status: string, extra: object = {}) => ({ device: 'cowbuf-mirror0', type: 'mirror', len: 4096, offset: 4096, ready: status === 'ready' || status === 'standby', status, speed: 0, paused: status === 'standby', ...extra });
const completed = (data: object) => JSON.stringify({ event: 'BLOCK_JOB_COMPLETED', data: { device: 'cowbuf-mirror0', len: 4096, offset: 4096, ...data }, timestamp: { seconds: 0, microseconds: 0 } }) + '\r\n';

/**
 * A QEMU with one ready mirror; `onCancel` decides what `block-job-cancel` does to it, and may
 * push the events QEMU would.
 */
async function mirrorHost(onCancel: (push: (text: string) => void, conclude: (error?: string) => void) => object, initial = job('ready')): Promise<{ qmp: QmpCommands; client: QmpClient }> {
  let state = initial;
  let socket: Socket | undefined;
  const server = await fakeQmp((command, _args, from) => {
    socket = from;
    if (command === 'query-block-jobs') return { return: [state] };
    if (command === 'job-dismiss') return { return: {} };
    if (command === 'block-job-cancel') {
      return onCancel(
        (text) => socket?.write(text),
        (error) => (state = job('concluded', error === undefined ? {} : { error })),
      );
    }
    return { error: { class: 'CommandNotFound', desc: command } };
  });
  const client = new QmpClient({ commandTimeoutMs: 2000 });
  await client.connect(server.path, { timeoutMs: 2000 });
  opened.push({ server, client });
  return { qmp: new QmpCommands(client), client };
}

describe('finishing the mirrors at the switchover', () => {
  it('ends when every mirror completed with all of its bytes', async () => {
    const { qmp, client } = await mirrorHost((push, conclude) => {
      conclude();
      setTimeout(() => push(completed({})), 10);
      return { return: {} };
    });
    await expect(finishMirrors(qmp, client, 1, 2000)).resolves.toBeUndefined();
  });

  it('names the failure of a mirror that failed between its state read and its cancel (the cancel is refused)', async () => {
    const { qmp, client } = await mirrorHost((push, conclude) => {
      conclude('Input/output error');
      push(completed({ error: 'Input/output error', offset: 1024 }));
      return { error: { class: 'GenericError', desc: "Job 'cowbuf-mirror0' in state 'concluded' cannot accept command verb 'cancel'" } };
    });
    await expect(finishMirrors(qmp, client, 1, 2000)).rejects.toThrow(/^mirror cowbuf-mirror0 ended out of sync \(Input\/output error\): the target's copy is incomplete$/);
  });

  it('passes on a refused cancel of a mirror that has not concluded', async () => {
    const { qmp, client } = await mirrorHost(() => ({ error: { class: 'GenericError', desc: 'no' } }));
    await expect(finishMirrors(qmp, client, 1, 2000)).rejects.toThrow('`block-job-cancel` failed: GenericError: no');
  });

  it('refuses to drain a mirror someone paused, before cancelling anything', async () => {
    let cancelled = false;
    const { qmp, client } = await mirrorHost(() => {
      cancelled = true;
      return { return: {} };
    }, job('standby'));
    await expect(finishMirrors(qmp, client, 1, 2000)).rejects.toThrow(/^mirror cowbuf-mirror0 is paused at the switchover \(standby\): what the guest wrote last cannot drain to the target$/);
    expect(cancelled).toBe(false);
  });
});
