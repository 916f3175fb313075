/**
 * Every endpoint of the REST API, as data: method, path, what it does, its body schema and what
 * it answers. api.ts routes by this table (TypeScript makes it give each entry a handler) and
 * scripts/api-reference.ts renders it into docs/api.md.
 */
import { DEVICE_MODEL, DISK_OPTIONS } from './device-model.js';
import { address, flag, integer, listOf, name, names, oneOf, optional, path, size, text, type Schema } from './schema.js';

export interface Endpoint {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** `{param}` marks a path segment. */
  readonly path: string;
  readonly summary: string;
  readonly body?: Schema;
  readonly returns: string;
}

const disk = {
  id: name('Device id of the disk in the guest (`-device …,id=`); also names its overlay and NBD export.'),
  file: path('The disk image on this host.'),
  nodeName: optional(name('Block node name of the image (default `disk<index>`).')),
  format: optional(oneOf('Image format (default `qcow2`).', ['qcow2', 'raw'] as const), 'qcow2'),
  ...DISK_OPTIONS,
};

const vm = {
  name: name('VM name, unique on this host.'),
  memoryMiB: integer('Guest RAM in MiB.', 16, 1 << 22),
  vcpus: optional(integer("Virtual CPUs (default: the product of `cpu`'s topology, else 1).", 1, 1024)),
  ...DEVICE_MODEL,
  kernel: optional(path('Kernel for direct boot.')),
  initrd: optional(path('Initramfs for direct boot.')),
  append: optional(text('Kernel command line.')),
  disks: listOf('Disks, each attached with `werror=stop`.', disk, 1),
};

export const BODIES = {
  resize: {
    size: size('New size of the buffer volume, e.g. `20GiB`; never below the bytes in use, never above what the storage can give.'),
  },
  vm,
  adopt: {
    ...vm,
    disks: listOf("The VM's disks as QEMU has them: device id, node name (default `disk<index>`), image; each must stop the guest on write errors (`werror=stop`).", disk, 1),
    qmpSocket: path("A QMP monitor of the running QEMU for cowbuf's own use (QEMU serves one client per monitor)."),
    serialLog: optional(path('The file its serial console writes to, if any (shown by `GET /1.0/vms`).')),
    pid: optional(integer('Its QEMU process (default: the process listening on `qmpSocket`).', 1, 2 ** 22)),
    allowErrorPolicy: optional(flag('Adopt drives that do not stop on write errors, with a warning: a full buffer then reaches the guest as an I/O error.'), false),
  },
  migration: {
    vm: name('A VM of this host (`GET /1.0/vms`).'),
    target: name('A trusted peer (`GET /1.0/peers`).'),
    policy: optional(name('Throttle policy for this migration (`lx066`, `deadline`); default from the config.')),
  },
  evacuation: {
    targets: optional(names('Trusted peers to move the VMs to (`GET /1.0/peers`); default all of them. One that cannot be reached when the batch is planned is left out, with why.')),
  },
  resolve: {
    resume: oneOf('The side whose copy of the guest resumes. `source` still asks the target to abort first, and a target that answers that the guest runs there wins.', ['source', 'target'] as const),
  },
  peer: {
    name: name('Name this host gives the peer.'),
    certificate: text("The peer's PEM certificate (`cowbuf info --certificate` on the peer)."),
    address: address("The peer's peer-API address."),
  },
  token: {
    name: name('Name this host gives the peer that joins with the token.'),
    expirySeconds: optional(integer('Lifetime of the token (default 3600).', 1, 30 * 24 * 3600), 3600),
  },
  join: {
    name: name('Name this host gives the peer that issued the token.'),
    token: text('The token printed by `cowbuf trust token` on the peer.'),
  },
} as const satisfies Record<string, Schema>;

export const ENDPOINTS = {
  info: { method: 'GET', path: '/1.0', summary: 'Daemon identity: version, certificate and fingerprint, peer address, buffer driver.', returns: 'object' },
  buffer: { method: 'GET', path: '/1.0/buffer', summary: 'The buffer volume (size, used, available, hard limit, driver capabilities) and its partition (bins, shards, frozen).', returns: 'object' },
  resizeBuffer: { method: 'PATCH', path: '/1.0/buffer', summary: 'Resizes the buffer; the bins of running migrations are re-cut.', body: BODIES.resize, returns: 'the buffer status' },
  vms: { method: 'GET', path: '/1.0/vms', summary: "This host's VMs (started by the daemon, adopted, or arrived by migration).", returns: 'array of VMs' },
  startVm: { method: 'POST', path: '/1.0/vms', summary: 'Starts a VM owned by the daemon.', body: BODIES.vm, returns: 'the VM (201)' },
  adoptVm: {
    method: 'POST',
    path: '/1.0/vms/adopt',
    summary: "Takes over a running QEMU the daemon did not start, given its QMP socket and its definition. Refused unless every disk exists as declared and stops the guest on write errors; the admin's I/O limits are kept and restored after each migration.",
    body: BODIES.adopt,
    returns: 'the VM (201)',
  },
  removeVm: {
    method: 'DELETE',
    path: '/1.0/vms/{name}',
    summary:
      "Takes a VM off this host, as `lxc stop --force` then `lxc delete` would, but keeping every file. A VM the daemon started or received by migration is stopped: QMP `quit`, then SIGTERM, then SIGKILL (the guest OS is not shut down: shut it down from inside first if its filesystems matter), and its taps removed. An adopted VM is released: cowbuf's monitor connection closes and its QEMU runs on as the admin left it (cowbuf's write cap is only on while a migration runs, and the admin's I/O limits are put back when it lifts). Either way an overlay a failed rollback left is committed back into the disk first, the daemon forgets the VM (a restart does not bring it back), and nothing is deleted: disks, firmware variables, serial log, and the home under the state dir of a VM that arrived. Refused (409) while a migration of the VM is in any phase before its guest departed, or an evacuation batch holds it; 405 when the engine's VM provider removes no VMs (an embedding daemon's own).",
    returns: 'the name, `removal` (`stopped` or `released`) and the pid of its QEMU (404 if unknown)',
  },
  headroom: {
    method: 'GET',
    path: '/1.0/headroom',
    summary: 'What this host can still take on, for a cluster manager placing migrations with its own store: buffer size, used, committed and free; outgoing and incoming slots; memory and disk free for incoming guests (after those on their way); the measured link rate to each peer.',
    returns: 'object',
  },
  migrations: { method: 'GET', path: '/1.0/migrations', summary: 'All migrations this daemon sent or is sending, with phase, progress, bin and decisions.', returns: 'array of migrations' },
  migrate: { method: 'POST', path: '/1.0/migrations', summary: 'Starts (or queues) a migration; answers at once with an async operation.', body: BODIES.migration, returns: 'async operation (202)' },
  migration: { method: 'GET', path: '/1.0/migrations/{id}', summary: 'One migration.', returns: 'migration (404 if unknown)' },
  cancelMigration: { method: 'DELETE', path: '/1.0/migrations/{id}', summary: 'Cancels a migration; it rolls back and the VM stays here.', returns: 'the operation' },
  resolveMigration: {
    method: 'POST',
    path: '/1.0/migrations/{id}/resolve',
    summary: 'Ends a migration in doubt (the target stopped answering after the source completed; both copies are paused) by naming the side to resume. Only for an admin who knows which copy must run: the daemon never decides this on a timer.',
    body: BODIES.resolve,
    returns: 'the migration (400 unless it is in doubt)',
  },
  operation: { method: 'GET', path: '/1.0/operations/{id}', summary: 'The operation of a migration: status `Running`, `Success`, `Failure` or `Cancelled`.', returns: 'operation' },
  waitOperation: { method: 'GET', path: '/1.0/operations/{id}/wait', summary: 'Blocks until the operation ends.', returns: 'operation' },
  cancelOperation: { method: 'DELETE', path: '/1.0/operations/{id}', summary: 'Same as cancelling the migration.', returns: 'operation' },
  evacuations: { method: 'GET', path: '/1.0/evacuations', summary: 'Evacuation batches, the running one and those before it (kept across restarts).', returns: 'array of evacuations' },
  evacuate: {
    method: 'POST',
    path: '/1.0/evacuations',
    summary:
      "Moves every VM of this host that is not migrating already to the targets: placement by each target's headroom (asked over the peer protocol) and this host's buffer and links, as many at once as buffer, links and the targets' incoming slots allow, decided again as each migration ends. Plans, then answers; the batch runs on (journaled: a restarted daemon carries on). A VM no target can take is reported with why (`unplaced`) and the others go. One batch at a time (409 while one is not over).",
    body: BODIES.evacuation,
    returns: 'the evacuation (201): per VM its target, migration, phase and bytes left; in total moved, failed, cancelled, left, bytes left and an ETA',
  },
  evacuation: { method: 'GET', path: '/1.0/evacuations/{id}', summary: 'One evacuation batch.', returns: 'evacuation (404 if unknown)' },
  cancelEvacuation: { method: 'DELETE', path: '/1.0/evacuations/{id}', summary: 'Cancels a batch: its VMs not started yet stay here, its running migrations are cancelled (those past their point of no return finish).', returns: 'the evacuation' },
  peers: { method: 'GET', path: '/1.0/peers', summary: 'Trusted peers: name, address, fingerprint, certificate expiry.', returns: 'array of peers' },
  trust: { method: 'POST', path: '/1.0/peers', summary: "Trusts a peer by its certificate (pinned by SHA-256 fingerprint).", body: BODIES.peer, returns: 'the peer (201)' },
  untrust: { method: 'DELETE', path: '/1.0/peers/{name}', summary: 'Stops trusting a peer.', returns: 'empty object (404 if unknown)' },
  tokens: { method: 'GET', path: '/1.0/peers/tokens', summary: 'Pending one-time trust tokens (names and expiry, never the secrets).', returns: 'array of tokens' },
  issueToken: { method: 'POST', path: '/1.0/peers/tokens', summary: 'Issues a one-time token a peer joins with (it carries our address, fingerprint and a secret).', body: BODIES.token, returns: 'token (201)' },
  join: { method: 'POST', path: '/1.0/peers/join', summary: "Joins the peer that issued a token: dials it, pins its certificate against the token's fingerprint, and both sides trust each other.", body: BODIES.join, returns: 'the peer (201)' },
  metrics: { method: 'GET', path: '/1.0/metrics', summary: 'Prometheus text metrics (buffer, per-migration bin, cow, shards, γ, U, phase, remaining, outcomes, tick duration and lag).', returns: 'text/plain' },
  events: { method: 'GET', path: '/1.0/events', summary: 'Event stream, one JSON object per line: `migration`, `evacuation`, `logging`, `tick`.', returns: 'application/x-ndjson' },
} as const satisfies Record<string, Endpoint>;

export type EndpointName = keyof typeof ENDPOINTS;
