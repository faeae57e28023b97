// RaftLogStore: the durable raft log as the driver uses it — the seam where
// the WAL (node/src/wal: Wal) plugs in. save(hardState, entries) is durable when
// it resolves; saveSnapshot records a snapshot marker (compacting the log, or
// replacing it for a snapshot from the leader); releaseTo lets old records go
// once the backend is durable past them. Tests substitute an in-memory one.

import type { Entry, HardState, SnapshotMetadata } from "../raft/index.js";

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

