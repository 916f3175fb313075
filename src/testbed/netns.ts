/**
 * Two hosts on one machine: two network namespaces joined by a veth pair, the source side's
 * egress shaped with `tc tbf` (the direction migration data flows). Addresses are private to the
 * pair's own namespaces, so pairs never collide and nothing outside them is ever a target.
 * Namespaces are named after the creating PID so a later run can sweep what a crashed one left.
 */
import { processAlive, run } from '../exec/run.js';

export interface Host {
  readonly ns: string;
  readonly ip: string;
  readonly veth: string;
}

export interface TwoHosts {
  readonly src: Host;
  readonly dst: Host;
  /** Shapes src→dst to `rate` (tc syntax, e.g. `100mbit`); replaces any earlier shaping. */
  shape(rate: string): Promise<void>;
  unshape(): Promise<void>;
  /** Takes the link down (netem is not available here: a cut is a link down). */
  cut(): Promise<void>;
  restore(): Promise<void>;
  /**
   * The target refuses new TCP connections to `port` and drops everything from the source's
   * local ports `cut` (nftables in its namespace), while the other established connections carry
   * on: a migration's streams keep flowing, but no request gets through.
   */
  refuseNew(port: number, cut?: readonly number[]): Promise<void>;
  acceptNew(): Promise<void>;
  destroy(): Promise<void>;
}

const PREFIX = 'cbt';
let counter = 0;


/** Deletes namespaces left by test-bed processes that no longer exist. */
export async function sweepStaleHosts(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  const stale = stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => {
      const match = new RegExp(`^${PREFIX}([0-9a-z]+)x`).exec(name);
      return match !== null && !processAlive(parseInt(match[1] ?? '', 36));
    });
  for (const ns of stale) await run('ip', ['netns', 'del', ns], { okExitCodes: [1] });
  return stale;
}

export async function createTwoHosts(): Promise<TwoHosts> {
  const id = `${PREFIX}${process.pid.toString(36)}x${(counter++).toString(36)}`;
  const src: Host = { ns: `${id}s`, ip: '10.213.0.1', veth: `${id}a` };
  const dst: Host = { ns: `${id}d`, ip: '10.213.0.2', veth: `${id}b` };
  const created: string[] = [];
  const destroy = async () => {
    for (const ns of created.splice(0).reverse()) await run('ip', ['netns', 'del', ns], { okExitCodes: [1] });
  };
  try {
    for (const host of [src, dst]) {
      await run('ip', ['netns', 'add', host.ns]);
      created.push(host.ns);
    }
    await run('ip', ['link', 'add', src.veth, 'netns', src.ns, 'type', 'veth', 'peer', 'name', dst.veth, 'netns', dst.ns]);
    for (const host of [src, dst]) {
      await run('ip', ['-n', host.ns, 'addr', 'add', `${host.ip}/30`, 'dev', host.veth]);
      await run('ip', ['-n', host.ns, 'link', 'set', 'lo', 'up']);
      await run('ip', ['-n', host.ns, 'link', 'set', host.veth, 'up']);
    }
  } catch (error) {
    await destroy();
    throw error;
  }
  return {
    src,
    dst,
    shape: async (rate) => {
      await run('tc', ['-n', src.ns, 'qdisc', 'replace', 'dev', src.veth, 'root', 'tbf', 'rate', rate, 'burst', '64kb', 'latency', '50ms']);
    },
    unshape: async () => {
      await run('tc', ['-n', src.ns, 'qdisc', 'del', 'dev', src.veth, 'root'], { okExitCodes: [2] });
    },
    cut: async () => {
      await run('ip', ['-n', src.ns, 'link', 'set', src.veth, 'down']);
    },
    restore: async () => {
      await run('ip', ['-n', src.ns, 'link', 'set', src.veth, 'up']);
    },
    refuseNew: async (port, cut = []) => {
      const nft = (...args: string[]) => run('ip', ['netns', 'exec', dst.ns, 'nft', ...args]);
      await nft('add', 'table', 'inet', 'cowbuf_fault');
      await nft('add', 'chain', 'inet', 'cowbuf_fault', 'input', '{ type filter hook input priority 0; }');
      // Only connection openings (SYN without ACK): conntrack would classify the first packet it
      // sees of an already established stream as `new` too, and cut the streams as well.
      await nft('add', 'rule', 'inet', 'cowbuf_fault', 'input', 'tcp', 'dport', String(port), 'tcp', 'flags', '&', '(syn', '|', 'ack)', '==', 'syn', 'drop');
      for (const from of cut) await nft('add', 'rule', 'inet', 'cowbuf_fault', 'input', 'ip', 'saddr', src.ip, 'tcp', 'sport', String(from), 'drop');
    },
    acceptNew: async () => {
      await run('ip', ['netns', 'exec', dst.ns, 'nft', 'delete', 'table', 'inet', 'cowbuf_fault'], { okExitCodes: [1] });
    },
    destroy,
  };
}
