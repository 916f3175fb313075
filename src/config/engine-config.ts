/** The engine's settings from a cowbuf configuration: the standalone daemon's and an embedder's. */
import { join } from 'node:path';
import type { EngineConfig } from '../migration/engine.js';
import type { Config } from './config.js';

/** `bufferSize` is the volume's actual size (it may differ from the configured one after a resize). */
export function engineConfigOf(config: Config, bufferSize: number): EngineConfig {
  const m = config.migration;
  const listen = config.daemon.peerListen;
  const colon = listen.lastIndexOf(':');
  return {
    stateDir: config.stateDir,
    runDir: join(config.stateDir, 'run'),
    bufferSize,
    policy: m.policy,
    controlPeriodMs: m.controlPeriodMs,
    hysteresis: m.hysteresis,
    throttle: m.throttle,
    assumedLinkRate: m.assumedLinkRate,
    maxOutgoing: m.maxOutgoing,
    maxIncoming: m.maxIncoming,
    minBinBytes: m.minBin,
    mirrorReadySeconds: m.mirrorReadySeconds,
    linkLostSeconds: m.linkLostSeconds,
    ...(m.incomingDataset ? { incomingDataset: m.incomingDataset } : {}),
    convergence: m.convergence,
    peerListen: { host: listen.slice(0, colon) || '0.0.0.0', port: Number(listen.slice(colon + 1) || '8443') },
  };
}
