/**
 * Hosts on one machine: a source and one or more targets, network namespaces each joined to the
 * source by a veth pair of its own, the source side's egress shaped with `tc tbf` (the direction
 * migration data flows), so each target's link is shaped and cut apart from the others'.
 * Addresses are private to the bed's own namespaces, so beds never collide and nothing outside
 * them is ever a target. Namespaces are named after the creating PID so a later run can sweep
 * what a crashed one left.
 *
 * The guests' network is apart from those links, as in a data centre: a bridge in each host, each
 * target's joined to the source's by an unshaped veth pair of its own (one L2 segment, so a guest
 * keeps its address when it moves), and a client namespace on the source's bridge that pings the
 * guests. Shaping or cutting a migration link never touches it.
 */
import { ValidationError } from '../errors.js';
import { processAlive, run } from '../exec/run.js';

export interface Host {
  readonly ns: string;
  readonly ip: string;
  readonly veth: string;
  /** The guests' bridge. Both hosts name it alike, as a VM's NIC names its bridge on either host. */
  readonly bridge: string;
}

/** A machine on the guests' network, outside both hosts: what "the guest is reachable" means. */
export interface Client {
  readonly ns: string;
  /** Its address on the guests' subnet (no prefix). */
  readonly ip: string;
}

/** The migration link from the source to one target. */
export interface Link {
  readonly target: Host;
  /** Shapes src→target to `rate` (tc syntax, e.g. `100mbit`); replaces any earlier shaping. */
  shape(rate: string): Promise<void>;
  unshape(): Promise<void>;
  /** Takes the link down (netem is not available here: a cut is a link down). */
  cut(): Promise<void>;
  restore(): Promise<void>;
}

/** The source and its first target, `dst`, whose link the methods act on; `more` for the other targets. */
export interface TwoHosts extends Omit<Link, 'target'> {
  readonly src: Host;
  readonly dst: Host;
  readonly client: Client;
  /** The links to the targets after `dst`, each with a namespace and a subnet of its own. */
  readonly more: readonly Link[];
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
const BRIDGE = 'br0';
const GUEST_SUBNET = '10.214.0';
let counter = 0;

/** Guest `n`'s address on the guests' subnet: `ip` to ping, `cidr` for its eth0. @throws ValidationError */
export function guestAddress(n: number): { readonly ip: string; readonly cidr: string } {
  if (!Number.isInteger(n) || n < 1 || n > 99) throw new ValidationError('n', n, 'an integer in 1..99 (100 is the client)');
  return { ip: `${GUEST_SUBNET}.${n}`, cidr: `${GUEST_SUBNET}.${n}/24` };
}

/** Deletes namespaces left by test-bed processes that no longer exist (a pair's client too: it shares the pair's id). */
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

/** Creates the veth pair `a` (in namespace `nsA`) – `b` (in `nsB`). */
async function vethPair(a: string, nsA: string, b: string, nsB: string): Promise<void> {
  await run('ip', ['link', 'add', a, 'netns', nsA, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
}

/** The link to `target`, shaped and cut at its source end, veth `a`. */
function link(target: Host, src: Host, a: string): Link {
  return {
    target,
    shape: async (rate) => {
      await run('tc', ['-n', src.ns, 'qdisc', 'replace', 'dev', a, 'root', 'tbf', 'rate', rate, 'burst', '64kb', 'latency', '50ms']);
    },
    unshape: async () => {
      await run('tc', ['-n', src.ns, 'qdisc', 'del', 'dev', a, 'root'], { okExitCodes: [2] });
    },
    cut: async () => {
      await run('ip', ['-n', src.ns, 'link', 'set', a, 'down']);
    },
    restore: async () => {
      await run('ip', ['-n', src.ns, 'link', 'set', a, 'up']);
    },
  };
}

/** @param options.moreTargets targets beyond `dst` (at most 8) */
export async function createTwoHosts(options: { readonly moreTargets?: number } = {}): Promise<TwoHosts> {
  const more = options.moreTargets ?? 0;
  if (!Number.isInteger(more) || more < 0 || more > 8) throw new ValidationError('moreTargets', more, 'an integer in 0..8');
  // Interface names get at most 15 characters: the id is ≤ 12 (a base-36 pid of ≤ 5 digits, a
  // counter of ≤ 2), suffixes ≤ 2.
  const id = `${PREFIX}${process.pid.toString(36)}x${(counter++).toString(36)}`;
  // Target k's link is 10.213.k.0/30, its veths `a<k>`/`b<k>` (`a`/`b` for dst, as before).
  const suffix = (k: number) => (k === 0 ? '' : String(k));
  const src: Host = { ns: `${id}s`, ip: '10.213.0.1', veth: `${id}a`, bridge: BRIDGE };
  const targets: Host[] = Array.from({ length: more + 1 }, (_, k) => ({ ns: `${id}d${suffix(k)}`, ip: `10.213.${k}.2`, veth: `${id}b${suffix(k)}`, bridge: BRIDGE }));
  const [dst] = targets as [Host];
  const client: Client = { ns: `${id}c`, ip: `${GUEST_SUBNET}.100` };
  const created: string[] = [];
  const destroy = async () => {
    for (const ns of created.splice(0).reverse()) await run('ip', ['netns', 'del', ns], { okExitCodes: [1] });
  };
  try {
    for (const ns of [src.ns, ...targets.map((target) => target.ns), client.ns]) {
      await run('ip', ['netns', 'add', ns]);
      created.push(ns);
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    for (const host of [src, ...targets]) {
      await run('ip', ['-n', host.ns, 'link', 'add', host.bridge, 'type', 'bridge']);
      await run('ip', ['-n', host.ns, 'link', 'set', host.bridge, 'up']);
    }
    for (const [k, target] of targets.entries()) {
      const a = `${id}a${suffix(k)}`;
      await vethPair(a, src.ns, target.veth, target.ns);
      await run('ip', ['-n', src.ns, 'addr', 'add', `10.213.${k}.1/30`, 'dev', a]);
      await run('ip', ['-n', src.ns, 'link', 'set', a, 'up']);
      await run('ip', ['-n', target.ns, 'addr', 'add', `${target.ip}/30`, 'dev', target.veth]);
      await run('ip', ['-n', target.ns, 'link', 'set', target.veth, 'up']);
      // The source's daemon listens on its first link's address: the others reach it over their own.
      if (k > 0) await run('ip', ['-n', target.ns, 'route', 'add', `${src.ip}/32`, 'via', `10.213.${k}.1`]);
      const [ga, gb] = k === 0 ? [`${id}ga`, `${id}gb`] : [`${id}g${k}`, `${id}h${k}`];
      await vethPair(ga, src.ns, gb, target.ns);
      await run('ip', ['-n', src.ns, 'link', 'set', ga, 'master', BRIDGE, 'up']);
      await run('ip', ['-n', target.ns, 'link', 'set', gb, 'master', BRIDGE, 'up']);
    }
    await vethPair(`${id}ca`, src.ns, `${id}cb`, client.ns);
    await run('ip', ['-n', src.ns, 'link', 'set', `${id}ca`, 'master', BRIDGE, 'up']);
    await run('ip', ['-n', client.ns, 'addr', 'add', `${client.ip}/24`, 'dev', `${id}cb`]);
    await run('ip', ['-n', client.ns, 'link', 'set', `${id}cb`, 'up']);
  } catch (error) {
    await destroy();
    throw error;
  }
  const links = targets.map((target, k) => link(target, src, `${id}a${suffix(k)}`));
  const [first] = links as [Link];
  return {
    src,
    dst,
    client,
    more: links.slice(1),
    shape: first.shape,
    unshape: first.unshape,
    cut: first.cut,
    restore: first.restore,
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
