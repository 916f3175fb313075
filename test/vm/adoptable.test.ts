import { describe, expect, it } from 'vitest';
import type { QmpCommands } from '../../src/qmp/commands.js';
import { checkAdoptable } from '../../src/vm/adoptable.js';
import type { VmSpec } from '../../src/vm/spec.js';

const spec: VmSpec = {
  name: 'web1',
  memoryMiB: 256,
  vcpus: 1,
  disks: [
    { id: 'vda', nodeName: 'root', file: '/srv/web1.qcow2', format: 'qcow2' },
    { id: 'vdb', nodeName: 'data', file: '/srv/web1-data.qcow2', format: 'qcow2' },
  ],
  qmpSocket: '/run/web1.qmp',
  serialLog: '',
};

/** A QEMU as QMP shows it: drives by qdev path, block nodes, and each device's `werror`. */
function qemu(werror: Record<string, string>, qdevs = ['/machine/peripheral/vda/virtio-backend', 'vdb'], nodes = ['root', 'data']): QmpCommands {
  return {
    queryIoThrottles: () => Promise.resolve(qdevs.map((qdev) => ({ qdev, bps: 0, bps_rd: 0, bps_wr: 0, iops: 0, iops_rd: 0, iops_wr: 0 }))),
    queryNamedBlockNodes: () => Promise.resolve(nodes.map((name) => ({ 'node-name': name }))),
    qomGet: (path: string) => Promise.resolve(werror[path.replace('/machine/peripheral/', '')]),
  } as unknown as QmpCommands;
}

describe('what a VM cowbuf did not start must have before it can migrate', () => {
  it('accepts drives that all stop the guest on write errors, on virtio-blk and scsi alike', async () => {
    expect(await checkAdoptable({ spec, commands: qemu({ vda: 'stop', vdb: 'stop' }) })).toEqual([]);
  });

  it("names each drive whose policy would hand a full buffer's EDQUOT to the guest", async () => {
    expect(await checkAdoptable({ spec, commands: qemu({ vda: 'stop', vdb: 'auto' }) })).toEqual([{ kind: 'error-policy', field: 'vm.disks[1].werror', value: 'auto', expected: expect.stringContaining('stop') }]);
  });

  it('names a declared disk or node the QEMU does not have', async () => {
    const problems = await checkAdoptable({ spec, commands: qemu({ vda: 'stop' }, ['/machine/peripheral/vda/virtio-backend'], ['root', 'vdb-node']) });
    expect(problems).toEqual([{ kind: 'missing', field: 'vm.disks[1].id', value: 'vdb', expected: 'a drive of this QEMU (vda)' }]);
    const nodes = await checkAdoptable({ spec, commands: qemu({ vda: 'stop', vdb: 'stop' }, undefined, ['root']) });
    expect(nodes).toEqual([{ kind: 'missing', field: 'vm.disks[1].nodeName', value: 'data', expected: 'a block node of this QEMU (root)' }]);
  });
});
