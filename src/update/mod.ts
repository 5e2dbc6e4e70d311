/**
 * Self-update: signed release channel (TUF's root, targets and timestamp roles, Ed25519), A/B slots with an atomic
 * `current` symlink (a slot holds a compiled binary, or a bundle with its Deno runtime), a trial of
 * each new version (under systemd a restart into the new slot; without it a supervised child) and
 * automatic rollback.
 * See docs/releasing.md.
 *
 * @module
 */
export {
  type RollbackTarget,
  UpdateAgent,
  type UpdateAgentOptions,
  type UpdateStatus,
} from "./agent.ts";
export { canonicalJson } from "./canonical.ts";
export { type DeviceTarget, parseDeviceTargets } from "./device_targets.ts";
export { publishDevice, type PublishDeviceOptions } from "./device_release.ts";
export { type UpdateConfig, updateSchema } from "./config.ts";
export {
  type RefusalCode,
  ReleaseError,
  type RollbackRefusalCode,
  RollbackRefused,
  SlotError,
  UpdateRefused,
} from "./errors.ts";
export {
  fromBase64,
  generateKey,
  importSigningKey,
  importTrustedKeys,
  keyIdOf,
  type PrivateKeyFile,
  type PublicKeyText,
  readSigningKey,
  sign,
  type SigningKey,
  type TrustedKey,
} from "./keys.ts";
export {
  compareVersions,
  type Manifest,
  parseVersion,
  type SignedManifest,
  signManifest,
  TARGET_RE,
  verifyManifest,
} from "./manifest.ts";
export {
  checkArtifact,
  keygen,
  parseExpires,
  publish,
  readPublicKeys,
  verifyChannel,
  verifyChannelWithRoot,
} from "./release.ts";
export { type Slot, Slots, type UpdateState, writeFileAtomic } from "./slots.ts";
export { PINNED_DENO, type RuntimeEntry } from "./runtime.ts";
export { checkRuntime, runnerFor } from "./release_runtime.ts";
export { initWithRuntime } from "./runtime_stage.ts";
export { checkExec, execInto } from "./handover.ts";
export { runTrial, stopChild, trialUnhealthy } from "./trial.ts";
export {
  describeRoot,
  initRelease,
  readRoot,
  readRootFile,
  roleKeys as releaseRoleKeys,
  rotateRole,
  writeTimestamp,
} from "./release_roles.ts";
export {
  type Pin,
  pin as pinUpdates,
  readPin,
  rollbackByHand,
  unpin as unpinUpdates,
} from "./pin.ts";
export { type Available, type CheckResult, Updater } from "./updater.ts";
