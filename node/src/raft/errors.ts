// Typed errors of the consensus core. Each has a stable `code`; callers branch on
// the code, never on the message text.

export type RaftErrorCode =
  /** The requested index is below the storage's first index (compacted away). */
  | "ErrCompacted"
  /** The snapshot offered to storage is older than the one it holds. */
  | "ErrSnapOutOfDate"
  /** The requested index is beyond the storage's last index. */
  | "ErrUnavailable"
  /** Storage cannot produce a snapshot right now; raft retries later. */
  | "ErrSnapshotTemporarilyUnavailable"
  /** A proposal was not appended: no leader known, leadership transfer in progress, removed leader, or size limit. */
  | "ErrProposalDropped"
  /** A local-only message type (MsgHup, MsgBeat...) arrived through step() from the network. */
  | "ErrStepLocalMsg"
  /** A response came from a node this leader does not track. */
  | "ErrStepPeerNotFound"
  /** ready() was called before the previous Ready was advanced. */
  | "ErrReadyOutstanding"
  /** The configuration or call violates raft's contract (a bug in the caller). */
  | "ErrInvalid";

export class RaftError extends Error {
  override readonly name = "RaftError";
  constructor(
    readonly code: RaftErrorCode,
    message?: string,
  ) {
    super(message ?? code);
  }
}

export function isRaftError(err: unknown, code?: RaftErrorCode): err is RaftError {
  return err instanceof RaftError && (code === undefined || err.code === code);
}
