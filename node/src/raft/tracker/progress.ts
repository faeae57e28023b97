// What a leader knows about one follower's log, and the flow control that
// decides when to send it entries.
//
//   probe:     the leader does not know where the follower's log ends. It sends one
//              MsgApp and waits (paused) for the answer or the next heartbeat response.
//   replicate: the follower is known to accept appends. The leader streams entries
//              optimistically (Next runs ahead of Match) up to the inflight limits.
//   snapshot:  the follower needs entries the leader has compacted; a snapshot is on
//              its way and nothing else is sent until the follower reports back.

import { Inflights } from "./inflights.js";

export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  /**
   * The highest index known to match the leader's log.
   * Invariant: 0 <= match < next.
   */
  match = 0n;
  /** The next index to send. Entries in (match, next) are in flight. */
  next: bigint;
  /**
   * The highest commit index sent to the follower (capped at next-1).
   * Invariant: pendingCommit < next.
   */
  pendingCommit = 0n;
  state: ProgressState = "probe";
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0n;
  /** Heard from since the last check-quorum round (always true for the leader itself). */
  recentActive = false;
  /**
   * Set after sending a MsgApp in probe state, or when all entries are in flight in
   * replicate state; cleared by a heartbeat response so a lost message cannot stall
   * replication forever.
   */
  msgAppProbesPaused = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(next: bigint, inflights: Inflights, isLearner: boolean) {
    this.next = next;
    this.inflights = inflights;
    this.isLearner = isLearner;
  }

  resetState(state: ProgressState): void {
    this.msgAppProbesPaused = false;
    this.pendingSnapshot = 0n;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === "snapshot") {
      // The snapshot reached the follower: probe from after it.
      const pending = this.pendingSnapshot;
      this.resetState("probe");
      this.next = max(this.match + 1n, pending + 1n);
    } else {
      this.resetState("probe");
      this.next = this.match + 1n;
      this.pendingCommit = min(this.pendingCommit, this.match);
    }
  }

  becomeReplicate(): void {
    this.resetState("replicate");
    this.next = this.match + 1n;
    this.pendingCommit = min(this.pendingCommit, this.match);
  }

  becomeSnapshot(snapshotIndex: bigint): void {
    this.resetState("snapshot");
    this.pendingSnapshot = snapshotIndex;
  }

  /** A MsgApp carrying `entries` entries (`bytes` payload bytes) starting at next was sent. */
  sentEntries(entries: number, bytes: number): void {
    if (this.state === "replicate" && entries > 0) {
      this.next += BigInt(entries);
      this.inflights.add(this.next - 1n, bytes);
    }
    this.msgAppProbesPaused = true;
  }

  /** Whether sending commit index `index` could advance the follower's commit. */
  canBumpCommit(index: bigint): boolean {
    return this.pendingCommit < min(index, this.next - 1n);
  }

  sentCommit(commit: bigint): void {
    this.pendingCommit = min(max(this.pendingCommit, commit), this.next - 1n);
  }

  /** An acknowledgement up to n arrived; false if it is stale. */
  maybeUpdate(n: bigint): boolean {
    if (n <= this.match) return false;
    this.match = n;
    this.next = max(this.next, n + 1n);
    return true;
  }

  /**
   * A rejection of the MsgApp at `rejected` arrived, hinting that the logs may match
   * at `matchHint`. Returns false for a stale rejection (reordered or duplicated).
   */
  maybeDecrTo(rejected: bigint, matchHint: bigint): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1n;
      this.pendingCommit = min(this.pendingCommit, this.match);
      return true;
    }
    // In probe state only the latest probe (at next-1) is live.
    if (this.next - 1n !== rejected) return false;
    this.next = max(min(rejected, matchHint + 1n), this.match + 1n);
    this.pendingCommit = min(this.pendingCommit, this.next - 1n);
    this.msgAppProbesPaused = false;
    return true;
  }

  canSendEntries(lastIndex: bigint): boolean {
    return this.next <= lastIndex && (this.state === "probe" || !this.inflights.full());
  }

  /**
   * Whether appends to this follower are throttled: a probe is outstanding, the
   * replicate window is full (and a probe is outstanding), or a snapshot is in flight.
   */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.msgAppProbesPaused;
      case "replicate":
        return this.msgAppProbesPaused && this.inflights.full();
      case "snapshot":
        return true;
    }
  }

  toString(): string {
    let s = `State${this.state[0]!.toUpperCase()}${this.state.slice(1)} match=${this.match} next=${this.next}`;
    if (this.isLearner) s += " learner";
    if (this.isPaused()) s += " paused";
    if (this.pendingSnapshot > 0n) s += ` pendingSnap=${this.pendingSnapshot}`;
    if (!this.recentActive) s += " inactive";
    const n = this.inflights.count();
    if (n > 0) {
      s += ` inflight=${n}`;
      if (this.inflights.full()) s += "[full]";
    }
    return s;
  }
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
