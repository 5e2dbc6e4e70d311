/** Why an update was refused; stable codes for state.json, /status and tests. */
export type RefusalCode =
  | "manifest-unreachable"
  | "manifest-malformed"
  | "metadata-too-large"
  | "manifest-mismatch"
  | "bad-signature"
  | "unknown-key"
  | "counter-replayed"
  | "expired"
  | "clock-behind"
  | "wrong-channel"
  | "incompatible"
  | "version-mismatch"
  | "no-target"
  | "older-version"
  | "too-large"
  | "disk-full"
  | "download-failed"
  | "length-mismatch"
  | "hash-mismatch"
  | "insecure-url";

/** An update the device will not install; `code` says which check refused it. */
export class UpdateRefused extends Error {
  override name = "UpdateRefused";
  /** Which check refused the update. */
  readonly code: RefusalCode;
  constructor(code: RefusalCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** Why a rollback on request cannot start; stable codes for the `rollback` command's errors. */
export type RollbackRefusalCode = "busy" | "no-previous" | "state-unreadable";

/** A rollback on request that cannot start; `code` says why. */
export class RollbackRefused extends Error {
  override name = "RollbackRefused";
  /** busy: a check, download or trial is under way; no-previous: the other slot holds no
   * version that runs; state-unreadable: state.json cannot be read. */
  readonly code: RollbackRefusalCode;
  constructor(code: RollbackRefusalCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** A release-tooling failure (keygen, publish, verify). */
export class ReleaseError extends Error {
  override name = "ReleaseError";
}

/** A failure of the A/B slot layout on disk (state file, symlink, staging). */
export class SlotError extends Error {
  override name = "SlotError";
}
