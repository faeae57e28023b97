// The log as a sequence of WAL records describes it. The same rules serve two
// masters: replay at open (where a violation means the disk is corrupt) and the
// writer (which checks a save against them before writing, so that it never
// writes a record that replay would refuse).

import { EMPTY_HARD_STATE, isEmptyHardState, type Entry, type HardState, type SnapshotMetadata } from "../raft/types.js";
import { entryPayloadSize, MAX_PAYLOAD, snapshotMetadataEqual, type MetadataRecord } from "./record.js";

export const ZERO_SNAPSHOT: SnapshotMetadata = { index: 0n, term: 0n, confState: { voters: [], learners: [] } };

/**
 * Entries (lo, lo + terms.length], the latest snapshot marker and the latest hard
 * state. Normally lo == snapshot.index: the log continues right after the
 * snapshot. lo > snapshot.index happens only during a replay that starts at a
 * segment whose predecessors were released: entries (snapshot.index, lo] are
 * then unknown until a later marker covers them; if none does, the log is
 * missing data and open() refuses it.
 */
export class LogState {
  snapshot: SnapshotMetadata = ZERO_SNAPSHOT;
  hardState: HardState = EMPTY_HARD_STATE;
  lo = 0n;
  /** Term of entry `lo`, when known. */
  loTerm: bigint | undefined = 0n;
  terms: bigint[] = [];
  /** The entries themselves, kept only while replaying (parallel to `terms`). */
  entries: Entry[] | undefined;

  constructor(recordEntries: boolean) {
    if (recordEntries) this.entries = [];
  }

  get lastIndex(): bigint {
    return this.lo + BigInt(this.terms.length);
  }

  lastTerm(): bigint | undefined {
    return this.terms.length > 0 ? this.terms[this.terms.length - 1] : this.loTerm;
  }

  termAt(i: bigint): bigint | undefined {
    if (i === this.lo) return this.loTerm;
    if (i < this.lo || i > this.lastIndex) return undefined;
    return this.terms[Number(i - this.lo - 1n)];
  }

  /** Replay of the first segment read: its header restates the state at the segment's start. */
  startAt(meta: MetadataRecord, marker: SnapshotMetadata | undefined, hs: HardState | undefined): string | undefined {
    const snap = marker ?? ZERO_SNAPSHOT;
    if (snap.index > meta.tailIndex) return `header snapshot at ${snap.index} is past the header's last index ${meta.tailIndex}`;
    if (snap.index === meta.tailIndex && snap.term !== meta.tailTerm) {
      return `header snapshot term ${snap.term} differs from the header's last term ${meta.tailTerm} at index ${snap.index}`;
    }
    this.snapshot = snap;
    this.hardState = hs ?? EMPTY_HARD_STATE;
    this.lo = meta.tailIndex;
    this.loTerm = meta.tailTerm;
    this.terms = [];
    if (this.entries !== undefined) this.entries = [];
    return undefined;
  }

  /** Replay of a later segment's header: it must restate exactly the state reached so far. */
  checkHeader(meta: MetadataRecord, marker: SnapshotMetadata | undefined, hs: HardState | undefined): string | undefined {
    if (meta.tailIndex !== this.lastIndex) return `header says the log ends at ${meta.tailIndex}, the log read so far ends at ${this.lastIndex}`;
    const t = this.lastTerm();
    if (t !== undefined && t !== meta.tailTerm) return `header says the last term is ${meta.tailTerm}, the log read so far says ${t}`;
    if (this.snapshot.index > 0n) {
      if (marker === undefined || !snapshotMetadataEqual(marker, this.snapshot)) return "header does not restate the latest snapshot marker";
    } else if (marker !== undefined) {
      return "header restates a snapshot marker that was never written";
    }
    const cur = isEmptyHardState(this.hardState) ? undefined : this.hardState;
    if (cur === undefined ? hs !== undefined : hs === undefined || hs.term !== cur.term || hs.vote !== cur.vote || hs.commit !== cur.commit) {
      return "header does not restate the latest hard state";
    }
    return undefined;
  }

  /** Appends one entry, replacing any entries at or after its index. Returns a reason if the log does not allow it. */
  appendEntry(index: bigint, term: bigint, entry: Entry | undefined): string | undefined {
    if (index <= this.snapshot.index) return `entry ${index} is at or below the snapshot index ${this.snapshot.index}`;
    const last = this.lastIndex;
    if (index > last + 1n) return `entry ${index} leaves a gap after the last index ${last}`;
    if (index <= this.lo) {
      // Overwrites inside the unknown region of a replay that started after released segments.
      this.lo = index - 1n;
      this.loTerm = this.lo === this.snapshot.index ? this.snapshot.term : undefined;
      this.terms = [term];
      if (this.entries !== undefined) this.entries = entry === undefined ? [] : [entry];
      return undefined;
    }
    const keep = Number(index - this.lo - 1n);
    this.terms.length = keep;
    this.terms.push(term);
    if (this.entries !== undefined && entry !== undefined) {
      this.entries.length = keep;
      this.entries.push(entry);
    }
    return undefined;
  }

  /**
   * A snapshot marker. `replacesLog`: the snapshot replaced the whole log (raft
   * restored it from the leader), so every entry is dropped. Otherwise it compacts
   * the log: entries up to its index are dropped, later ones stay, and the entry at
   * its index must carry its term.
   */
  applyMarker(m: SnapshotMetadata, replacesLog: boolean): string | undefined {
    if (m.index < this.snapshot.index) return `snapshot marker at ${m.index} is older than the current one at ${this.snapshot.index}`;
    if (m.index === this.snapshot.index && m.term !== this.snapshot.term) {
      return `snapshot marker at ${m.index} has term ${m.term}, the current one at that index has term ${this.snapshot.term}`;
    }
    if (replacesLog) {
      this.lo = m.index;
      this.loTerm = m.term;
      this.terms = [];
      if (this.entries !== undefined) this.entries = [];
    } else if (m.index <= this.lo) {
      if (m.index === this.lo) {
        if (this.loTerm !== undefined && this.loTerm !== m.term) return `snapshot marker term ${m.term} differs from the log's term ${this.loTerm} at ${m.index}`;
        this.loTerm = m.term;
      }
    } else {
      const t = this.termAt(m.index);
      if (t === undefined) return `compacting snapshot marker at ${m.index} is past the last index ${this.lastIndex}`;
      if (t !== m.term) return `snapshot marker term ${m.term} differs from the log's term ${t} at ${m.index}`;
      const k = Number(m.index - this.lo);
      this.terms.splice(0, k);
      this.entries?.splice(0, k);
      this.lo = m.index;
      this.loTerm = m.term;
    }
    this.snapshot = m;
    return undefined;
  }

  /** Whether writing marker `m` now means "the log was replaced" (see applyMarker). */
  markerReplacesLog(m: SnapshotMetadata): boolean {
    return this.termAt(m.index) !== m.term;
  }

  /**
   * Checks a save against the log without changing anything; throws RangeError
   * on misuse. Returns whether the marker (if any) replaces the log.
   */
  validateSave(hs: HardState, entries: readonly Entry[], marker: SnapshotMetadata | undefined): { replacesLog: boolean } {
    let snapIndex = this.snapshot.index;
    let last = this.lastIndex;
    let termAt = (i: bigint): bigint | undefined => this.termAt(i);
    let replacesLog = false;
    if (marker !== undefined) {
      if (marker.index === 0n) throw new RangeError("wal: a snapshot marker needs an index above 0");
      if (marker.index < snapIndex) throw new RangeError(`wal: snapshot marker at ${marker.index} is older than the WAL's snapshot at ${snapIndex}`);
      if (marker.index === snapIndex && marker.term !== this.snapshot.term) {
        throw new RangeError(`wal: snapshot marker ${marker.term}/${marker.index} conflicts with the WAL's snapshot ${this.snapshot.term}/${snapIndex}`);
      }
      replacesLog = this.markerReplacesLog(marker);
      if (replacesLog) {
        last = marker.index;
        const mi = marker.index;
        const mt = marker.term;
        termAt = (i) => (i === mi ? mt : undefined);
      }
      snapIndex = marker.index;
    }
    let prevTerm: bigint | undefined;
    let prevIndex = 0n;
    entries.forEach((e, k) => {
      if (k === 0) {
        if (e.index <= snapIndex) throw new RangeError(`wal: entry ${e.index} is at or below the snapshot index ${snapIndex}`);
        if (e.index > last + 1n) throw new RangeError(`wal: entry ${e.index} leaves a gap after the last index ${last}`);
        prevTerm = termAt(e.index - 1n);
      } else if (e.index !== prevIndex + 1n) {
        throw new RangeError(`wal: entries are not contiguous (${prevIndex} then ${e.index})`);
      }
      if (prevTerm !== undefined && e.term < prevTerm) throw new RangeError(`wal: entry ${e.index} has term ${e.term}, below its predecessor's ${prevTerm}`);
      if (entryPayloadSize(e) > MAX_PAYLOAD) throw new RangeError(`wal: entry ${e.index} of ${e.data.length} bytes is too large`);
      prevTerm = e.term;
      prevIndex = e.index;
    });
    if (!isEmptyHardState(hs)) {
      if (hs.term < this.hardState.term) throw new RangeError(`wal: hard state term ${hs.term} is below the saved term ${this.hardState.term}`);
      if (hs.commit < this.hardState.commit) throw new RangeError(`wal: hard state commit ${hs.commit} is below the saved commit ${this.hardState.commit}`);
    }
    return { replacesLog };
  }
}
