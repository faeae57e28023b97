// Public surface of the peer transport.

export {
  Transport,
  DEFAULT_LIMITS,
  REAL_TIMERS,
  SILENT_TRANSPORT_LOGGER,
  type PeerHandler,
  type PeerUpgradeHandler,
  type PeerStatus,
  type Timers,
  type TransportLimits,
  type TransportLogger,
  type TransportOptions,
} from "./transport.js";
export {
  ERR_MEMBER_REMOVED,
  H_CLUSTER_ID,
  H_ERROR,
  H_FROM,
  H_TO,
  RAFT_PREFIX,
  SNAPSHOT_PATH,
  STREAM_PATH,
  TransportError,
  idHex,
  parseIdHex,
  type RefusalCode,
} from "./wire.js";
export * from "./codec.js";
