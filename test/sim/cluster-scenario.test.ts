/* eslint-disable @typescript-eslint/no-explicit-any -- the edits poke into raw scenario JSON on purpose, to break it */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { isClusterScenario, parseClusterScenario } from '../../src/sim/cluster-scenario.js';
import { CLUSTER_SCENARIOS, PUBLIC_SCENARIOS, rawCluster as raw, rawScenario } from '../support/scenarios.js';

const GiB = 1024 ** 3;
const rawCluster = (name: string) => raw(name) as Record<string, any>;

function fieldOf(input: unknown): string | undefined {
  try {
    parseClusterScenario(input);
  } catch (error) {
    if (error instanceof ValidationError) return error.field;
    throw error;
  }
  return undefined;
}

describe('cluster scenario files', () => {
  it('expands the 100-host drain into hosts and VMs, group by group', () => {
    const scenario = parseClusterScenario(rawCluster('drain-one-of-100'));
    expect(scenario.hosts).toHaveLength(100);
    expect(scenario.hosts.map((host) => host.name).slice(28, 32)).toEqual(['gen3-29', 'gen3-30', 'gen2-01', 'gen2-02']);
    expect(scenario.hosts[0]).toMatchObject({ cpus: 128, memory: 1024 * GiB, reservedMemory: 32 * GiB, nic: 25e9 / 8, buffer: 64 * GiB, maxIncoming: 4 });
    expect(scenario.vms).toHaveLength(30 * 36 + 50 * 26 + 20 * 2);
    expect(scenario.vms.filter((vm) => vm.host === 'gen3-01').map((vm) => vm.id).slice(0, 3)).toEqual(['gen3-01/app-1', 'gen3-01/app-2', 'gen3-01/app-3']);
    expect(scenario.vms.find((vm) => vm.id === 'gen3-01/db-1')).toMatchObject({ profile: 'db', extraDisks: 1, workload: { ram: 64 * GiB, disk: 400 * GiB, writeRate: 40e6, workingSet: 80 * GiB } });
    expect(scenario.maintenance).toEqual({ kind: 'drain', hosts: ['gen3-01'] });
    expect(scenario.migrationRate).toBe(5e9 / 8);
  });

  it.each(CLUSTER_SCENARIOS)('%s is told apart from a single-host scenario', (name) => {
    expect(isClusterScenario(rawCluster(name))).toBe(true);
  });

  it.each(PUBLIC_SCENARIOS)('the single-host %s is not taken for a cluster', (name) => {
    expect(isClusterScenario(rawScenario(name))).toBe(false);
  });

  it('defaults what a scenario leaves out', () => {
    const raw = rawCluster('rolling-100');
    delete raw.tickSeconds;
    delete raw.migrationRate;
    delete raw.hosts[0].maxIncoming;
    const scenario = parseClusterScenario(raw);
    expect(scenario.tickSeconds).toBe(1);
    expect(scenario.migrationRate).toBe(Infinity);
    expect(scenario.hosts[0]?.maxIncoming).toBe(4);
    expect(scenario.control.mirrorReadySeconds).toBe(60);
    expect(scenario.maintenance).toEqual({ kind: 'rolling' });
  });

  it.each<[string, (raw: Record<string, any>) => void, string]>([
    ['an unknown profile', (raw) => (raw.hosts[1].vms.nope = 1), 'hosts[1].vms.nope'],
    ['a bad profile field', (raw) => (raw.profiles.db.writeRate = 'fast'), 'profiles.db.writeRate'],
    ['extra disks that are not a count', (raw) => (raw.profiles.db.extraDisks = 0.5), 'profiles.db.extraDisks'],
    ['guests beyond the memory', (raw) => (raw.hosts[0].vms.db = 40), 'hosts[0].vms'],
    ['guests beyond the disk', (raw) => (raw.hosts[0].disk = '1TB'), 'hosts[0].vms'],
    ['two groups with one name', (raw) => (raw.hosts[1].name = 'gen3'), 'hosts[1].name'],
    ['an unknown host to drain', (raw) => (raw.maintenance.hosts = ['gen9-01']), 'maintenance.hosts[0]'],
    ['an unknown kind of maintenance', (raw) => (raw.maintenance.kind = 'reboot'), 'maintenance.kind'],
    ['a NIC without a rate', (raw) => (raw.hosts[2].nic = '0Gbit'), 'hosts[2].nic'],
    ['no hosts', (raw) => (raw.hosts = []), 'hosts'],
  ])('names the field of %s', (_, edit, field) => {
    const raw = rawCluster('drain-one-of-100');
    edit(raw);
    expect(fieldOf(raw)).toBe(field);
  });

  it('refuses to drain every host', () => {
    const raw = rawCluster('drain-one-of-100');
    raw.hosts = [raw.hosts[0]];
    raw.hosts[0].count = 1;
    expect(() => parseClusterScenario(raw)).toThrow('Expected `maintenance.hosts` to be fewer hosts than the cluster has (the VMs need somewhere to go)');
  });
});
