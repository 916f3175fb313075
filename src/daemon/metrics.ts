/** Prometheus text exposition of the buffer, the migrations, the links and the control loop. */
import { usedBytes, type Partition } from '../buffer/partition.js';
import type { TickTrace } from '../migration/tick-trace.js';
import type { MigrationRecord } from '../migration/engine.js';
import { FINAL } from '../migration/record.js';

export interface MetricsInput {
  readonly partition: Partition;
  readonly records: readonly MigrationRecord[];
  readonly lastTick: TickTrace | undefined;
  /** Sums over every tick so far: how long ticks took and how late they ran. */
  readonly tickSeconds: { readonly sum: number; readonly lagSum: number; readonly count: number };
  readonly outcomes: Readonly<Record<string, number>>;
}

const escape = (value: string) => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function renderMetrics(input: MetricsInput): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: ReadonlyArray<[Record<string, string>, number]>) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const rendered = Object.entries(labels).map(([key, label]) => `${key}="${escape(label)}"`).join(',');
      lines.push(`${name}${rendered ? `{${rendered}}` : ''} ${Number.isFinite(value) ? value : 0}`);
    }
  };
  metric('cowbuf_buffer_size_bytes', 'gauge', 'Size of migration-cow-buffer.', [[{}, input.partition.capacity]]);
  metric('cowbuf_buffer_used_bytes', 'gauge', 'Overlay bytes accounted in the buffer.', [[{}, usedBytes(input.partition)]]);
  const running = input.records.filter((record) => !FINAL.has(record.phase));
  const each = (value: (record: MigrationRecord) => number) => running.map((record): [Record<string, string>, number] => [{ migration: record.id }, value(record)]);
  metric('cowbuf_migration_bin_bytes', 'gauge', "Size of the migration's own bin.", each((r) => r.buffer?.bin ?? 0));
  metric('cowbuf_migration_cow_bytes', 'gauge', "Bytes of the migration's overlays.", each((r) => r.buffer?.cow ?? 0));
  metric('cowbuf_migration_shards', 'gauge', 'Bins other than its own holding part of its overlay.', each((r) => r.buffer?.shards ?? 0));
  metric('cowbuf_migration_throttle_bytes_per_second', 'gauge', 'Write throttle γ applied to the guest.', each((r) => r.buffer?.throttle ?? 0));
  metric('cowbuf_migration_link_share_bytes_per_second', 'gauge', 'Link share U/N the throttle was computed with.', each((r) => r.buffer?.linkShare ?? 0));
  metric('cowbuf_migration_disk_remaining_bytes', 'gauge', 'Base and overlay bytes still to ship.', each((r) => Math.max(0, r.progress.baseTotal - r.progress.baseSent) + r.progress.mirrorRemaining));
  metric('cowbuf_migration_ram_remaining_bytes', 'gauge', 'RAM bytes still to send.', each((r) => r.progress.ramRemaining));
  metric('cowbuf_migration_qemu_sent_bytes', 'gauge', 'What QEMU and the base shipping report sent (cross-check of the acknowledged bytes).', each((r) => r.progress.baseSent + r.progress.mirrorCopied + r.progress.ramTransferred));
  metric('cowbuf_migration_phase', 'gauge', 'Current phase (1 for the phase the migration is in).', running.map((r): [Record<string, string>, number] => [{ migration: r.id, phase: r.phase }, 1]));
  metric('cowbuf_migration_cpu_throttle_percent', 'gauge', 'Highest vCPU throttle auto-converge imposed on the guest.', each((r) => r.progress.cpuThrottlePercent));
  const switched = input.records.filter((record) => record.blackout);
  metric('cowbuf_migration_blackout_seconds', 'gauge', "Switchover blackout as the hosts saw it: source STOP to target RESUME.", switched.map((r): [Record<string, string>, number] => [{ migration: r.id }, (r.blackout?.ms ?? 0) / 1000]));
  metric('cowbuf_migration_qemu_downtime_seconds', 'gauge', "QEMU's own downtime figure on the source.", switched.map((r): [Record<string, string>, number] => [{ migration: r.id }, (r.blackout?.qemuDowntimeMs ?? 0) / 1000]));
  metric('cowbuf_link_rate_bytes_per_second', 'gauge', 'Measured link rate U per peer.', (input.lastTick?.links ?? []).map((link): [Record<string, string>, number] => [{ peer: link.peer }, link.rate]));
  metric('cowbuf_link_interface_rate_bytes_per_second', 'gauge', "Rate of the tx counter of the interface towards each peer (headers and other traffic included): the cross-check of U.", (input.lastTick?.links ?? []).flatMap((link): Array<[Record<string, string>, number]> => (link.interfaceRate === undefined ? [] : [[{ peer: link.peer }, link.interfaceRate]])));
  metric('cowbuf_link_acked_bytes_total', 'counter', 'Bytes acknowledged by each peer on the migration streams.', (input.lastTick?.links ?? []).map((link): [Record<string, string>, number] => [{ peer: link.peer }, link.bytesAcked]));
  metric('cowbuf_migrations_total', 'counter', 'Migrations ended, by outcome.', Object.entries(input.outcomes).map(([outcome, count]): [Record<string, string>, number] => [{ outcome }, count]));
  metric('cowbuf_control_tick_duration_seconds', 'summary', 'Duration of control-loop ticks.', []);
  lines.push(`cowbuf_control_tick_duration_seconds_sum ${input.tickSeconds.sum}`, `cowbuf_control_tick_duration_seconds_count ${input.tickSeconds.count}`);
  metric('cowbuf_control_tick_lag_seconds', 'summary', 'How much longer than the control period the interval before each tick was (the throttle went unrevised that long).', []);
  lines.push(`cowbuf_control_tick_lag_seconds_sum ${input.tickSeconds.lagSum}`, `cowbuf_control_tick_lag_seconds_count ${input.tickSeconds.count}`);
  metric('cowbuf_control_last_tick_lag_seconds', 'gauge', 'Lag of the last control tick.', input.lastTick ? [[{}, input.lastTick.lagMs / 1000]] : []);
  return `${lines.join('\n')}\n`;
}
