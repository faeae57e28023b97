// The raft log: the durable part (Storage) followed by the in-memory part
// (Unstable), with the commit and apply cursors.
//
//   snapshot | firstIndex ... applied ... committed ... stable last | unstable ... lastIndex
//
// Storage and Unstable overlap only in the window where a Ready carrying the
// unstable entries is being written; raft reads the unstable copy first.

import { RaftError, isRaftError } from "./errors.js";
import { Unstable } from "./log_unstable.js";
import type { Storage } from "./storage.js";
import { type Entry, type Snapshot, entrySize, limitSize } from "./types.js";

export class RaftLog {
  readonly storage: Storage;
  /** Entries and snapshot not yet persisted. */
  readonly unstable: Unstable;
  /**
   * The highest index known to be stored on a quorum of voters.
   * Invariant: applied <= committed <= lastIndex(); committed never decreases.
   */
  committed: bigint;
  /**
   * The highest index the application has applied (acknowledged through advance()).
   * Invariant: firstIndex()-1 <= applied <= committed (after a snapshot restore,
   * applied catches up to the snapshot index when the Ready carrying it is advanced).
   */
  applied: bigint;
  /** Bound on the bytes of committed entries handed out in one Ready. */
  readonly maxApplyingEntsSize: number;

  constructor(storage: Storage, maxApplyingEntsSize: number = Number.MAX_SAFE_INTEGER) {
    this.storage = storage;
    this.maxApplyingEntsSize = maxApplyingEntsSize;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1n);
    // Everything up to the snapshot is committed and applied by definition.
    this.committed = first - 1n;
    this.applied = first - 1n;
  }

  toString(): string {
    return `committed=${this.committed}, applied=${this.applied}, unstable.offset=${this.unstable.offset}, len(unstable.entries)=${this.unstable.entries.length}`;
  }

  firstIndex(): bigint {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): bigint {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): bigint {
    return this.term(this.lastIndex());
  }

  /**
   * The term of entry i. Answers for i in [firstIndex()-1, lastIndex()]; throws
   * ErrCompacted / ErrUnavailable outside (as Storage does).
   */
  term(i: bigint): bigint {
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    // Past the end of the log: say so without asking storage (which may lag the unstable part).
    if (i > this.lastIndex()) throw new RaftError("ErrUnavailable", `term(${i}) beyond last index ${this.lastIndex()}`);
    return this.storage.term(i);
  }

  /** The term of entry i, or 0 if it is compacted or beyond the log. */
  termOrZero(i: bigint): bigint {
    // Beyond the end is the common miss (every new entry a follower appends): answer
    // it without building the error term() would throw, stack trace and all.
    if (i > this.lastIndex()) return 0n;
    try {
      return this.term(i);
    } catch (err) {
      if (isRaftError(err, "ErrCompacted") || isRaftError(err, "ErrUnavailable")) return 0n;
      throw err;
    }
  }

  matchTerm(i: bigint, term: bigint): boolean {
    if (i > this.lastIndex()) return false; // as in termOrZero
    try {
      return this.term(i) === term;
    } catch (err) {
      if (isRaftError(err, "ErrCompacted") || isRaftError(err, "ErrUnavailable")) return false;
      throw err;
    }
  }

  /**
   * Handles a leader's append: entries following (prevIndex, prevTerm), and the
   * leader's commit index. Returns the index of the last new entry when the log
   * matched at prevIndex, or undefined when it did not (the leader must back off).
   */
  maybeAppend(prevIndex: bigint, prevTerm: bigint, committed: bigint, ents: readonly Entry[]): bigint | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + BigInt(ents.length);
    const ci = this.findConflict(ents);
    if (ci !== 0n) {
      if (ci <= this.committed) {
        // A committed entry can never be replaced; this would be a safety bug somewhere.
        throw new Error(`entry ${ci} conflicts with committed entry [committed(${this.committed})]`);
      }
      this.append(ents.slice(Number(ci - prevIndex - 1n)));
    }
    // Only what is known to match the leader can be marked committed.
    this.commitTo(committed < lastNew ? committed : lastNew);
    return lastNew;
  }

  /** Appends entries after the log's current content at ents[0].index-1. Returns the new last index. */
  append(ents: readonly Entry[]): bigint {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1n;
    if (after < this.committed) throw new Error(`after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * The index of the first entry in `ents` that is not already in the log with the
   * same term: 0 if all are present, or the first new index if they all match and
   * some extend the log.
   */
  findConflict(ents: readonly Entry[]): bigint {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0n;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, with its term (the term is
   * 0 if the search hit the start of the known log). Used on both sides of a rejected
   * append to skip over whole divergent terms instead of probing one entry at a time.
   */
  findConflictByTerm(index: bigint, term: bigint): { index: bigint; term: bigint } {
    for (; index > 0n; index--) {
      let t: bigint;
      try {
        t = this.term(index);
      } catch (err) {
        if (isRaftError(err, "ErrCompacted") || isRaftError(err, "ErrUnavailable")) return { index, term: 0n };
        throw err;
      }
      if (t <= term) return { index, term: t };
    }
    return { index: 0n, term: 0n };
  }

  /** Entries the application must persist (the next Ready's Entries). */
  unstableEntries(): Entry[] {
    return this.unstable.entries.slice();
  }

  /** Whether committed entries are waiting to be applied (and no snapshot is pending). */
  hasNextCommittedEnts(): boolean {
    if (this.unstable.snapshot !== undefined) return false;
    return this.committed > this.applied;
  }

  /**
   * Committed entries the application should apply next, up to maxApplyingEntsSize
   * bytes. Empty while an unstable snapshot is pending (it must be applied first).
   */
  nextCommittedEnts(): Entry[] {
    if (!this.hasNextCommittedEnts()) return [];
    const lo = this.applied + 1n;
    const hi = this.committed + 1n;
    return this.slice(lo, hi, this.maxApplyingEntsSize);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  commitTo(tocommit: bigint): void {
    if (this.committed < tocommit) {
      if (this.lastIndex() < tocommit) {
        throw new Error(`tocommit(${tocommit}) is out of range [lastIndex(${this.lastIndex()})]`);
      }
      this.committed = tocommit;
    }
  }

  appliedTo(i: bigint): void {
    if (i === 0n) return;
    if (this.committed < i || i < this.applied) {
      throw new Error(`applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`);
    }
    this.applied = i;
  }

  stableTo(index: bigint, term: bigint): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapTo(index: bigint): void {
    this.unstable.stableSnapTo(index);
  }

  /** Entries from i to the end, at most maxSize bytes (at least one entry if any). */
  entries(i: bigint, maxSize: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1n, maxSize);
  }

  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), Number.MAX_SAFE_INTEGER);
  }

  /**
   * Whether a candidate whose last entry is (lastIndex, term) is at least as
   * up to date as this log (Raft §5.4.1): later last term wins, then longer log.
   */
  isUpToDate(lastIndex: bigint, term: bigint): boolean {
    const myTerm = this.lastTerm();
    return term > myTerm || (term === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * A leader's commit rule: advance to `maxIndex` only if that entry is from the
   * leader's current `term` (Raft §5.4.2: never commit an older term's entry by
   * counting replicas; it becomes committed implicitly).
   */
  maybeCommit(maxIndex: bigint, term: bigint): boolean {
    if (maxIndex > this.committed && this.termOrZero(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Replaces the log with a snapshot from the leader; everything in it is committed. */
  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries [lo, hi), from storage and/or unstable, limited to maxSize bytes (at least one). */
  slice(lo: bigint, hi: bigint, maxSize: number): Entry[] {
    this.checkOutOfBounds(lo, hi);
    if (lo === hi) return [];
    let ents: Entry[] = [];
    const off = this.unstable.offset;
    if (lo < off) {
      const stored = this.storage.entries(lo, hi < off ? hi : off, maxSize);
      // Storage stopped early because of the size limit: do not add unstable entries.
      const storedHi = hi < off ? hi : off;
      if (BigInt(stored.length) < storedHi - lo) return stored;
      ents = stored;
    }
    if (hi > off) {
      const unstable = this.unstable.slice(lo > off ? lo : off, hi);
      ents = ents.length > 0 ? ents.concat(unstable) : unstable;
    }
    return limitSize(ents, maxSize);
  }

  private checkOutOfBounds(lo: bigint, hi: bigint): void {
    if (lo > hi) throw new Error(`invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw new RaftError("ErrCompacted", `slice(${lo}) below first index ${fi}`);
    const length = this.lastIndex() + 1n - fi;
    if (hi > fi + length) throw new Error(`slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
  }

  /** Total bytes of entries (for tests and status). */
  static size(ents: readonly Entry[]): number {
    let s = 0;
    for (const e of ents) s += entrySize(e);
    return s;
  }
}
