/**
 * The host-inventory port: what this host can give a guest (memory, disk, hardware
 * virtualisation, bridges for its NICs) and its network interfaces' byte counters, routes and
 * speeds. The engine asks through this interface only; `systemInventory` (systeminformation) is
 * the adapter the daemon uses, and tests hand in fakes.
 */
import type { InterfaceCounters } from './interface-counters.js';

export type { InterfaceCounters };

export interface HostInventory {
  /** Bytes the kernel can give new processes without swapping (MemAvailable, not MemFree). */
  availableMemory(signal?: AbortSignal): Promise<number>;
  /** Bytes an ordinary writer can still put on the filesystem holding `path`. */
  availableDisk(path: string, signal?: AbortSignal): Promise<number>;
  /** Whether the CPU advertises hardware virtualisation (the `vmx` or `svm` flag). */
  cpuVirtualization(signal?: AbortSignal): Promise<boolean>;
  /** @throws when `iface` is not an interface name or has no counters */
  interfaceCounters(iface: string): Promise<InterfaceCounters>;
  /** Whether `name` is a Linux bridge here (a tap can be enslaved to it). */
  isBridge(name: string, signal?: AbortSignal): Promise<boolean>;
  /** The interface holding local address `address`, if this host has it. */
  interfaceOf(address: string): Promise<string | undefined>;
  /**
   * The interface this host sends to `address` (`host:port`) by, as the kernel routes it;
   * undefined when it has no route there (or the name does not resolve).
   */
  interfaceTo(address: string, signal?: AbortSignal): Promise<string | undefined>;
  /** The link speed `iface` has, bytes/s; undefined when it reports none of its own (interface-speed.ts). */
  interfaceSpeed(iface: string): Promise<number | undefined>;
}
