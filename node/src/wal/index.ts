// The durable log's public surface: the WAL, the snapshotter, the file-system
// seam (and its in-memory crashable model for tests), and the typed errors.
// The record codecs and the log rules stay internal.

export { Wal, DEFAULT_SEGMENT_BYTES, type WalLogger, type WalMetadata, type WalOptions, type WalState } from "./wal.js";
export { Snapshotter, type SnapshotterOptions } from "./snap.js";
export { nodeFs, NodeFs, type Fs, type FsFile } from "./fs.js";
export { SimFs, SimCrashedError, SimFaultError, type SimOp } from "./sim_fs.js";
export {
  WalError,
  WalCorruptError,
  WalMetadataMismatchError,
  WalExistsError,
  WalNotFoundError,
  WalFailedError,
  WalClosedError,
  SnapCorruptError,
} from "./errors.js";
