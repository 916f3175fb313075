/** `cowbuf evacuate` and `cowbuf evacuation list|show|watch|cancel`: every VM off this host, through the daemon's API. */
import { Command } from 'commander';
import { CowbufError } from '../../errors.js';
import { BATCH_FINAL, type EvacuationRecord, type VmProgress } from '../../evacuation/progress.js';
import { formatBytes } from '../../units.js';
import { ApiClient } from '../client.js';
import { parseFormat, render, table } from '../format.js';
import type { Io } from '../io.js';
import { liveView, type Shown } from '../progress.js';

const eta = (record: EvacuationRecord) => (record.total.etaSeconds !== undefined ? `~${record.total.etaSeconds}s` : '-');

function totalLine(record: EvacuationRecord): string {
  const t = record.total;
  return `${record.id} status=${record.status} moved=${t.moved} failed=${t.failed} cancelled=${t.cancelled} left=${t.left} bytes_left=${formatBytes(t.bytesLeft)} eta=${eta(record)}${record.error ? ` error=${JSON.stringify(record.error)}` : ''}`;
}

function vmLine(record: EvacuationRecord, vm: VmProgress): string {
  return [
    `${record.id} vm=${vm.vm}`,
    `target=${vm.target ?? '-'}`,
    `phase=${vm.phase}`,
    `left=${formatBytes(vm.bytesLeft)}`,
    ...(vm.migration ? [`migration=${vm.migration}`] : []),
    ...(vm.error ? [`error=${JSON.stringify(vm.error)}`] : []),
  ].join(' ');
}

function vmBlockLine(vm: VmProgress): string {
  return `  ${vm.vm} → ${vm.target ?? '(nowhere)'}  [${vm.phase}]  ${formatBytes(vm.bytesLeft)} left${vm.error ? `  ${vm.error}` : ''}`;
}

function totalBlockLine(record: EvacuationRecord): string {
  const t = record.total;
  return `${record.id}  [${record.status}]  ${t.moved} moved, ${t.failed} could not move, ${t.cancelled} cancelled, ${t.left} left  ${formatBytes(t.bytesLeft)} left  ETA ${eta(record)}${record.error ? `  ${record.error}` : ''}`;
}

/** A terminal's block (one line per VM, then the total), or the plain lines of a pipe: one per VM and one for the total. */
export function evacuationShown(record: EvacuationRecord): Shown[] {
  const total = { key: `${record.id}/total`, line: totalLine(record) };
  const vms = record.vms.map((vm) => ({ key: `${record.id}/${vm.vm}`, block: vmBlockLine(vm), line: vmLine(record, vm) }));
  return [...vms, { ...total, block: [totalBlockLine(record), ...record.leftOut.map((out) => `  target ${out.peer} left out: ${out.reason}`)].join('\n') }];
}

/** Follows one batch on the events stream until it is over; its last record. */
async function follow(io: Io, client: ApiClient, first: EvacuationRecord): Promise<EvacuationRecord> {
  const show = liveView(io);
  let latest = first;
  show(evacuationShown(latest));
  if (BATCH_FINAL.has(latest.status)) return latest;
  const controller = new AbortController();
  await client.events((event) => {
    const record = event.metadata as EvacuationRecord;
    if (event.type !== 'evacuation' || record.id !== first.id) return;
    latest = record;
    show(evacuationShown(record));
    if (BATCH_FINAL.has(record.status)) controller.abort();
  }, controller.signal);
  return latest;
}

/** @throws EvacuationNotCompleted when a VM of the batch did not move */
function outcome(record: EvacuationRecord): void {
  const stayed = record.vms.filter((vm) => vm.outcome !== 'moved');
  if (stayed.length === 0 && record.status === 'done') return;
  throw new EvacuationNotCompleted(`evacuation ${record.id} ended ${record.status}: ${stayed.length} of ${record.vms.length} VM(s) did not move (${stayed.map((vm) => `${vm.vm}: ${vm.error ?? vm.outcome}`).join('; ')})`);
}

const path = (id: string) => `/1.0/evacuations/${encodeURIComponent(id)}`;

export function evacuationCommands(io: Io): Command[] {
  const evacuate = new Command('evacuate')
    .description("move every VM of this host to trusted peers: placement by the targets' headroom, as many at once as buffer, links and the targets' slots allow")
    .option('--target <peers>', 'comma-separated trusted peers to move to (default: all of them)')
    .option('--no-wait', 'return once the batch is planned, printing its id')
    .action(async (flags: { target?: string; wait: boolean }, command: Command) => {
      const client = await ApiClient.for(command);
      const targets = flags.target?.split(',').map((name) => name.trim());
      const record = await client.call<EvacuationRecord>('POST', '/1.0/evacuations', targets ? { targets } : {});
      if (!flags.wait) {
        io.stdout(`${record.id}\n`);
        return;
      }
      outcome(await follow(io, client, record));
    });
  const evacuation = new Command('evacuation').description('evacuation batches: list, show, watch, cancel');
  evacuation
    .command('list')
    .description('list evacuation batches')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (flags: { format?: string }, command: Command) => {
      const format = parseFormat(flags.format);
      const records = await (await ApiClient.for(command)).call<EvacuationRecord[]>('GET', '/1.0/evacuations');
      const rows = records.map((r) => [r.id, r.status, String(r.total.moved), String(r.total.failed), String(r.total.left), formatBytes(r.total.bytesLeft), eta(r), r.createdAt]);
      io.stdout(render(format, records, () => table(['ID', 'STATUS', 'MOVED', 'FAILED', 'LEFT', 'BYTES LEFT', 'ETA', 'CREATED'], rows)));
    });
  evacuation
    .command('show')
    .description('show one evacuation batch')
    .argument('<id>')
    .option('--format <format>', 'table, json or yaml', 'yaml')
    .action(async (id: string, flags: { format?: string }, command: Command) => {
      const format = parseFormat(flags.format);
      const record = await (await ApiClient.for(command)).call<EvacuationRecord>('GET', path(id));
      io.stdout(render(format, record, () => `${evacuationShown(record).map((shown) => shown.block).join('\n')}\n`));
    });
  evacuation
    .command('watch')
    .description('follow a batch until it is over (exit 1 if a VM did not move)')
    .argument('<id>')
    .action(async (id: string, _flags: unknown, command: Command) => {
      const client = await ApiClient.for(command);
      outcome(await follow(io, client, await client.call<EvacuationRecord>('GET', path(id))));
    });
  evacuation
    .command('cancel')
    .description('cancel a batch: VMs not started stay here, running migrations roll back')
    .argument('<id>')
    .action(async (id: string, _flags: unknown, command: Command) => {
      await (await ApiClient.for(command)).call('DELETE', path(id));
      io.stdout(`cancelling ${id}\n`);
    });
  return [evacuate, evacuation];
}

export class EvacuationNotCompleted extends CowbufError {
  override readonly name: string = 'EvacuationNotCompleted';
}
