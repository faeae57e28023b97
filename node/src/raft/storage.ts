// The durable log as raft sees it.
//
// Raft only ever reads from Storage; the application writes to it while handling
// a Ready (append entries, set the hard state, apply a snapshot) and compacts it
// when it has a snapshot of its own state. Everything Storage returns must
// already be durable: raft counts entries read from Storage as persisted.

import { RaftError } from "./errors.js";
import {
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
  EMPTY_HARD_STATE,
  limitSize,
} from "./types.js";

export interface InitialState {
  readonly hardState: HardState;
  readonly confState: ConfState;
}

/**
 * The contract between raft and the application's durable log.
 *
 * Indexes: the log holds entries [firstIndex(), lastIndex()]. Entries up to
 * firstIndex()-1 have been compacted into the snapshot, whose index is
 * firstIndex()-1; term(firstIndex()-1) must still answer (the snapshot's term) so
 * that raft can check the entry preceding the first one it sends. An empty log
 * has lastIndex() == firstIndex()-1.
 */
export interface Storage {
  /** The saved HardState and the ConfState of the latest snapshot (or the bootstrap config). */
  initialState(): InitialState;
  /**
   * Entries in [lo, hi), at most `maxSize` bytes by entrySize() but always at least one
   * entry if any is in range. Throws ErrCompacted if lo < firstIndex(), ErrUnavailable
   * if hi > lastIndex()+1.
   */
  entries(lo: bigint, hi: bigint, maxSize: number): Entry[];
  /**
   * The term of entry i, for i in [firstIndex()-1, lastIndex()]. Throws ErrCompacted
   * below that range and ErrUnavailable above it.
   */
  term(i: bigint): bigint;
  lastIndex(): bigint;
  firstIndex(): bigint;
  /**
   * The most recent snapshot. May throw ErrSnapshotTemporarilyUnavailable, in which
   * case raft tries again later.
   */
  snapshot(): Snapshot;
}

/**
 * An in-memory Storage. In production it is the cache in front of a write-ahead
 * log; in tests and in the simulator it *is* the disk: whatever has been written
 * to it survives a simulated crash.
 *
 * `ents[0]` is a dummy entry carrying the snapshot's index and term, so that
 * term(firstIndex()-1) answers without a special case.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot;
  private ents: Entry[];

  constructor(snapshot?: Snapshot) {
    this.snap = snapshot ?? {
      metadata: { index: 0n, term: 0n, confState: { voters: [], learners: [] } },
      data: new Uint8Array(0),
    };
    this.ents = [dummy(this.snap.metadata.index, this.snap.metadata.term)];
  }

  initialState(): InitialState {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  hardStateNow(): HardState {
    return this.hardState;
  }

  private offset(): bigint {
    return this.ents[0]!.index;
  }

  entries(lo: bigint, hi: bigint, maxSize: number): Entry[] {
    const offset = this.offset();
    if (lo <= offset) throw new RaftError("ErrCompacted", `entries(${lo}): compacted up to ${offset}`);
    if (hi > this.lastIndex() + 1n) {
      throw new RaftError("ErrUnavailable", `entries(${lo}, ${hi}): last index is ${this.lastIndex()}`);
    }
    if (lo >= hi) return [];
    return limitSize(this.ents.slice(Number(lo - offset), Number(hi - offset)), maxSize);
  }

  term(i: bigint): bigint {
    const offset = this.offset();
    if (i < offset) throw new RaftError("ErrCompacted", `term(${i}): compacted up to ${offset}`);
    const e = this.ents[Number(i - offset)];
    if (e === undefined) throw new RaftError("ErrUnavailable", `term(${i}): last index is ${this.lastIndex()}`);
    return e.term;
  }

  lastIndex(): bigint {
    return this.offset() + BigInt(this.ents.length - 1);
  }

  firstIndex(): bigint {
    return this.offset() + 1n;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index < this.snap.metadata.index) {
      throw new RaftError(
        "ErrSnapOutOfDate",
        `snapshot ${snap.metadata.index} is older than ${this.snap.metadata.index}`,
      );
    }
    this.snap = snap;
    this.ents = [dummy(snap.metadata.index, snap.metadata.term)];
  }

  /**
   * Records a snapshot of the application's state at applied index i (i must be in the
   * log). The log is not compacted; call compact() for that.
   */
  createSnapshot(i: bigint, confState: ConfState, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) {
      throw new RaftError("ErrSnapOutOfDate", `snapshot at ${i} is not newer than ${this.snap.metadata.index}`);
    }
    if (i > this.lastIndex()) throw new RaftError("ErrInvalid", `snapshot index ${i} beyond last index ${this.lastIndex()}`);
    this.snap = { metadata: { index: i, term: this.term(i), confState }, data };
    return this.snap;
  }

  /**
   * Discards entries up to and including `compactIndex`. The application must not
   * compact past what it has applied and snapshotted: raft then has to send a
   * snapshot to any follower that needs the discarded entries.
   */
  compact(compactIndex: bigint): void {
    const offset = this.offset();
    if (compactIndex <= offset) throw new RaftError("ErrCompacted", `compact(${compactIndex}): already compacted to ${offset}`);
    if (compactIndex > this.lastIndex()) {
      throw new RaftError("ErrInvalid", `compact(${compactIndex}) beyond last index ${this.lastIndex()}`);
    }
    const i = Number(compactIndex - offset);
    const kept = this.ents.slice(i);
    kept[0] = dummy(kept[0]!.index, kept[0]!.term);
    this.ents = kept;
  }

  /**
   * Appends entries (consecutive indexes), replacing any conflicting suffix. Entries
   * already compacted are skipped. A gap after the last index is a caller bug.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + BigInt(entries.length) - 1n;
    if (last < first) return; // all compacted
    let ents = entries;
    if (first > ents[0]!.index) ents = ents.slice(Number(first - ents[0]!.index));
    const offset = ents[0]!.index - this.offset();
    if (offset > BigInt(this.ents.length)) {
      throw new RaftError("ErrInvalid", `missing log entry [last: ${this.lastIndex()}, append at: ${ents[0]!.index}]`);
    }
    // In place: the usual append (offset == length) copies nothing, where building a
    // new array copied the whole retained log on every append.
    this.ents.length = Number(offset);
    for (const e of ents) this.ents.push(e);
  }
}

function dummy(index: bigint, term: bigint): Entry {
  return { index, term, type: "normal", data: new Uint8Array(0) };
}
