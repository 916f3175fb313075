/**
 * Tap devices for a VM's NICs, on the host's bridge. QEMU opens a tap by name
 * (`-netdev tap,ifname=<tap>,script=no,downscript=no`) and runs no script, so the daemon owns the
 * device: it exists on the bridge before QEMU starts (on a target, before `migrate-incoming`) and
 * is deleted once QEMU has quit. Both steps are idempotent, so a retry, a rollback or a daemon
 * restarted halfway finds the state it wanted instead of an error.
 */
import { CommandError, CowbufError, ValidationError } from '../errors.js';
import { checkName, run } from '../exec/run.js';

export interface TapOptions {
  /** The network namespace the bridge lives in (the test bed's hosts); the caller's own without. */
  readonly netns?: string;
  readonly signal?: AbortSignal;
}

/** A tap that cannot be set up or removed as asked: its bridge is missing, or the name is taken. */
export class TapError extends CowbufError {
  override readonly name: string = 'TapError';
  constructor(
    readonly tap: string,
    readonly bridge: string | undefined,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

interface Link {
  /** `tun` for a tap, `bridge`, `veth`...; undefined for a plain device. */
  readonly kind: string | undefined;
  /** `tap` or `tun`, for a tun device. */
  readonly tunType: string | undefined;
  readonly master: string | undefined;
}

interface IpLink {
  readonly master?: string;
  readonly linkinfo?: { readonly info_kind?: string; readonly info_data?: { readonly type?: string } };
}

/** The kernel limits interface names to 15 bytes (IFNAMSIZ less its NUL). */
function checkInterface(field: string, name: string): string {
  checkName(field, name);
  if (name.length > 15) throw new ValidationError(field, name, 'an interface name of at most 15 characters');
  return name;
}

function where(options: TapOptions): string {
  return options.netns === undefined ? '' : ` in network namespace ${options.netns}`;
}

/** @throws CommandError when `ip` fails for another reason than the link being absent */
async function link(name: string, options: TapOptions): Promise<Link | undefined> {
  try {
    const { stdout } = await run('ip', ['-j', '-d', 'link', 'show', 'dev', name], options);
    const [info] = JSON.parse(stdout) as IpLink[];
    return { kind: info?.linkinfo?.info_kind, tunType: info?.linkinfo?.info_data?.type, master: info?.master };
  } catch (error) {
    if (error instanceof CommandError && /^Device ".*" does not exist/m.test(error.stderr)) return undefined;
    throw error;
  }
}

/** Whether a bridge of that name exists (a device of that name that is not a bridge: false). */
export async function bridgeExists(name: string, options: TapOptions = {}): Promise<boolean> {
  return (await link(checkInterface('bridge', name), options))?.kind === 'bridge';
}

/**
 * Creates tap `name` on `bridge` and brings it up; a tap already on that bridge is only brought up.
 * @throws ValidationError for a bad name; TapError when the bridge is missing or not a bridge, or
 *   `name` is taken by another device or a tap on another bridge; CommandError when `ip` fails
 */
export async function createTap(name: string, bridge: string, options: TapOptions = {}): Promise<void> {
  checkInterface('tap', name);
  checkInterface('bridge', bridge);
  const master = await link(bridge, options);
  if (master?.kind !== 'bridge') {
    const what = master === undefined ? 'does not exist' : `is not a bridge (a ${master.kind ?? 'plain'} device)`;
    throw new TapError(name, bridge, `cannot attach tap ${name}: bridge ${bridge} ${what}${where(options)}`);
  }
  const existing = await link(name, options);
  if (existing !== undefined && (existing.kind !== 'tun' || existing.tunType !== 'tap')) {
    throw new TapError(name, bridge, `cannot create tap ${name}${where(options)}: a ${existing.kind ?? 'plain'} device has that name`);
  }
  if (existing?.master !== undefined && existing.master !== bridge) {
    throw new TapError(name, bridge, `cannot attach tap ${name} to bridge ${bridge}${where(options)}: it is on bridge ${existing.master}`);
  }
  if (existing === undefined) await run('ip', ['tuntap', 'add', 'dev', name, 'mode', 'tap'], options);
  try {
    await run('ip', ['link', 'set', 'dev', name, 'master', bridge, 'up'], options);
  } catch (error) {
    // Only a tap made here is undone: one that was there already is someone's, on this bridge.
    if (existing === undefined) await run('ip', ['link', 'del', 'dev', name], { ...options, okExitCodes: [1] });
    throw error;
  }
}

/**
 * Deletes tap `name`; nothing to do when it is absent.
 * @throws ValidationError for a bad name; TapError when `name` is a device other than a tap (never
 *   deleted: a bridge or an uplink named by mistake); CommandError when `ip` fails
 */
export async function deleteTap(name: string, options: TapOptions = {}): Promise<void> {
  const existing = await link(checkInterface('tap', name), options);
  if (existing === undefined) return;
  if (existing.kind !== 'tun' || existing.tunType !== 'tap') {
    throw new TapError(name, undefined, `refusing to delete ${name}${where(options)}: it is a ${existing.kind ?? 'plain'} device, not a tap`);
  }
  await run('ip', ['link', 'del', 'dev', name], options);
}
