/**
 * U(t) per peer, measured on the daemon's own transport sockets: the bytes acknowledged on every
 * migration stream to that peer (TCP_INFO), summed into one monotonic counter (a closed stream's
 * final count is kept, so streams coming and going never look like a counter reset) and folded
 * into `src/buffer/link-model`. Each stream also gets its own estimate: two streams sharing a
 * link each see about half, the stair of U/N. The tx counter of the interface a peer's streams
 * leave by (found from their local address, or named) is tracked the same way as a cross-check:
 * it counts headers and any other traffic, so it bounds the acknowledged rate from above. The
 * tracker owns no timer: the control loop samples it.
 */
import type { Socket } from 'node:net';
import { UNKNOWN_LINK, updateLink, type LinkEstimate, type LinkModelOptions } from '../buffer/link-model.js';
import { CowbufError } from '../errors.js';
import type { HostInventory } from '../host/inventory.js';
import { tcpInfo, type TcpInfo } from './socket-stats.js';

export interface StreamReading {
  readonly id: string;
  readonly bytesAcked: number;
  readonly estimate: LinkEstimate;
}

export interface PeerReading {
  readonly peer: string;
  readonly bytesAcked: number;
  readonly estimate: LinkEstimate;
  readonly streams: readonly StreamReading[];
  /** Rate of the watched interface's tx counter (headers included), when one is watched. */
  readonly interfaceEstimate?: LinkEstimate;
}

interface Stream {
  readonly id: string;
  readonly socket: Socket;
  bytesAcked: number;
  estimate: LinkEstimate;
}

interface Peer {
  readonly streams: Map<Socket, Stream>;
  retired: number;
  estimate: LinkEstimate;
  iface?: string;
  /** Local address of a stream to the peer: where to look for the interface. */
  localAddress?: string;
  interfaceEstimate: LinkEstimate;
}

export interface LinkTrackerOptions {
  readonly model?: LinkModelOptions;
  /** Reads a socket's counters; the real one is TCP_INFO (replaceable in unit tests). */
  readonly stats?: (socket: Socket) => Pick<TcpInfo, 'bytesAcked' | 'notSentBytes' | 'deliveryRateAppLimited'>;
  /** Interface lookup and counters; without them there is no interface cross-check. */
  readonly interfaces?: Pick<HostInventory, 'interfaceCounters' | 'interfaceOf'>;
}

export class LinkTracker {
  private readonly peers = new Map<string, Peer>();
  private readonly stats: NonNullable<LinkTrackerOptions['stats']>;

  constructor(private readonly options: LinkTrackerOptions = {}) {
    this.stats = options.stats ?? tcpInfo;
  }

  private peer(name: string): Peer {
    let peer = this.peers.get(name);
    if (!peer) {
      peer = { streams: new Map(), retired: 0, estimate: UNKNOWN_LINK, interfaceEstimate: UNKNOWN_LINK };
      this.peers.set(name, peer);
    }
    return peer;
  }

  /** Starts counting a stream (base disk, NBD or RAM) to `peer`. */
  /** @param lifecycle what emits the stream's `end` and `finish` (its TLS socket), if not `socket` */
  track(peer: string, socket: Socket, id = `${socket.localPort ?? '?'}`, lifecycle?: NodeJS.EventEmitter): void {
    const tracked = this.peer(peer);
    const stream: Stream = { id, socket, bytesAcked: 0, estimate: UNKNOWN_LINK };
    tracked.streams.set(socket, stream);
    // A stream that ends between two ticks would keep only what the last tick saw, and TCP_INFO
    // cannot be read once it is destroyed: read it when the peer's FIN arrives (all our bytes
    // acknowledged) and when our own end is flushed.
    const last = () => void this.read(stream);
    const events = lifecycle ?? socket;
    if (typeof events.once === 'function') {
      events.once('end', last);
      events.once('finish', last);
    }
    if (socket.localAddress) tracked.localAddress ??= socket.localAddress;
  }

  /** Watches `iface`'s tx counter as a cross-check of the acknowledged bytes. @throws CowbufError without `interfaces` */
  watchInterface(peer: string, iface: string): void {
    if (!this.options.interfaces) throw new CowbufError(`cannot watch ${iface}: this link tracker was given no interface counters`);
    this.peer(peer).iface = iface;
  }

  /** Stops counting a stream; what it carried stays in the peer's total. */
  untrack(socket: Socket): void {
    for (const peer of this.peers.values()) {
      const stream = peer.streams.get(socket);
      if (!stream) continue;
      this.read(stream);
      peer.retired += stream.bytesAcked;
      peer.streams.delete(socket);
    }
  }

  /**
   * Breaks every stream to `peer`: a cut link errors no socket for many minutes, and QEMU's NBD
   * and RAM clients on the far side of our splices wait on them until one does. Closed, not
   * errored: these are the raw sockets under TLS, and an `error` nobody listens for on one of
   * them would take the daemon down.
   */
  sever(peer: string): void {
    for (const socket of this.peers.get(peer)?.streams.keys() ?? []) socket.destroy();
  }

  /** The last estimate for `peer`, without sampling (the control loop owns the sampling clock). */
  estimate(peer: string): LinkEstimate | undefined {
    return this.peers.get(peer)?.estimate;
  }

  private read(stream: Stream): { appLimited: boolean } {
    if (stream.socket.destroyed) return { appLimited: true };
    try {
      const info = this.stats(stream.socket);
      stream.bytesAcked = Number(info.bytesAcked);
      return { appLimited: info.notSentBytes === 0 && info.deliveryRateAppLimited };
    } catch {
      return { appLimited: true };
    }
  }

  /**
   * Folds the peer's interface counter in. The cross-check never costs the tick: an interface
   * that cannot be read (gone, renamed) keeps its last estimate.
   */
  private async sampleInterface(name: string, peer: Peer, t: number): Promise<void> {
    const interfaces = this.options.interfaces;
    if (!interfaces) return;
    try {
      if (!peer.iface && peer.localAddress) {
        const iface = await interfaces.interfaceOf(peer.localAddress);
        if (iface) this.watchInterface(name, iface);
      }
      if (!peer.iface) return;
      const counters = await interfaces.interfaceCounters(peer.iface);
      peer.interfaceEstimate = updateLink(peer.interfaceEstimate, { t, bytes: counters.txBytes }, this.options.model);
    } catch {
      // Kept as it was; the acknowledged bytes are the measurement, this only checks them.
    }
  }

  /** Samples every stream at time `t` (seconds, monotonic). */
  async sample(t: number): Promise<PeerReading[]> {
    const readings: PeerReading[] = [];
    for (const [name, peer] of this.peers) {
      let total = peer.retired;
      let appLimited = true;
      const streams: StreamReading[] = [];
      for (const [socket, stream] of peer.streams) {
        const read = this.read(stream);
        if (socket.destroyed) {
          peer.retired += stream.bytesAcked;
          peer.streams.delete(socket);
        }
        appLimited &&= read.appLimited;
        total += stream.bytesAcked;
        stream.estimate = updateLink(stream.estimate, { t, bytes: stream.bytesAcked, appLimited: read.appLimited }, this.options.model);
        streams.push({ id: stream.id, bytesAcked: stream.bytesAcked, estimate: stream.estimate });
      }
      // No stream at all is the most app-limited a link can be: it keeps its last known capacity.
      peer.estimate = updateLink(peer.estimate, { t, bytes: total, appLimited }, this.options.model);
      await this.sampleInterface(name, peer, t);
      readings.push({ peer: name, bytesAcked: total, estimate: peer.estimate, streams, ...(peer.iface ? { interfaceEstimate: peer.interfaceEstimate } : {}) });
    }
    return readings;
  }
}
