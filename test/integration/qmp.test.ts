import { describe, expect, it } from 'vitest';
import { QmpCommandError, QmpDisconnectedError } from '../../src/qmp/errors.js';
import { useScope } from '../support/testbed.js';

const scope = useScope('qmp');

/** A machine with no guest at all: enough to talk QMP. */
function bare(name: string) {
  return { name, memoryMiB: 64, vcpus: 1, disks: [], qmpSocket: scope().path(`${name}.qmp`), serialLog: scope().path(`${name}.serial`), incoming: true };
}

describe('QMP against a real QEMU', { timeout: 60_000 }, () => {
  it('connects, negotiates and queries the run state', async () => {
    const vm = await scope().launch(bare('q1'));
    expect(vm.qmp.greeting?.version.qemu.major).toBeGreaterThanOrEqual(7);
    expect(await vm.commands.queryStatus()).toMatchObject({ status: 'inmigrate', running: false });
  });

  it('rejects a bad command with an error naming the command and the QMP class', async () => {
    const vm = await scope().launch(bare('q2'));
    const error = await vm.commands.setIoThrottle('nope/virtio-backend', { bps_wr: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpCommandError);
    expect(error).toMatchObject({ command: 'block_set_io_throttle', errorClass: 'DeviceNotFound', args: { id: 'nope/virtio-backend', bps_wr: 1 } });
    expect((error as Error).message).toBe("`block_set_io_throttle` failed: DeviceNotFound: Device 'nope/virtio-backend' not found");
    const unknown = await vm.qmp.execute('no-such-command').catch((e: unknown) => e);
    expect(unknown).toMatchObject({ command: 'no-such-command', errorClass: 'CommandNotFound' });
  });

  it('rejects every pending call when QEMU is killed', async () => {
    const vm = await scope().launch(bare('q3'));
    vm.child.kill('SIGSTOP');
    const calls = [vm.commands.queryStatus(), vm.commands.queryMigrate(), vm.commands.queryBlockJobs()];
    const events = vm.qmp.listen('STOP');
    const waited = events.next({ timeoutMs: 30_000 });
    vm.child.kill('SIGKILL');
    for (const call of [...calls, waited]) await expect(call).rejects.toBeInstanceOf(QmpDisconnectedError);
    expect(vm.qmp.state).toBe('idle');
  });
});
