// Typed errors of the durable log. Recovery code must be able to tell "the disk
// holds something we did not write" (refuse to start, loudly) from "this is a
// normal state after a crash" (repaired silently, reported in the result).

export class WalError extends Error {
  override name = "WalError";
}

/**
 * The log holds bytes that cannot be the result of our writes plus a crash: a bad
 * record followed by valid later data, damage in a sealed segment, a missing
 * segment, records out of order. Never skipped: the member must not start on it.
 */
export class WalCorruptError extends WalError {
  override name = "WalCorruptError";
  constructor(
    /** Path of the segment (or snapshot) file. */
    readonly file: string,
    /** Byte offset in `file` of the first bad record. */
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`wal: corrupt log in ${file} at offset ${offset}: ${reason}`);
  }
}

/** The WAL belongs to another member or cluster than the caller expects. */
export class WalMetadataMismatchError extends WalError {
  override name = "WalMetadataMismatchError";
  constructor(
    readonly expected: { readonly memberId: bigint; readonly clusterId: bigint },
    readonly found: { readonly memberId: bigint; readonly clusterId: bigint },
  ) {
    super(
      `wal: metadata mismatch: expected member ${expected.memberId.toString(16)} of cluster ${expected.clusterId.toString(16)}, ` +
        `found member ${found.memberId.toString(16)} of cluster ${found.clusterId.toString(16)}`,
    );
  }
}

/** create() on a directory that already holds a WAL. */
export class WalExistsError extends WalError {
  override name = "WalExistsError";
  constructor(readonly dir: string) {
    super(`wal: a write-ahead log already exists in ${dir}`);
  }
}

/** open() on a directory without a WAL. */
export class WalNotFoundError extends WalError {
  override name = "WalNotFoundError";
  constructor(readonly dir: string) {
    super(`wal: no write-ahead log in ${dir}`);
  }
}

/**
 * A previous write, fsync, rename or unlink failed. What reached the disk is unknown
 * (and after a failed fsync the kernel may have dropped the dirty pages), so the
 * instance refuses all further work: close it, restart, and let open() recover.
 */
export class WalFailedError extends WalError {
  override name = "WalFailedError";
  constructor(cause: unknown) {
    super(`wal: unusable after an earlier I/O failure: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** A call on a WAL after close(). */
export class WalClosedError extends WalError {
  override name = "WalClosedError";
  constructor() {
    super("wal: closed");
  }
}

/** A snapshot file failed its checksum or structure checks. */
export class SnapCorruptError extends WalError {
  override name = "SnapCorruptError";
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`snap: corrupt snapshot file ${file}: ${reason}`);
  }
}
