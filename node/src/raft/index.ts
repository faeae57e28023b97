// Public surface of the consensus core. Everything else in this folder is internal.

export { RawNode, type Ready, type Status, type ProgressStatus } from "./rawnode.js";
export { Raft, type RaftConfig, type RaftLogger, SILENT_LOGGER } from "./raft.js";
export { MemoryStorage, type Storage, type InitialState } from "./storage.js";
export { RaftError, isRaftError, type RaftErrorCode } from "./errors.js";
export { SeededRand, type Rand } from "./rand.js";
export * from "./types.js";
export * from "./describe.js";
