/**
 * cowbuf as a library: what an LXD-style daemon needs to embed the engine with VMs of its own.
 * It implements `VmProvider` (it starts and quits its QEMUs, cowbuf asks), hands each running VM
 * to `Engine.adoptVm` with a monitor from `attachRunning`, and drives migrations with
 * `Engine.migrate` and the engine's events. Everything else in the package is internal.
 */
export { Engine, type EngineConfig, type EngineDeps, type EngineEvents, type MigrationRecord } from './migration/engine.js';
export type { VmRemoval } from './migration/removal.js';
export type { Blackout, Progress } from './migration/source.js';
export { FINAL, type Phase } from './migration/record.js';
export type { IncomingLaunch, ManagedVm, Removal, VmProvider } from './vm/provider.js';
export { attachRunning, attachVm, type RunningVm } from './vm/launcher.js';
export { detectAccel } from './vm/accel.js';
export { qemuArgv, throttleTarget, type Accel, type DiskSpec, type VmSpec } from './vm/spec.js';
export { parseConfig, type Config } from './config/config.js';
export { engineConfigOf } from './config/engine-config.js';
export { openVolume, type VolumeConfig } from './storage/registry.js';
export type { BufferVolume } from './storage/volume.js';
export { ensureIdentity, type Identity } from './peer/identity.js';
export { TrustStore, type TrustedPeer } from './peer/trust.js';
export * from './errors.js';
