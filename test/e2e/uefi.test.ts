import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MigrationRecord } from '../../src/migration/engine.js';
import { startDaemonPair } from '../../src/testbed/daemons.js';
import { guestVmBody, readSerial, waitForSerial } from '../../src/testbed/guest.js';
import { qemuImg, useScope } from '../support/testbed.js';

const MiB = 1024 ** 2;
const scope = useScope('uefi');
const OVMF = '/usr/share/OVMF';

describe('a UEFI guest', { timeout: 300_000 }, () => {
  it('keeps the NVRAM variable it wrote on the source: it reads it back on the target, and the target holds it in its variable store', async () => {
    const pair = await startDaemonPair({ dir: scope().dir, bufferSize: 128 * MiB, linkRate: '200mbit' });
    try {
      const disk = scope().path('g1.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', disk, '64M');
      const vars = scope().path('g1-vars.fd');
      await copyFile(join(OVMF, 'OVMF_VARS_4M.fd'), vars);
      const body = {
        ...guestVmBody('g1', disk, { diskRateMiB: 1, diskSpanMiB: 8, dirtyRateMiB: 2, verifyEvery: 2, efivar: 'moved42' }, 256),
        machine: 'pc-q35-7.2',
        firmware: { code: join(OVMF, 'OVMF_CODE_4M.fd'), vars },
      };
      const vm = await pair.source.api.call<{ serialLog: string }>('POST', '/1.0/vms', body);
      const onSource = await waitForSerial(vm.serialLog, (r) => r.efivars.length > 0, 'the variable read back on the source', { timeoutMs: 120_000 });
      expect(onSource.efivars).toContain('moved42');

      const started = await pair.source.api.call<{ id: string }>('POST', '/1.0/migrations', { vm: 'g1', target: 'dst' });
      const record = (await pair.source.api.call<{ metadata: MigrationRecord }>('GET', `/1.0/operations/${started.id}/wait`)).metadata;
      expect(record.phase, record.error).toBe('completed');
      const [arrived] = await pair.target.api.call<Array<{ serialLog: string }>>('GET', '/1.0/vms');
      const before = (await readSerial(arrived?.serialLog ?? '')).efivars.length;
      const onTarget = await waitForSerial(arrived?.serialLog ?? '', (r) => r.efivars.length > before && r.verifications.length >= 2, 'the variable read back on the target', { timeoutMs: 120_000 });
      expect(onTarget.efivars.at(-1)).toBe('moved42');
      expect(onTarget.verifications.every((v) => v.lost === 0)).toBe(true);
      // The variable store file on the target holds the variable's name (UCS-2, as UEFI stores it).
      const store = await readFile(join(pair.target.stateDir, 'vms', started.id, 'vars.fd'));
      expect(store.includes(Buffer.from('CowbufTest', 'utf16le'))).toBe(true);
    } finally {
      await pair.close();
    }
  });
});
