/** Two engines that trust each other, on loopback, for in-process migration tests. */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { DEFAULT_CONVERGENCE } from '../../src/migration/convergence.js';
import { Engine, type EngineConfig } from '../../src/migration/engine.js';
import { ensureIdentity } from '../../src/peer/identity.js';
import { TrustStore } from '../../src/peer/trust.js';
import { ZfsVolume } from '../../src/storage/zfs/driver-zfs.js';
import { zfsCreate } from '../../src/storage/zfs/zfs-commands.js';
import { readSerial, waitForSerial } from '../../src/testbed/guest.js';
import type { TestPool } from '../../src/testbed/zfs.js';
import type { ManagedVm } from '../../src/vm/provider.js';
import type { Scope } from './testbed.js';

const MiB = 1024 ** 2;

export function engineConfig(stateDir: string, bufferSize: number, overrides: Partial<EngineConfig> = {}): EngineConfig {
  return {
    stateDir,
    runDir: join(stateDir, 'run'),
    bufferSize,
    policy: 'deadline',
    controlPeriodMs: 500,
    hysteresis: 0.05,
    throttle: true,
    assumedLinkRate: 12.5e6,
    maxOutgoing: 4,
    maxIncoming: 4,
    minBinBytes: 8 * MiB,
    mirrorReadySeconds: 30,
    linkLostSeconds: 30,
    convergence: DEFAULT_CONVERGENCE,
    peerListen: { host: '127.0.0.1', port: 0 },
    ...overrides,
  };
}

export interface EnginePair {
  readonly source: Engine;
  readonly target: Engine;
  readonly pool: TestPool;
  close(): Promise<void>;
}

/**
 * A source with a zfs buffer of `bufferSize`, a target, each trusting the other. With
 * `incomingDataset`, the target receives ZFS datasets under `<pool>/<incomingDataset>`.
 */
export async function enginePair(scope: Scope, bufferSize: number, overrides: Partial<EngineConfig> = {}, options: { readonly incomingDataset?: string; readonly targetQuota?: number } = {}): Promise<EnginePair> {
  const pool = await scope.pool(1024 * MiB);
  const incoming = options.incomingDataset === undefined ? {} : { incomingDataset: `${pool.name}/${options.incomingDataset}` };
  const dirs = { source: scope.path('source'), target: scope.path('target') };
  // A target whose state directory (where shipped disks land) is a filesystem this small.
  if (options.targetQuota !== undefined) await zfsCreate(`${pool.name}/target`, { mountpoint: dirs.target, quota: String(options.targetQuota) });
  const volume = new ZfsVolume({ pool: pool.name, mountpoint: join(dirs.source, 'buffer') });
  await volume.create(bufferSize);
  const [sourceId, targetId] = await Promise.all([ensureIdentity(join(dirs.source, 'identity'), 'src'), ensureIdentity(join(dirs.target, 'identity'), 'dst')]);
  const [sourceTrust, targetTrust] = await Promise.all([TrustStore.open(join(dirs.source, 'trust.json')), TrustStore.open(join(dirs.target, 'trust.json'))]);
  const target = new Engine({ config: engineConfig(dirs.target, bufferSize, { ...overrides, ...incoming }), identity: targetId, trust: targetTrust, volume: new ZfsVolume({ pool: pool.name, mountpoint: join(dirs.target, 'unused') }) });
  await target.start();
  const source = new Engine({ config: engineConfig(dirs.source, bufferSize, overrides), identity: sourceId, trust: sourceTrust, volume });
  await source.start();
  await targetTrust.add('src', sourceId.cert, '127.0.0.1:1');
  await sourceTrust.add('dst', targetId.cert, `127.0.0.1:${target.peerPort ?? 0}`);
  return {
    source,
    target,
    pool,
    close: async () => {
      await source.close();
      await target.close();
      for (const vm of [...source.vms.values(), ...target.vms.values()]) await vm.stop();
    },
  };
}

/** A migration rolled back in process: the guest runs on at the source with every write, and the target (its VMs under `targetVms`) keeps nothing. */
export async function expectKeptAtSource(pair: EnginePair, vm: ManagedVm, targetVms: string): Promise<void> {
  expect(await vm.commands.queryStatus()).toMatchObject({ running: true });
  const before = (await readSerial(vm.spec.serialLog)).verifications.length;
  const after = await waitForSerial(vm.spec.serialLog, (r) => r.verifications.length >= before + 2, 'verifications after the rollback');
  expect(after.verifications.every((v) => v.lost === 0)).toBe(true);
  expect(after.ioErrors).toEqual([]);
  expect(pair.source.loop.partition.bins).toEqual([]);
  expect(pair.target.vms.size).toBe(0);
  expect(await readdir(targetVms).catch(() => [])).toEqual([]);
}
