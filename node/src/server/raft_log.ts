// RaftLogStore: the durable raft log as the driver uses it — the seam where
// the WAL (node/src/wal: Wal) plugs in. save(hardState, entries) is durable when
// it resolves; saveSnapshot records a snapshot marker (compacting the log, or
// replacing it for a snapshot from the leader); releaseTo lets old records go
// once the backend is durable past them. Tests substitute an in-memory one.

import { MemoryStorage, type Entry, type HardState, type SnapshotMetadata } from "../raft/index.js";

/** The contract the raft driver needs from durable log storage. */
export interface RaftLogStore {
  /**
   * Appends entries (replacing any suffix from entries[0].index on) and records
   * the hard state. Durable when the returned promise resolves.
   */
  save(hs: HardState | undefined, entries: readonly Entry[]): Promise<void>;
  /** Records that a snapshot at meta.index exists (entries up to it may be released). Durable on resolve. */
  saveSnapshot(meta: SnapshotMetadata): Promise<void>;
  /** Records at or below `index` are no longer needed (the backend is fsynced past it). */
  releaseTo(index: bigint): Promise<void>;
  close(): Promise<void>;
  /** Set by the owner to observe how long each fsync of the log took (the WAL fsync metric). */
  onFsync?: ((seconds: number) => void) | undefined;
}


/** What a durable log replays at start (the WAL's WalState). */
export interface ReplayedLog {
  readonly hardState: HardState;
  readonly snapshot: SnapshotMetadata;
  /** The entries after snapshot.index, in order. */
  readonly entries: readonly Entry[];
}

/**
 * Raft's log cache rebuilt from what the durable log replayed at start: the
 * snapshot marker (its data is the backend, restored separately), the entries
 * after it and the hard state.
 *
 * The commit index is at least the snapshot's index. RaftNode makes a leader's
 * snapshot durable before the hard state of the same Ready, so a crash between
 * the two leaves a marker past the recorded commit index, which raft refuses
 * ("state.commit is out of range"). A leader sends only committed state, so
 * everything up to the marker is committed, and saying so is safe.
 */
export function restoreStorage(st: ReplayedLog): MemoryStorage {
  const storage = new MemoryStorage();
  if (st.snapshot.index > 0n) storage.applySnapshot({ metadata: st.snapshot, data: new Uint8Array(0) });
  storage.append([...st.entries]);
  const hs = st.hardState.commit < st.snapshot.index ? { ...st.hardState, commit: st.snapshot.index } : st.hardState;
  storage.setHardState(hs);
  return storage;
}
