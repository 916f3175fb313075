/** `cowbuf migrate`, `list`, `show`, `cancel`, `watch`: migrations, through the daemon's API. */
import { Command } from 'commander';
import { CowbufError } from '../../errors.js';
import type { MigrationRecord } from '../../migration/engine.js';
import { FINAL } from '../../migration/record.js';
import { formatBytes } from '../../units.js';
import { ApiClient } from '../client.js';
import { parseFormat, render, table } from '../format.js';
import type { Io } from '../io.js';
import { liveView, progressBlock, progressLine } from '../progress.js';


/** Follows migrations on the events stream; a terminal is redrawn, a pipe gets a line per change. */
async function follow(io: Io, client: ApiClient, only: string | undefined): Promise<MigrationRecord[]> {
  const controller = new AbortController();
  const latest = new Map<string, MigrationRecord>();
  const show = liveView(io);
  await client.events((event) => {
    if (event.type !== 'migration') return;
    const record = event.metadata as MigrationRecord;
    if (only && record.id !== only) return;
    if (!only && FINAL.has(record.phase) && !latest.has(record.id)) return;
    latest.set(record.id, record);
    show([...latest.values()].map((shown) => ({ key: shown.id, block: progressBlock(shown), line: progressLine(shown) })));
    if (only && FINAL.has(record.phase)) controller.abort();
  }, controller.signal);
  return [...latest.values()];
}

function rows(records: readonly MigrationRecord[]): string {
  return table(
    ['ID', 'VM', 'TARGET', 'PHASE', 'POLICY', 'BIN', 'COW', 'THROTTLE', 'ERROR'],
    records.map((r) => [r.id, r.vm, r.peer, r.phase, r.policy, formatBytes(r.buffer?.bin ?? 0), formatBytes(r.buffer?.cow ?? 0), r.buffer ? `${formatBytes(r.buffer.throttle)}/s` : '-', r.error ?? '']),
  );
}

export function migrationCommands(io: Io): Command[] {
  const migrate = new Command('migrate')
    .description('live-migrate a VM to a trusted peer through the migration buffer')
    .argument('<vm>', 'VM name on this host')
    .requiredOption('--target <peer>', 'trusted peer to migrate to')
    .option('--policy <name>', 'write-throttle policy for this migration (deadline, lx066)')
    .option('--no-wait', 'return once the migration is queued')
    .action(async (vm: string, flags: { target: string; policy?: string; wait: boolean }, command: Command) => {
      const client = await ApiClient.for(command);
      const operation = await client.call<{ id: string }>('POST', '/1.0/migrations', { vm, target: flags.target, ...(flags.policy ? { policy: flags.policy } : {}) });
      if (!flags.wait) {
        io.stdout(`${operation.id}\n`);
        return;
      }
      const [record] = await follow(io, client, operation.id);
      if (record?.phase !== 'completed') throw new MigrationNotCompleted(record?.error ?? `migration ${operation.id} ended ${record?.phase ?? 'unknown'}`);
    });
  const list = new Command('list')
    .description('list migrations')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (flags: { format?: string }, command: Command) => {
      const format = parseFormat(flags.format);
      const records = await (await ApiClient.for(command)).call<MigrationRecord[]>('GET', '/1.0/migrations');
      io.stdout(render(format, records, () => rows(records)));
    });
  const show = new Command('show')
    .description('show one migration')
    .argument('<id>')
    .option('--format <format>', 'table, json or yaml', 'yaml')
    .action(async (id: string, flags: { format?: string }, command: Command) => {
      const format = parseFormat(flags.format);
      const record = await (await ApiClient.for(command)).call<MigrationRecord>('GET', `/1.0/migrations/${encodeURIComponent(id)}`);
      io.stdout(render(format, record, () => `${progressBlock(record)}\n`));
    });
  const cancel = new Command('cancel')
    .description('cancel a migration (it rolls back; the guest keeps running here)')
    .argument('<id>')
    .action(async (id: string, _flags: unknown, command: Command) => {
      await (await ApiClient.for(command)).call('DELETE', `/1.0/migrations/${encodeURIComponent(id)}`);
      io.stdout(`cancelling ${id}\n`);
    });
  const resolve = new Command('resolve')
    .description('end a migration in doubt (its target stopped answering after RAM crossed) by naming the side whose copy resumes')
    .argument('<id>')
    .requiredOption('--resume <side>', 'source or target: only if you know the other copy is not running')
    .action(async (id: string, flags: { resume: string }, command: Command) => {
      const record = await (await ApiClient.for(command)).call<MigrationRecord>('POST', `/1.0/migrations/${encodeURIComponent(id)}/resolve`, { resume: flags.resume });
      io.stdout(`${record.id}: resuming on the ${flags.resume}\n`);
    });
  const watch = new Command('watch')
    .description('live view of running migrations: phase, bytes, bin and fill, shards, γ, U/N, RAM, ETA')
    .action(async (_flags: unknown, command: Command) => {
      await follow(io, await ApiClient.for(command), undefined);
    });
  return [migrate, list, show, cancel, resolve, watch];
}

export class MigrationNotCompleted extends CowbufError {
  override readonly name: string = 'MigrationNotCompleted';
}
