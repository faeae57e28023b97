// The part of the log that raft holds in memory until the application has
// persisted it: new entries (appended by a leader or received from one) and a
// snapshot received from the leader.

import type { Entry, Snapshot } from "./types.js";

export class Unstable {
  /** A snapshot received from the leader and not yet persisted. */
  snapshot: Snapshot | undefined;
  /** Entries not yet persisted; entries[i] has index offset + i. */
  entries: Entry[] = [];
  /**
   * Index of entries[0]. Invariant: if snapshot is set, offset == snapshot index + 1
   * (the unstable entries, if any, follow the snapshot directly).
   */
  offset: bigint;

  constructor(offset: bigint) {
    this.offset = offset;
  }

  /** The first index, if there is an unstable snapshot. */
  maybeFirstIndex(): bigint | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1n : undefined;
  }

  /** The last index, if there are unstable entries or an unstable snapshot. */
  maybeLastIndex(): bigint | undefined {
    if (this.entries.length > 0) return this.offset + BigInt(this.entries.length) - 1n;
    if (this.snapshot) return this.snapshot.metadata.index;
    return undefined;
  }

  /** The term of entry i if this unstable log knows it. */
  maybeTerm(i: bigint): bigint | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[Number(i - this.offset)]!.term;
  }

  /**
   * The entries up to (index, term) are now durable: drop them. Ignored if the
   * entry at `index` is no longer the one with `term` (it was overwritten by a
   * newer leader while the write was in flight; the newer entry is still unstable).
   */
  stableTo(index: bigint, term: bigint): void {
    const t = this.maybeTerm(index);
    if (t === undefined || t !== term) return;
    if (index < this.offset) return; // that was the snapshot's index; entries are not involved
    const n = Number(index + 1n - this.offset);
    this.entries = this.entries.slice(n);
    this.offset = index + 1n;
  }

  /** The unstable snapshot at `index` is now durable. */
  stableSnapTo(index: bigint): void {
    if (this.snapshot && this.snapshot.metadata.index === index) this.snapshot = undefined;
  }

  /** Replaces everything with a snapshot from the leader. */
  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1n;
    this.entries = [];
    this.snapshot = s;
  }

  /**
   * Appends entries that directly follow entry `ents[0].index - 1`, which must be
   * known to the caller's log. Entries at and after ents[0].index are replaced.
   */
  truncateAndAppend(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const from = ents[0]!.index;
    const end = this.offset + BigInt(this.entries.length);
    if (from === end) {
      this.entries = this.entries.concat(ents);
    } else if (from <= this.offset) {
      // Replaces all unstable entries (and the caller has made sure the stable
      // entries before `from` match).
      this.offset = from;
      this.entries = ents.slice();
    } else {
      // from is inside (offset, end): keep the prefix before it.
      this.entries = this.entries.slice(0, Number(from - this.offset)).concat(ents);
    }
  }

  /** Entries [lo, hi) which must all be in this unstable log. */
  slice(lo: bigint, hi: bigint): Entry[] {
    const last = this.offset + BigInt(this.entries.length);
    if (lo > hi || lo < this.offset || hi > last) {
      throw new Error(`unstable.slice[${lo},${hi}) out of bounds [${this.offset},${last})`);
    }
    return this.entries.slice(Number(lo - this.offset), Number(hi - this.offset));
  }
}
