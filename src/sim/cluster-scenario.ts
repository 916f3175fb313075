/**
 * Cluster scenarios for `cowbuf sim` (format: docs/evacuation.md): groups of alike hosts, guest
 * profiles, how many of each profile every host of a group runs, and the maintenance to play (a
 * drain of named hosts, or a rolling maintenance of every host). Parsed and validated at the
 * boundary, then expanded into one record per host and per VM: a 100-host cluster is a page of
 * JSON, not ten thousand lines.
 */
import { ValidationError } from '../errors.js';
import { parsePositiveSize, parseSize } from '../units.js';
import { array, join, number, object, record, string, type Json } from '../validate.js';
import { DEFAULT_MAX_SECONDS, parseControl, parseWorkload, positiveRate, WORKLOAD_OPTIONAL, WORKLOAD_REQUIRED, type ScenarioControl, type Workload } from './scenario.js';

export interface ClusterHost {
  readonly name: string;
  readonly cpus: number;
  readonly memory: number;
  /** Memory the host keeps for itself (kernel, services): never a guest's. */
  readonly reservedMemory: number;
  /** Local storage for guests' disks, bytes. */
  readonly disk: number;
  /** Interface rate, bytes/s, each way (full duplex): the host's uplink and downlink. */
  readonly nic: number;
  /** Its migration-cow-buffer, bytes. */
  readonly buffer: number;
  /** cowbuf's maxOutgoing and maxIncoming on this host. */
  readonly maxOutgoing: number;
  readonly maxIncoming: number;
}

export interface ClusterVm {
  readonly id: string;
  /** Its profile's name. */
  readonly profile: string;
  /** Where it runs when the scenario begins. */
  readonly host: string;
  readonly workload: Workload;
  /** Local disks besides the root disk (Incus live-migrates only VMs without any). */
  readonly extraDisks: number;
}

export type Maintenance = { readonly kind: 'drain'; readonly hosts: readonly string[] } | { readonly kind: 'rolling' };

export interface ClusterScenario {
  readonly name: string;
  readonly tickSeconds: number;
  readonly maxSeconds: number;
  /** The most one migration's streams carry (QEMU's migration thread, the NBD mirror), bytes/s. */
  readonly migrationRate: number;
  readonly hosts: readonly ClusterHost[];
  readonly vms: readonly ClusterVm[];
  readonly maintenance: Maintenance;
  readonly control: ScenarioControl;
}

/** Coarser than a single-host run: a cluster evacuation lasts hours of simulated time. */
const DEFAULT_TICK_SECONDS = 1;
const PROFILE_OPTIONAL = [...WORKLOAD_OPTIONAL, 'extraDisks'] as const;
const HOST_REQUIRED = ['name', 'cpus', 'memory', 'disk', 'nic', 'buffer', 'vms'] as const;
const HOST_OPTIONAL = ['count', 'reservedMemory', 'maxOutgoing', 'maxIncoming'] as const;

/** Whether `input` is meant as a cluster scenario rather than a single-host one. */
export function isClusterScenario(input: unknown): boolean {
  return typeof input === 'object' && input !== null && !Array.isArray(input) && 'hosts' in input;
}

/** @throws ValidationError naming the first bad field, e.g. `hosts[2].vms.db` */
export function parseClusterScenario(input: unknown): ClusterScenario {
  const root = object('', input, ['name', 'profiles', 'hosts', 'maintenance'], ['tickSeconds', 'maxSeconds', 'migrationRate', 'control']);
  const tickSeconds = root.tickSeconds === undefined ? DEFAULT_TICK_SECONDS : number('tickSeconds', root.tickSeconds, { min: 0, positive: true });
  const maxSeconds = root.maxSeconds === undefined ? DEFAULT_MAX_SECONDS : number('maxSeconds', root.maxSeconds, { min: tickSeconds });
  const name = string('name', root.name);
  const migrationRate = root.migrationRate === undefined ? Infinity : positiveRate('migrationRate', root.migrationRate);
  const profiles = parseProfiles(record('profiles', root.profiles));
  const hosts: ClusterHost[] = [];
  const vms: ClusterVm[] = [];
  array('hosts', root.hosts, 1).forEach((entry, index) => expandGroup(join('hosts', index), entry, profiles, hosts, vms));
  const maintenance = parseMaintenance(root.maintenance, new Set(hosts.map((host) => host.name)));
  return { name, tickSeconds, maxSeconds, migrationRate, hosts, vms, maintenance, control: parseControl(root.control) };
}

interface Profile {
  readonly workload: Workload;
  readonly extraDisks: number;
}

function parseProfiles(raw: Json): ReadonlyMap<string, Profile> {
  const profiles = new Map<string, Profile>();
  for (const [key, value] of Object.entries(raw)) {
    const field = join('profiles', key);
    const entry = object(field, value, WORKLOAD_REQUIRED, PROFILE_OPTIONAL);
    const extraDisks = entry.extraDisks === undefined ? 0 : number(`${field}.extraDisks`, entry.extraDisks, { min: 0, integer: true });
    profiles.set(key, { workload: parseWorkload(field, entry), extraDisks });
  }
  if (profiles.size === 0) throw new ValidationError('profiles', raw, 'an object of at least one guest profile');
  return profiles;
}

/** One group of alike hosts: `count` of them named `<name>-01`, `<name>-02`, ..., each running the same VMs. */
function expandGroup(field: string, input: unknown, profiles: ReadonlyMap<string, Profile>, hosts: ClusterHost[], vms: ClusterVm[]): void {
  const group = object(field, input, HOST_REQUIRED, HOST_OPTIONAL);
  const prefix = string(`${field}.name`, group.name, /^[a-z0-9][a-z0-9-]*$/, 'a host name prefix (lower-case letters, digits, dashes)');
  const count = group.count === undefined ? 1 : number(`${field}.count`, group.count, { min: 1, max: 10_000, integer: true });
  const shape = {
    cpus: number(`${field}.cpus`, group.cpus, { min: 1, integer: true }),
    memory: parsePositiveSize(`${field}.memory`, group.memory),
    reservedMemory: group.reservedMemory === undefined ? 0 : parseSize(`${field}.reservedMemory`, group.reservedMemory),
    disk: parsePositiveSize(`${field}.disk`, group.disk),
    nic: positiveRate(`${field}.nic`, group.nic),
    buffer: parsePositiveSize(`${field}.buffer`, group.buffer),
    maxOutgoing: slots(`${field}.maxOutgoing`, group.maxOutgoing),
    maxIncoming: slots(`${field}.maxIncoming`, group.maxIncoming),
  };
  const load = Object.entries(record(`${field}.vms`, group.vms)).map(([key, value]) => {
    const profile = profiles.get(key);
    if (!profile) throw new ValidationError(join(`${field}.vms`, key), key, `a profile (${[...profiles.keys()].join(', ')})`);
    return { key, profile, count: number(join(`${field}.vms`, key), value, { min: 0, integer: true }) };
  });
  const memory = load.reduce((sum, { profile, count: n }) => sum + n * profile.workload.ram, shape.reservedMemory);
  if (memory > shape.memory) throw new ValidationError(`${field}.vms`, group.vms, `guests that fit the host's memory (they need ${memory} bytes with the reserve, it has ${shape.memory})`);
  const disk = load.reduce((sum, { profile, count: n }) => sum + n * profile.workload.disk, 0);
  if (disk > shape.disk) throw new ValidationError(`${field}.vms`, group.vms, `guests that fit the host's disk (they need ${disk} bytes, it has ${shape.disk})`);
  const width = String(count).length < 2 ? 2 : String(count).length;
  for (let index = 1; index <= count; index += 1) {
    const name = `${prefix}-${String(index).padStart(width, '0')}`;
    if (hosts.some((host) => host.name === name)) throw new ValidationError(`${field}.name`, prefix, `a prefix whose hosts' names are unique (${name} is taken)`);
    hosts.push({ name, ...shape });
    for (const { key, profile, count: n } of load) {
      for (let k = 1; k <= n; k += 1) vms.push({ id: `${name}/${key}-${k}`, profile: key, host: name, workload: profile.workload, extraDisks: profile.extraDisks });
    }
  }
}

function slots(field: string, value: unknown): number {
  // cowbuf's own defaults (config/cowbuf.example.yaml).
  return value === undefined ? 4 : number(field, value, { min: 1, max: 1000, integer: true });
}

function parseMaintenance(input: unknown, names: ReadonlySet<string>): Maintenance {
  const entry = object('maintenance', input, ['kind'], ['hosts']);
  const kind = entry.kind;
  if (kind === 'rolling') {
    if (entry.hosts !== undefined) throw new ValidationError('maintenance.hosts', entry.hosts, 'absent (a rolling maintenance visits every host, in order)');
    return { kind };
  }
  if (kind !== 'drain') throw new ValidationError('maintenance.kind', kind, 'one of drain, rolling');
  const hosts = array('maintenance.hosts', entry.hosts, 1).map((host, index) => string(join('maintenance.hosts', index), host));
  hosts.forEach((host, index) => {
    if (!names.has(host)) throw new ValidationError(join('maintenance.hosts', index), host, "one of the scenario's hosts");
  });
  if (hosts.length >= names.size) throw new ValidationError('maintenance.hosts', hosts, 'fewer hosts than the cluster has (the VMs need somewhere to go)');
  return { kind, hosts };
}
