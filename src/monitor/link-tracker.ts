/**
 * U(t) per peer, measured on the daemon's own transport sockets: the bytes acknowledged on every
 * migration stream to that peer (TCP_INFO), summed into one monotonic counter (a closed stream's
 * final count is kept, so streams coming and going never look like a counter reset) and folded
 * into `src/buffer/link-model`. Each stream also gets its own estimate: two streams sharing a
 * link each see about half, the stair of U/N. An interface's tx counter, when given, is tracked
 * the same way as a cross-check. The tracker owns no timer: the control loop samples it.
 */
import type { Socket } from 'node:net';
import { UNKNOWN_LINK, updateLink, type LinkEstimate, type LinkModelOptions } from '../buffer/link-model.js';
import { readInterfaceCounters } from './interface-counters.js';
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
  interfaceEstimate: LinkEstimate;
}

export interface LinkTrackerOptions {
  readonly model?: LinkModelOptions;
  /** Reads a socket's counters; the real one is TCP_INFO (replaceable in unit tests). */
  readonly stats?: (socket: Socket) => Pick<TcpInfo, 'bytesAcked' | 'notSentBytes' | 'deliveryRateAppLimited'>;
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
  track(peer: string, socket: Socket, id = `${socket.localPort ?? '?'}`): void {
    this.peer(peer).streams.set(socket, { id, socket, bytesAcked: 0, estimate: UNKNOWN_LINK });
  }

  /** Watches `iface`'s tx counter as a cross-check of the acknowledged bytes. */
  watchInterface(peer: string, iface: string): void {
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
      if (peer.iface) {
        const counters = await readInterfaceCounters(peer.iface);
        peer.interfaceEstimate = updateLink(peer.interfaceEstimate, { t, bytes: counters.txBytes }, this.options.model);
      }
      readings.push({ peer: name, bytesAcked: total, estimate: peer.estimate, streams, ...(peer.iface ? { interfaceEstimate: peer.interfaceEstimate } : {}) });
    }
    return readings;
  }
}
