// etcd-compatible server configuration: command-line flags, ETCD_* environment
// variables and a YAML --config-file, with etcd's names, defaults and rules.
//
// API
//   loadConfig(argv, env): LoadResult
//     argv  the arguments after the program name (process.argv.slice(2)).
//     env   the environment (process.env); only ETCD_* keys are read.
//   LoadResult is a discriminated union:
//     { kind: "run", config, warnings }  start the server with `config`; log every warning.
//     { kind: "version" }                --version: print the version, exit 0.
//     { kind: "help", text }             -h / --help: print `text` to stdout, exit 0.
//   Every problem throws ConfigError. Its message names the flag (and the value
//   where there is one); `flag` holds the flag name; `exitCode` is 2 for
//   flag-syntax errors (Go's flag package exits 2) and 1 otherwise (as etcd).
//   loadConfig reads the config file (synchronously) and nothing else; it
//   never prints and never exits.
//
// Sources, as etcd 3.4-3.6 behave (checked against the etcd 3.4.23 binary):
//   * Flags: Go flag syntax. `-flag` and `--flag` are the same; `--flag=value`
//     or `--flag value`; a boolean takes its value only as `--flag=false`
//     (`--flag false` leaves "false" as a positional argument). `--` ends the
//     flags. Parsing stops at the first non-flag argument, which is an error
//     ("x" is not a valid flag). A flag given twice: the last one wins.
//     Integers use Go's base-0 syntax (0x10, 0o17, 017 = octal, 1_000).
//   * ETCD_<FLAG> variables (upper case, dashes -> underscores) set flags that
//     are not on the command line. Empty values are ignored. A variable for a
//     flag that IS on the command line is an error, not a precedence rule:
//     etcd exits with "conflicting environment variable ... is shadowed by
//     corresponding command-line flag". Unknown ETCD_* variables are warnings.
//   * --config-file (or ETCD_CONFIG_FILE when the flag is absent): the YAML
//     file is then the only source. The command line is still parsed and
//     checked for syntax (an unknown flag is still an error) but its values,
//     and all ETCD_* variables, are ignored; a warning lists what was ignored.
//     YAML keys are the flag names; value types follow etcd's file format
//     (integers as YAML numbers, booleans as YAML booleans, URL lists as a
//     comma string, log-outputs as a list). Also accepted, beyond etcd:
//     durations as Go strings ("5s"; etcd takes only integer nanoseconds) and
//     comma strings for lists. Unknown keys: a warning (etcd ignores them).
//
// Flags fall in four groups (see FLAGS below and README.md):
//   supported  parsed into Config.
//   noop       accepted and checked; no effect in etcd-ts; warning when set.
//   refused    not supported yet: a non-default value throws ConfigError.
//   legacy     etcd's own "no longer supported - ignoring" v2 flags.
// Real etcd flags are never "unknown": a user gets "not supported yet".
//

import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { loadAll, YAML11_SCHEMA } from "js-yaml";

// ---------------------------------------------------------------------------
// Public types

export type LogLevel = "debug" | "info" | "warn" | "error" | "panic" | "fatal";
export type LogOutput = "default" | "stderr" | "stdout";

/** Parsed --auto-compaction-retention. Zero (ms or revisions) means disabled. */
export type AutoCompactionRetention =
  | { readonly mode: "periodic"; readonly ms: number }
  | { readonly mode: "revision"; readonly revisions: bigint };

export interface InitialClusterMember {
  readonly name: string;
  /** Normalised (scheme lower-cased), sorted, de-duplicated. */
  readonly peerUrls: readonly string[];
}

/**
 * The effective configuration. Durations are milliseconds (possibly
 * fractional when given with a finer unit); 64-bit counters are bigint.
 * URL lists are normalised "scheme://host:port", sorted and de-duplicated as
 * etcd does; only http:// passes validation for now.
 */
export interface Config {
  /** --name, default "default". */
  readonly name: string;
  /** --data-dir; default `${name}.etcd` (also when set to ""). */
  readonly dataDir: string;
  /** --wal-dir; "" means inside dataDir. */
  readonly walDir: string;

  /** --listen-client-urls, default ["http://localhost:2379"]. */
  readonly listenClientUrls: readonly string[];
  /** --advertise-client-urls, default ["http://localhost:2379"]. */
  readonly advertiseClientUrls: readonly string[];
  /** --listen-peer-urls, default ["http://localhost:2380"]. */
  readonly listenPeerUrls: readonly string[];
  /** --initial-advertise-peer-urls, default ["http://localhost:2380"]. */
  readonly initialAdvertisePeerUrls: readonly string[];
  /** --listen-metrics-urls, default []. Serves /metrics and /health. */
  readonly listenMetricsUrls: readonly string[];

  /**
   * --initial-cluster as given; when not given, `${name}=${url}` for each
   * initial-advertise-peer-url (default "default=http://localhost:2380").
   */
  readonly initialCluster: string;
  /** initialCluster parsed; members in first-appearance order. */
  readonly initialClusterMembers: readonly InitialClusterMember[];
  /** --initial-cluster-state, default "new". */
  readonly initialClusterState: "new" | "existing";
  /** --initial-cluster-token, default "etcd-cluster". */
  readonly initialClusterToken: string;

  /** --heartbeat-interval in ms, default 100. */
  readonly heartbeatInterval: number;
  /** --election-timeout in ms, default 1000; >= 5 x heartbeat, <= 50000. */
  readonly electionTimeout: number;
  /** --initial-election-tick-advance, default true. */
  readonly initialElectionTickAdvance: boolean;
  /** --pre-vote, default true (etcd 3.5+). */
  readonly preVote: boolean;
  /** --strict-reconfig-check, default true. */
  readonly strictReconfigCheck: boolean;
  /** --max-learners (or --experimental-max-learners), default 1. */
  readonly maxLearners: number;
  /** --snapshot-count, default 10000 (etcd 3.6). */
  readonly snapshotCount: bigint;
  /** --snapshot-catchup-entries (or experimental-), default 5000. */
  readonly snapshotCatchUpEntries: bigint;

  /** --quota-backend-bytes as given, default 0n. */
  readonly quotaBackendBytes: bigint;
  /** What to enforce: 0 -> 2 GiB, negative -> null (no quota), else as given. */
  readonly quotaBackendBytesEffective: bigint | null;
  /** --max-request-bytes, default 1572864 (1.5 MiB). */
  readonly maxRequestBytes: number;
  /** --max-txn-ops, default 128. */
  readonly maxTxnOps: number;
  /** --max-concurrent-streams per client connection, default 4294967295. */
  readonly maxConcurrentStreams: number;
  /** --grpc-keepalive-min-time in ms, default 5000. */
  readonly grpcKeepaliveMinTime: number;
  /** --grpc-keepalive-interval in ms, default 7200000 (2h); 0 disables. */
  readonly grpcKeepaliveInterval: number;
  /** --grpc-keepalive-timeout in ms, default 20000; 0 disables. */
  readonly grpcKeepaliveTimeout: number;
  /** --enable-grpc-gateway, default true. */
  readonly enableGrpcGateway: boolean;

  /** --auto-compaction-mode, default "periodic". */
  readonly autoCompactionMode: "periodic" | "revision";
  /** --auto-compaction-retention as given, default "0". */
  readonly autoCompactionRetention: string;
  /**
   * autoCompactionRetention parsed: periodic -> ms (a bare integer is hours;
   * otherwise a Go duration such as "5m", "1h30m"); revision -> a count.
   */
  readonly autoCompactionRetentionParsed: AutoCompactionRetention;
  /** --compaction-batch-limit (or experimental-), default 1000. */
  readonly compactionBatchLimit: number;
  /** --watch-progress-notify-interval (or experimental-) in ms; default and 0 mean 600000 (10 min). */
  readonly watchProgressNotifyInterval: number;

  /** --auth-token; only "simple" is supported. */
  readonly authToken: "simple";
  /** --auth-token-ttl in seconds, default 300. */
  readonly authTokenTtl: number;
  /** --bcrypt-cost, default 10; outside 4..31 -> 10 with a warning (as etcd). */
  readonly bcryptCost: number;

  /** --logger; only "zap" (capnslog was removed in etcd 3.5). */
  readonly logger: "zap";
  /** --log-level, default "info" ("debug" also when the 3.4 --debug is set). */
  readonly logLevel: LogLevel;
  /** --log-outputs, default ["default"] (= stderr). Files/journald not supported yet. */
  readonly logOutputs: readonly LogOutput[];
  /** --log-format, default "json". */
  readonly logFormat: "json" | "console";
  /** --metrics, default "basic". */
  readonly metrics: "basic" | "extensive";
  /** --enable-pprof, default false. Accepted; there are no Go pprof endpoints in Node (warning). */
  readonly enablePprof: boolean;
  /** --unsafe-no-fsync, default false. The storage layer may skip fsync when true. */
  readonly unsafeNoFsync: boolean;

  /** The --config-file used, or null when configured by flags/env. */
  readonly configFile: string | null;
}

export type LoadResult =
  | { readonly kind: "run"; readonly config: Config; readonly warnings: readonly string[] }
  | { readonly kind: "version" }
  | { readonly kind: "help"; readonly text: string };

/** Any configuration problem. The message names the flag and value. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    message: string,
    /** The flag concerned, without dashes, when there is one. */
    readonly flag?: string,
    /** Process exit code etcd uses: 2 for flag syntax, 1 otherwise. */
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------
// The flag table

type Kind =
  | "string"
  | "choice" // a string restricted to `choices` at parse time (etcd's SelectiveStringValue)
  | "bool"
  | "uint" // Go uint (64-bit)
  | "uint32"
  | "uint64"
  | "int" // Go int (64-bit)
  | "int64"
  | "duration"
  | "urls" // comma-separated URL list
  | "strings" // comma-separated string list
  | "legacy"; // etcd's ignored v2 flags: boolean syntax, any value

type Status = "supported" | "noop" | "refused" | "legacy";

/** A typed flag value. */
type Value =
  | { readonly t: "str"; readonly v: string }
  | { readonly t: "bool"; readonly v: boolean }
  | { readonly t: "int"; readonly v: bigint }
  | { readonly t: "dur"; readonly ns: bigint }
  | { readonly t: "list"; readonly v: readonly string[] }
  | { readonly t: "none" };

interface FlagSpec {
  readonly name: string;
  readonly kind: Kind;
  /** Default in flag syntax (as `etcd --help` shows it). */
  readonly def: string;
  readonly status: Status;
  /** supported: help line; noop/refused: the reason. */
  readonly note: string;
  readonly choices?: readonly string[];
  /** For 3.6's deprecated experimental-X spelling of X. */
  readonly aliasOf?: string;
  /** Overrides "equals the default" for refused flags. */
  readonly isDefault?: (v: Value) => boolean;
}

const TLS = "TLS is not implemented yet";
const DISCOVERY = "discovery is not implemented yet; use --initial-cluster";
const V2 = "the v2 API and v2 proxy are not supported (removed in etcd 3.6)";
const TRACING = "distributed tracing is not implemented yet";

type Extra = Partial<Pick<FlagSpec, "choices" | "aliasOf" | "isDefault">>;
function spec(name: string, kind: Kind, def: string, status: Status, note: string, extra: Extra = {}): FlagSpec {
  return { name, kind, def, status, note, ...extra };
}
const sup = (name: string, kind: Kind, def: string, note: string, extra: Extra = {}) => spec(name, kind, def, "supported", note, extra);
const noop = (name: string, kind: Kind, def: string, note: string, extra: Extra = {}) => spec(name, kind, def, "noop", note, extra);
const refused = (name: string, kind: Kind, def: string, note: string, extra: Extra = {}) => spec(name, kind, def, "refused", note, extra);
const legacy = (name: string) => spec(name, "legacy", "", "legacy", "an etcd v2 flag");

/** "" and "*" both mean "allow all" for --cors and --host-whitelist. */
const allowAll = (v: Value): boolean => v.t === "list" && v.v.every((s) => s === "*" || s === "");

/**
 * Union of the flags of etcd 3.4 (`etcd --help` of the Debian binary),
 * 3.5 and 3.6 (server/embed/config.go AddFlags, server/etcdmain/config.go).
 */
const FLAGS: readonly FlagSpec[] = [
  // member
  sup("name", "string", "default", "Human-readable name for this member."),
  sup("data-dir", "string", "", "Path to the data directory (default '${name}.etcd')."),
  sup("wal-dir", "string", "", "Path to the dedicated wal directory."),
  sup("snapshot-count", "uint64", "10000", "Number of committed transactions to trigger a snapshot to disk."),
  sup("snapshot-catchup-entries", "uint64", "5000", "Entries kept for a slow follower after a snapshot."),
  sup("experimental-snapshot-catchup-entries", "uint64", "5000", "Deprecated spelling.", { aliasOf: "snapshot-catchup-entries" }),
  sup("heartbeat-interval", "uint", "100", "Time (in milliseconds) of a heartbeat interval."),
  sup("election-timeout", "uint", "1000", "Time (in milliseconds) for an election to timeout."),
  sup("initial-election-tick-advance", "bool", "true", "Whether to fast-forward initial election ticks on boot."),
  sup("listen-peer-urls", "urls", "http://localhost:2380", "List of URLs to listen on for peer traffic."),
  sup("listen-client-urls", "urls", "http://localhost:2379", "List of URLs to listen on for client traffic."),
  sup("quota-backend-bytes", "int64", "0", "Backend size quota in bytes (0 = 2 GiB, negative = no quota)."),
  sup("max-txn-ops", "uint", "128", "Maximum number of operations permitted in a transaction."),
  sup("max-request-bytes", "uint", "1572864", "Maximum client request size in bytes the server will accept."),
  sup("max-concurrent-streams", "uint32", "4294967295", "Maximum concurrent streams that each client can open at a time."),
  sup("grpc-keepalive-min-time", "duration", "5s", "Minimum duration a client should wait before pinging the server."),
  sup("grpc-keepalive-interval", "duration", "2h", "Frequency of server-to-client pings (0 to disable)."),
  sup("grpc-keepalive-timeout", "duration", "20s", "Wait before closing a non-responsive connection (0 to disable)."),
  sup("enable-grpc-gateway", "bool", "true", "Enable the JSON/HTTP gRPC gateway."),
  sup("unsafe-no-fsync", "bool", "false", "Disables fsync, unsafe, will cause data loss."),
  noop("max-snapshots", "uint", "5", "etcd-ts keeps no snapshot files"),
  noop("max-wals", "uint", "5", "etcd-ts keeps no WAL files"),
  noop("backend-bbolt-freelist-type", "string", "map", "etcd-ts does not use bbolt"),
  noop("experimental-backend-bbolt-freelist-type", "string", "map", "etcd-ts does not use bbolt"),
  noop("backend-batch-interval", "duration", "0s", "backend batching is internal to etcd-ts"),
  noop("backend-batch-limit", "int", "0", "backend batching is internal to etcd-ts"),
  noop("raft-read-timeout", "duration", "5s", "there is no peer transport yet"),
  noop("raft-write-timeout", "duration", "5s", "there is no peer transport yet"),
  refused("socket-reuse-port", "bool", "false", "socket options are not implemented yet"),
  refused("socket-reuse-address", "bool", "false", "socket options are not implemented yet"),
  refused("listen-client-http-urls", "urls", "", "separate HTTP-only client listeners are not implemented yet"),

  // clustering
  sup("initial-advertise-peer-urls", "urls", "http://localhost:2380", "This member's peer URLs to advertise to the rest of the cluster."),
  sup("initial-cluster", "string", "", "Initial cluster configuration for bootstrapping (default '${name}=${initial-advertise-peer-urls}')."),
  sup("initial-cluster-state", "choice", "new", "Initial cluster state ('new' or 'existing').", { choices: ["new", "existing"] }),
  sup("initial-cluster-token", "string", "etcd-cluster", "Initial cluster token for the etcd cluster during bootstrap."),
  sup("advertise-client-urls", "urls", "http://localhost:2379", "This member's client URLs to advertise to the public."),
  sup("strict-reconfig-check", "bool", "true", "Reject reconfiguration requests that would cause quorum loss."),
  sup("pre-vote", "bool", "true", "Enable the Raft Pre-Vote algorithm."),
  sup("max-learners", "int", "1", "Maximum number of learners in the cluster membership."),
  sup("experimental-max-learners", "int", "1", "Deprecated spelling.", { aliasOf: "max-learners" }),
  sup("auto-compaction-retention", "string", "0", "Auto compaction retention (0 disables): hours or a duration ('5m') in periodic mode, revisions in revision mode."),
  sup("auto-compaction-mode", "string", "periodic", "Interpret 'auto-compaction-retention' as: periodic|revision."),
  refused("discovery", "string", "", DISCOVERY),
  noop("discovery-fallback", "choice", "proxy", "discovery is not implemented", { choices: ["exit", "proxy"] }),
  refused("discovery-proxy", "string", "", DISCOVERY),
  refused("discovery-srv", "string", "", DISCOVERY),
  refused("discovery-srv-name", "string", "", DISCOVERY),
  refused("discovery-endpoints", "strings", "", DISCOVERY),
  refused("discovery-token", "string", "", DISCOVERY),
  refused("discovery-dial-timeout", "duration", "2s", DISCOVERY),
  refused("discovery-request-timeout", "duration", "5s", DISCOVERY),
  refused("discovery-keepalive-time", "duration", "2s", DISCOVERY),
  refused("discovery-keepalive-timeout", "duration", "6s", DISCOVERY),
  refused("discovery-insecure-transport", "bool", "true", DISCOVERY),
  refused("discovery-insecure-skip-tls-verify", "bool", "false", DISCOVERY),
  refused("discovery-cert", "string", "", DISCOVERY),
  refused("discovery-key", "string", "", DISCOVERY),
  refused("discovery-cacert", "string", "", DISCOVERY),
  refused("discovery-user", "string", "", DISCOVERY),
  refused("discovery-password", "string", "", DISCOVERY),
  refused("enable-v2", "bool", "false", V2),
  noop("v2-deprecation", "choice", "write-only", "etcd-ts has no v2 store", { choices: ["not-yet", "write-only", "write-only-drop-data", "gone"] }),
  refused("experimental-enable-v2v3", "string", "", V2),

  // security
  refused("cert-file", "string", "", TLS),
  refused("key-file", "string", "", TLS),
  refused("client-cert-auth", "bool", "false", TLS),
  refused("client-cert-file", "string", "", TLS),
  refused("client-key-file", "string", "", TLS),
  refused("client-crl-file", "string", "", TLS),
  refused("client-cert-allowed-hostname", "strings", "", TLS),
  refused("trusted-ca-file", "string", "", TLS),
  refused("auto-tls", "bool", "false", TLS),
  refused("peer-cert-file", "string", "", TLS),
  refused("peer-key-file", "string", "", TLS),
  refused("peer-client-cert-auth", "bool", "false", TLS),
  refused("peer-trusted-ca-file", "string", "", TLS),
  refused("peer-cert-allowed-cn", "strings", "", TLS),
  refused("peer-cert-allowed-hostname", "strings", "", TLS),
  refused("peer-auto-tls", "bool", "false", TLS),
  refused("peer-client-cert-file", "string", "", TLS),
  refused("peer-client-key-file", "string", "", TLS),
  refused("peer-crl-file", "string", "", TLS),
  refused("self-signed-cert-validity", "uint", "1", TLS),
  refused("cipher-suites", "strings", "", TLS),
  refused("tls-min-version", "string", "TLS1.2", TLS),
  refused("tls-max-version", "string", "", TLS),
  refused("peer-skip-client-san-verification", "bool", "false", TLS),
  refused("experimental-peer-skip-client-san-verification", "bool", "false", TLS),
  refused("cors", "strings", "*", "CORS restrictions are not implemented yet", { isDefault: allowAll }),
  refused("host-whitelist", "strings", "*", "host whitelisting is not implemented yet", { isDefault: allowAll }),

  // auth (--auth-token is checked separately: only "simple")
  sup("auth-token", "string", "simple", "Authentication token type; only 'simple' is supported."),
  sup("auth-token-ttl", "uint", "300", "Time (in seconds) of the auth-token-ttl."),
  sup("bcrypt-cost", "uint", "10", "Cost of bcrypt hashing of auth passwords (4..31)."),

  // profiling and monitoring
  sup("enable-pprof", "bool", "false", "Accepted; etcd-ts has no Go pprof endpoints."),
  sup("metrics", "string", "basic", "Level of detail for exported metrics: basic|extensive."),
  sup("listen-metrics-urls", "urls", "", "List of URLs to listen on for the metrics and health endpoints."),
  refused("enable-distributed-tracing", "bool", "false", TRACING),
  refused("experimental-enable-distributed-tracing", "bool", "false", TRACING),
  noop("distributed-tracing-address", "string", "localhost:4317", TRACING),
  noop("experimental-distributed-tracing-address", "string", "localhost:4317", TRACING),
  noop("distributed-tracing-service-name", "string", "etcd", TRACING),
  noop("experimental-distributed-tracing-service-name", "string", "etcd", TRACING),
  noop("distributed-tracing-instance-id", "string", "", TRACING),
  noop("experimental-distributed-tracing-instance-id", "string", "", TRACING),
  noop("distributed-tracing-sampling-rate", "int", "0", TRACING),
  noop("experimental-distributed-tracing-sampling-rate", "int", "0", TRACING),

  // logging
  sup("logger", "string", "zap", "Only 'zap' (structured logging)."),
  sup("log-outputs", "strings", "default", "Log output targets: default|stderr|stdout."),
  sup("log-level", "string", "info", "Log level: debug, info, warn, error, panic, or fatal."),
  sup("log-format", "string", "json", "Log format: json|console."),
  sup("debug", "bool", "false", "Deprecated (etcd 3.4): same as --log-level=debug."),
  refused("enable-log-rotation", "bool", "false", "log files and rotation are not implemented yet"),
  noop("log-rotation-config-json", "string", '{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}', "log rotation is not implemented"),
  noop("disable-log-sampling", "bool", "false", "etcd-ts does not sample logs"),
  noop("log-package-levels", "string", "", "per-package (capnslog) levels are not supported; use --log-level"),

  // v2 proxy
  refused("proxy", "choice", "off", V2, { choices: ["off", "readonly", "on"] }),
  refused("proxy-failure-wait", "uint", "5000", V2),
  refused("proxy-refresh-interval", "uint", "30000", V2),
  refused("proxy-dial-timeout", "uint", "1000", V2),
  refused("proxy-write-timeout", "uint", "5000", V2),
  refused("proxy-read-timeout", "uint", "0", V2),

  // experimental and feature gates
  sup("watch-progress-notify-interval", "duration", "10m", "Duration of periodic watch progress notifications."),
  sup("experimental-watch-progress-notify-interval", "duration", "10m", "Deprecated spelling.", { aliasOf: "watch-progress-notify-interval" }),
  sup("compaction-batch-limit", "int", "1000", "Maximum revisions deleted in each compaction batch."),
  sup("experimental-compaction-batch-limit", "int", "1000", "Deprecated spelling.", { aliasOf: "compaction-batch-limit" }),
  noop("compaction-sleep-interval", "duration", "10ms", "compaction pacing is internal to etcd-ts"),
  noop("experimental-compaction-sleep-interval", "duration", "10ms", "compaction pacing is internal to etcd-ts"),
  noop("experimental-initial-corrupt-check", "bool", "false", "corruption checks compare members; a single member has none to compare"),
  noop("corrupt-check-time", "duration", "0s", "corruption checks compare members; a single member has none to compare"),
  noop("experimental-corrupt-check-time", "duration", "0s", "corruption checks compare members; a single member has none to compare"),
  noop("experimental-compact-hash-check-enabled", "bool", "false", "corruption checks compare members; a single member has none to compare"),
  noop("compact-hash-check-time", "duration", "1m", "corruption checks compare members; a single member has none to compare"),
  noop("experimental-compact-hash-check-time", "duration", "1m", "corruption checks compare members; a single member has none to compare"),
  refused("experimental-enable-lease-checkpoint", "bool", "false", "lease checkpointing is not implemented yet"),
  refused("experimental-enable-lease-checkpoint-persist", "bool", "false", "lease checkpointing is not implemented yet"),
  noop("downgrade-check-time", "duration", "5s", "downgrades are not implemented"),
  noop("experimental-downgrade-check-time", "duration", "5s", "downgrades are not implemented"),
  noop("warning-apply-duration", "duration", "100ms", "slow-apply warnings are not implemented"),
  noop("experimental-warning-apply-duration", "duration", "100ms", "slow-apply warnings are not implemented"),
  noop("warning-unary-request-duration", "duration", "300ms", "slow-request warnings are not implemented"),
  noop("experimental-warning-unary-request-duration", "duration", "300ms", "slow-request warnings are not implemented"),
  noop("bootstrap-defrag-threshold-megabytes", "uint", "0", "etcd-ts does not defragment at boot"),
  noop("experimental-bootstrap-defrag-threshold-megabytes", "uint", "0", "etcd-ts does not defragment at boot"),
  noop("memory-mlock", "bool", "false", "Node cannot mlock its heap"),
  noop("experimental-memory-mlock", "bool", "false", "Node cannot mlock its heap"),
  noop("experimental-txn-mode-write-with-shared-buffer", "bool", "true", "a bbolt-specific optimisation"),
  refused("experimental-stop-grpc-service-on-defrag", "bool", "false", "stopping the gRPC service during defragmentation is not implemented yet"),
  // feature-gates is checked per gate in checkFeatureGates
  noop("feature-gates", "string", "", "see the gate"),

  // unsafe
  refused("force-new-cluster", "bool", "false", "force-new-cluster is not implemented yet (single member only)"),

  // etcdmain
  sup("config-file", "string", "", "Path to the server configuration file; other flags and ETCD_* variables are then ignored."),
  sup("version", "bool", "false", "Print the version and exit."),
  ...[
    "cluster-active-size", "cluster-remove-delay", "cluster-sync-interval", "config", "force",
    "max-result-buffer", "max-retry-attempts", "peer-heartbeat-interval", "peer-election-timeout",
    "retry-interval", "snapshot", "v", "vv",
  ].map(legacy),
];

const BY_NAME: ReadonlyMap<string, FlagSpec> = new Map(FLAGS.map((f) => [f.name, f]));

/** etcd 3.6 feature gates and what etcd-ts does with each when enabled. */
const FEATURE_GATES: ReadonlyMap<string, { readonly def: boolean; readonly refuse?: string; readonly noop?: string }> = new Map([
  ["StopGRPCServiceOnDefrag", { def: false, refuse: "stopping the gRPC service during defragmentation is not implemented yet" }],
  ["InitialCorruptCheck", { def: false, noop: "a single member has no peers to compare with" }],
  ["CompactHashCheck", { def: false, noop: "a single member has no peers to compare with" }],
  ["LeaseCheckpoint", { def: false, refuse: "lease checkpointing is not implemented yet" }],
  ["LeaseCheckpointPersist", { def: false, refuse: "lease checkpointing is not implemented yet" }],
  ["SetMemberLocalAddr", { def: false, noop: "there is no peer transport yet" }],
  ["TxnModeWriteWithSharedBuffer", { def: true, noop: "a bbolt-specific optimisation" }],
]);

// ---------------------------------------------------------------------------
// Go-compatible value syntax

const MAX_INT64 = (1n << 63n) - 1n;

/** Go strconv.ParseUint(s, 0, bits): "parse error" | "value out of range" | value. */
function goParseUint(s0: string, bits: number): bigint | string {
  if (s0 === "") return "parse error";
  let s = s0;
  let base = 10;
  if (s[0] === "0") {
    const p = (s[1] ?? "").toLowerCase();
    if (s.length >= 3 && (p === "b" || p === "o" || p === "x")) {
      base = p === "b" ? 2 : p === "o" ? 8 : 16;
      s = s.slice(2);
    } else {
      base = 8;
      s = s.slice(1);
    }
  }
  const max = (1n << BigInt(bits)) - 1n;
  let n = 0n;
  let underscores = false;
  for (const ch of s) {
    if (ch === "_") {
      underscores = true;
      continue;
    }
    const d = parseInt(ch, 36);
    if (Number.isNaN(d) || d >= base) return "parse error";
    n = n * BigInt(base) + BigInt(d);
    if (n > max) return "value out of range";
  }
  if (underscores && !underscoresOk(s0)) return "parse error";
  return n;
}

/** Go strconv.ParseInt(s, 0, bits). */
function goParseInt(s0: string, bits: number): bigint | string {
  let s = s0;
  let neg = false;
  if (s[0] === "+" || s[0] === "-") {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  const u = goParseUint(s, bits);
  if (typeof u === "string") return u;
  const limit = 1n << BigInt(bits - 1);
  if (neg ? u > limit : u >= limit) return "value out of range";
  return neg ? -u : u;
}

/** Go's rule: each underscore separates two digits (a base prefix counts as a digit). */
function underscoresOk(s0: string): boolean {
  let s = s0;
  if (s[0] === "+" || s[0] === "-") s = s.slice(1);
  let saw: "^" | "0" | "_" | "!" = "^";
  let i = 0;
  let hex = false;
  const p = (s[1] ?? "").toLowerCase();
  if (s.length >= 2 && s[0] === "0" && (p === "b" || p === "o" || p === "x")) {
    i = 2;
    saw = "0";
    hex = p === "x";
  }
  for (; i < s.length; i++) {
    const c = (s[i] ?? "").toLowerCase();
    if ((c >= "0" && c <= "9") || (hex && c >= "a" && c <= "f")) {
      saw = "0";
    } else if (c === "_") {
      if (saw !== "0") return false;
      saw = "_";
    } else {
      if (saw === "_") return false;
      saw = "!";
    }
  }
  return saw !== "_";
}

/** Go strconv.ParseBool. */
function goParseBool(s: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  return undefined;
}

const UNIT_NS: ReadonlyMap<string, bigint> = new Map([
  ["ns", 1n],
  ["us", 1_000n],
  ["\u00b5s", 1_000n],
  ["\u03bcs", 1_000n],
  ["ms", 1_000_000n],
  ["s", 1_000_000_000n],
  ["m", 60_000_000_000n],
  ["h", 3_600_000_000_000n],
]);

/** Go time.ParseDuration: nanoseconds, or Go's error text. */
export function parseGoDuration(s0: string): bigint | string {
  let s = s0;
  let neg = false;
  if (s[0] === "-" || s[0] === "+") {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0n;
  const invalid = `time: invalid duration ${JSON.stringify(s0)}`;
  if (s === "") return invalid;
  let total = 0n;
  while (s !== "") {
    const num = /^([0-9]*)(?:\.([0-9]*))?/.exec(s);
    const whole = num?.[1] ?? "";
    const frac = num?.[2];
    if (whole === "" && (frac === undefined || frac === "")) return invalid;
    s = s.slice(num?.[0].length ?? 0);
    const unitText = /^[^0-9.]+/.exec(s)?.[0];
    if (unitText === undefined) return `time: missing unit in duration ${JSON.stringify(s0)}`;
    const unit = UNIT_NS.get(unitText);
    if (unit === undefined) return `time: unknown unit ${JSON.stringify(unitText)} in duration ${JSON.stringify(s0)}`;
    s = s.slice(unitText.length);
    let v = BigInt(whole === "" ? "0" : whole) * unit;
    if (frac !== undefined && frac !== "") v += (BigInt(frac) * unit) / 10n ** BigInt(frac.length);
    total += v;
    if (total > MAX_INT64) return invalid;
  }
  return neg ? -total : total;
}

/** net.SplitHostPort, reduced to what URL checks need. */
function splitHostPort(hostport: string): { host: string; port: string } | undefined {
  if (hostport.startsWith("[")) {
    const end = hostport.indexOf("]");
    if (end < 0 || hostport[end + 1] !== ":") return undefined;
    return { host: hostport.slice(1, end), port: hostport.slice(end + 2) };
  }
  const i = hostport.lastIndexOf(":");
  if (i < 0) return undefined;
  const host = hostport.slice(0, i);
  if (host.includes(":")) return undefined;
  return { host, port: hostport.slice(i + 1) };
}

/** One URL as etcd's types.NewURLs checks it. Returns the normalised URL or an error text. */
function checkUrl(input: string): { ok: string } | { err: string } {
  const s = input.trim();
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):([\s\S]*)$/.exec(s);
  const scheme = (m?.[1] ?? "").toLowerCase();
  const rest = m?.[2] ?? "";
  if (!["http", "https", "unix", "unixs"].includes(scheme)) {
    return { err: `URL scheme must be http, https, unix, or unixs: ${s}` };
  }
  if (scheme === "unix" || scheme === "unixs") return { ok: `${scheme}:${rest}` };
  const form = { err: `URL address does not have the form "host:port": ${s}` };
  if (!rest.startsWith("//")) return form;
  const afterSlashes = rest.slice(2);
  const cut = afterSlashes.search(/[/?#]/);
  const authority = cut < 0 ? afterSlashes : afterSlashes.slice(0, cut);
  const tail = cut < 0 ? "" : afterSlashes.slice(cut);
  if (authority.includes("@")) return { err: `URL must not contain user information: ${s}` };
  const hp = splitHostPort(authority);
  if (hp === undefined) return form;
  if (tail.startsWith("/")) return { err: `URL must not contain a path: ${s}` };
  if (tail !== "") return { err: `URL must not contain a query or fragment: ${s}` };
  if (!/^[0-9]{1,5}$/.test(hp.port) || Number(hp.port) > 65535) {
    return { err: `URL port must be a number from 0 to 65535: ${s}` };
  }
  return { ok: `${scheme}://${authority}` };
}

/** etcd's UniqueURLs: "" -> [], else checked, sorted, de-duplicated. */
function parseUrlList(raw: string): readonly string[] | string {
  if (raw === "") return [];
  const out: string[] = [];
  for (const part of raw.split(",")) {
    const r = checkUrl(part);
    if ("err" in r) return r.err;
    out.push(r.ok);
  }
  return [...new Set(out.sort())];
}

function parseStringList(raw: string): readonly string[] {
  if (raw === "") return [];
  return [...new Set(raw.split(",").map((s) => s.trim()))];
}

/** Why a value does not parse (internal; wrapped into ConfigError with the flag and source). */
class BadValue extends Error {}

/** The BadValue text; anything else is a bug and propagates. */
function reasonOf(e: unknown): string {
  if (e instanceof BadValue) return e.message;
  throw e;
}

/**
 * Parses a flag value given as text (command line or environment), as the
 * Go flag.Value of that flag would. Throws BadValue.
 */
function parseText(f: FlagSpec, raw: string): Value {
  const intOf = (r: bigint | string): Value => {
    if (typeof r === "string") throw new BadValue(r);
    return { t: "int", v: r };
  };
  switch (f.kind) {
    case "string":
      return { t: "str", v: raw };
    case "choice":
      if (!(f.choices ?? []).includes(raw)) throw new BadValue(`invalid value (valid values: ${(f.choices ?? []).join(", ")})`);
      return { t: "str", v: raw };
    case "bool": {
      const b = goParseBool(raw);
      if (b === undefined) throw new BadValue("parse error (expected true or false)");
      return { t: "bool", v: b };
    }
    case "uint":
    case "uint64":
      return intOf(withHint(goParseUint(raw, 64), "an unsigned integer"));
    case "uint32":
      return intOf(withHint(goParseUint(raw, 32), "an unsigned 32-bit integer"));
    case "int":
    case "int64":
      return intOf(withHint(goParseInt(raw, 64), "an integer"));
    case "duration": {
      const d = parseGoDuration(raw);
      if (typeof d === "string") throw new BadValue(`parse error (${d}; expected a Go duration such as 500ms, 5s, 1h30m)`);
      return { t: "dur", ns: d };
    }
    case "urls": {
      const l = parseUrlList(raw);
      if (typeof l === "string") throw new BadValue(l);
      return { t: "list", v: l };
    }
    case "strings":
      return { t: "list", v: parseStringList(raw) };
    case "legacy":
      return { t: "none" };
  }
}

function withHint(r: bigint | string, what: string): bigint | string {
  return r === "parse error" ? `parse error (expected ${what})` : r;
}

/** Converts a YAML value of the config file; undefined for null (= not set). Throws BadValue. */
function parseYaml(f: FlagSpec, y: unknown): Value | undefined {
  if (y === null || y === undefined) return undefined;
  const got = `got ${describe(y)}`;
  switch (f.kind) {
    case "string":
    case "choice":
      if (typeof y !== "string") throw new BadValue(`expected a string, ${got} (quote the value)`);
      return parseText(f, y);
    case "bool":
      if (typeof y !== "boolean") throw new BadValue(`expected a boolean, ${got}`);
      return { t: "bool", v: y };
    case "uint":
    case "uint32":
    case "uint64":
    case "int":
    case "int64":
      if (typeof y !== "number" || !Number.isInteger(y)) throw new BadValue(`expected an integer, ${got}`);
      if (!Number.isSafeInteger(y)) throw new BadValue(`integer ${y} cannot be represented exactly; use a value below 2^53`);
      return parseText(f, String(y));
    case "duration":
      // etcd's file format: integer nanoseconds; also accepted: a Go duration string.
      if (typeof y === "number" && Number.isSafeInteger(y)) return { t: "dur", ns: BigInt(y) };
      if (typeof y === "string") return parseText(f, y);
      throw new BadValue(`expected integer nanoseconds or a duration string such as "5s", ${got}`);
    case "urls":
    case "strings":
      if (typeof y === "string") return parseText(f, y);
      if (Array.isArray(y) && y.every((e): e is string => typeof e === "string")) return parseText(f, y.join(","));
      throw new BadValue(`expected a comma-separated string or a list of strings, ${got}`);
    case "legacy":
      return { t: "none" };
  }
}

function describe(y: unknown): string {
  if (Array.isArray(y)) return "a list";
  if (y instanceof Date) return `a timestamp (${y.toISOString()})`;
  if (typeof y === "object" && y !== null) return "a mapping";
  return `${typeof y} ${JSON.stringify(y)}`;
}

function valuesEqual(a: Value, b: Value): boolean {
  switch (a.t) {
    case "str":
    case "bool":
    case "int":
      return b.t === a.t && b.v === a.v;
    case "dur":
      return b.t === "dur" && b.ns === a.ns;
    case "list":
      return b.t === "list" && a.v.length === b.v.length && a.v.every((s, i) => s === b.v[i]);
    case "none":
      return b.t === "none";
  }
}

// ---------------------------------------------------------------------------
// Collected settings

type Source = { readonly from: "flag" } | { readonly from: "env"; readonly key: string } | { readonly from: "file"; readonly path: string };

interface Setting {
  readonly value: Value;
  /** The value as the user wrote it, for messages. */
  readonly raw: string;
  readonly source: Source;
}

/** The explicitly set flags of the effective source, with typed getters that fall back to defaults. */
class Settings {
  readonly set = new Map<string, Setting>();

  has(name: string): boolean {
    return this.set.has(name);
  }
  value(name: string): Value {
    const s = this.set.get(name);
    if (s !== undefined) return s.value;
    return defaultValue(specOf(name));
  }
  raw(name: string): string {
    return this.set.get(name)?.raw ?? specOf(name).def;
  }
  str(name: string): string {
    const v = this.value(name);
    if (v.t !== "str") throw new Error(`internal: ${name} is not a string flag`);
    return v.v;
  }
  bool(name: string): boolean {
    const v = this.value(name);
    if (v.t !== "bool") throw new Error(`internal: ${name} is not a boolean flag`);
    return v.v;
  }
  int(name: string): bigint {
    const v = this.value(name);
    if (v.t !== "int") throw new Error(`internal: ${name} is not an integer flag`);
    return v.v;
  }
  ns(name: string): bigint {
    const v = this.value(name);
    if (v.t !== "dur") throw new Error(`internal: ${name} is not a duration flag`);
    return v.ns;
  }
  list(name: string): readonly string[] {
    const v = this.value(name);
    if (v.t !== "list") throw new Error(`internal: ${name} is not a list flag`);
    return v.v;
  }
}

function specOf(name: string): FlagSpec {
  const f = BY_NAME.get(name);
  if (f === undefined) throw new Error(`internal: no flag ${name}`);
  return f;
}

const defaults = new Map<string, Value>();
function defaultValue(f: FlagSpec): Value {
  let v = defaults.get(f.name);
  if (v === undefined) {
    v = parseText(f, f.def); // the table's defaults are valid by construction (tested)
    defaults.set(f.name, v);
  }
  return v;
}

function isDefault(f: FlagSpec, v: Value): boolean {
  return f.isDefault !== undefined ? f.isDefault(v) : valuesEqual(v, defaultValue(f));
}

function where(s: Source): string {
  switch (s.from) {
    case "flag":
      return "on the command line";
    case "env":
      return `from ${s.key}`;
    case "file":
      return `in config file ${JSON.stringify(s.path)}`;
  }
}

// ---------------------------------------------------------------------------
// Command line (Go flag package semantics)

interface CommandLine {
  readonly settings: Settings;
  readonly positional: readonly string[];
  readonly help: boolean;
}

function parseArgs(argv: readonly string[]): CommandLine {
  const settings = new Settings();
  const args = [...argv];
  while (args.length > 0) {
    const s = args[0] ?? "";
    if (s.length < 2 || s[0] !== "-") break;
    let dashes = 1;
    if (s[1] === "-") {
      dashes = 2;
      if (s.length === 2) {
        args.shift();
        break;
      }
    }
    let name = s.slice(dashes);
    if (name === "" || name[0] === "-" || name[0] === "=") throw new ConfigError(`bad flag syntax: ${s}`, undefined, 2);
    args.shift();
    let value: string | undefined;
    const eq = name.indexOf("=", 1);
    if (eq > 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const f = BY_NAME.get(name);
    if (f === undefined) {
      if (name === "help" || name === "h") return { settings, positional: [], help: true };
      throw new ConfigError(`flag provided but not defined: -${name}`, name, 2);
    }
    if (f.kind === "bool" || f.kind === "legacy") {
      const raw = value ?? "true";
      try {
        settings.set.set(name, { value: parseText(f, raw), raw, source: { from: "flag" } });
      } catch (reason) {
        throw new ConfigError(`invalid boolean value ${JSON.stringify(raw)} for -${name}: ${reasonOf(reason)}`, name, 2);
      }
      continue;
    }
    if (value === undefined) {
      if (args.length === 0) throw new ConfigError(`flag needs an argument: -${name}`, name, 2);
      value = args.shift() ?? "";
    }
    try {
      settings.set.set(name, { value: parseText(f, value), raw: value, source: { from: "flag" } });
    } catch (reason) {
      throw new ConfigError(`invalid value ${JSON.stringify(value)} for flag -${name}: ${reasonOf(reason)}`, name, 2);
    }
  }
  return { settings, positional: args, help: false };
}

function envKey(flag: string): string {
  return `ETCD_${flag.toUpperCase().replace(/-/g, "_")}`;
}

/** Variables etcd itself reads that are not flags. */
const NON_FLAG_ENV = new Set(["ETCD_UNSUPPORTED_ARCH"]);

/** etcd's SetFlagsFromEnv + verifyEnv. Adds env-set flags to `settings`. */
function applyEnv(settings: Settings, env: NodeJS.ProcessEnv, warnings: string[]): void {
  const fromCmdLine = new Set(settings.set.keys());
  const used = new Set<string>();
  for (const f of FLAGS) {
    const key = envKey(f.name);
    if (fromCmdLine.has(f.name) || f.name === "version" || f.name === "config-file") continue;
    const raw = env[key];
    if (raw === undefined || raw === "") continue;
    used.add(key);
    try {
      settings.set.set(f.name, { value: parseText(f, raw), raw, source: { from: "env", key } });
    } catch (reason) {
      throw new ConfigError(`invalid value ${JSON.stringify(raw)} for ${key}: ${reasonOf(reason)}`, f.name);
    }
  }
  for (const key of Object.keys(env).sort()) {
    if (!key.startsWith("ETCD_") || used.has(key) || NON_FLAG_ENV.has(key) || key === "ETCD_CONFIG_FILE") continue;
    if (key === "ETCD_VERSION") {
      warnings.push(`cannot set special environment variable ETCD_VERSION; ignored`);
      continue;
    }
    const flag = key.slice(5).toLowerCase().replace(/_/g, "-");
    if (fromCmdLine.has(flag)) {
      throw new ConfigError(
        `conflicting environment variable ${JSON.stringify(key)} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)`,
        flag,
      );
    }
    if (env[key] === "" && BY_NAME.has(flag)) warnings.push(`ignoring empty environment variable ${key}`);
    else warnings.push(`unrecognized environment variable ${key}=${env[key] ?? ""}`);
  }
}

// ---------------------------------------------------------------------------
// Config file

/** Keys of etcd's file format that are not flag names. */
const FILE_ONLY_KEYS = new Set(["client-transport-security", "peer-transport-security", "discovery-config", "socket-options", "experimental-snapshot-catch-up-entries"]);

function readConfigFile(path: string, warnings: string[]): Settings {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read --config-file ${JSON.stringify(path)}: ${e instanceof Error ? e.message : String(e)}`, "config-file");
  }
  let docs: unknown[];
  try {
    // YAML 1.1, as etcd's sigs.k8s.io/yaml (go-yaml v2): "yes"/"on" are booleans, 010 is octal.
    docs = loadAll(text, { schema: YAML11_SCHEMA, filename: path });
  } catch (e) {
    throw new ConfigError(`cannot parse --config-file ${JSON.stringify(path)}: ${e instanceof Error ? e.message : String(e)}`, "config-file");
  }
  const doc = docs[0] ?? {};
  if (typeof doc !== "object" || doc === null || Array.isArray(doc) || doc instanceof Date) {
    throw new ConfigError(`cannot parse --config-file ${JSON.stringify(path)}: the top level must be a mapping of flag names to values`, "config-file");
  }
  const settings = new Settings();
  const source: Source = { from: "file", path };
  for (const [key, y] of Object.entries(doc)) {
    if (FILE_ONLY_KEYS.has(key)) {
      checkFileOnlyKey(key, y, path, settings);
      continue;
    }
    const f = BY_NAME.get(key);
    if (f === undefined) {
      warnings.push(`config file ${JSON.stringify(path)}: unknown key ${JSON.stringify(key)} ignored`);
      continue;
    }
    if (key === "config-file" || key === "version") {
      warnings.push(`config file ${JSON.stringify(path)}: key ${JSON.stringify(key)} has no meaning in a config file; ignored`);
      continue;
    }
    try {
      const value = parseYaml(f, y);
      if (value !== undefined) settings.set.set(key, { value, raw: typeof y === "string" ? y : JSON.stringify(y), source });
    } catch (reason) {
      throw new ConfigError(`invalid value for ${key} in config file ${JSON.stringify(path)}: ${reasonOf(reason)}`, key);
    }
  }
  return settings;
}

/** The nested sections of etcd's file format. Anything meaningful in them is refused. */
function checkFileOnlyKey(key: string, y: unknown, path: string, settings: Settings): void {
  if (y === null || y === undefined) return;
  if (key === "experimental-snapshot-catch-up-entries") {
    // etcd 3.6 reads this misspelling as experimental-snapshot-catchup-entries.
    const f = specOf("experimental-snapshot-catchup-entries");
    try {
      const value = parseYaml(f, y);
      if (value !== undefined) settings.set.set(f.name, { value, raw: JSON.stringify(y), source: { from: "file", path } });
    } catch (reason) {
      throw new ConfigError(`invalid value for ${key} in config file ${JSON.stringify(path)}: ${reasonOf(reason)}`, key);
    }
    return;
  }
  if (typeof y !== "object" || Array.isArray(y)) {
    throw new ConfigError(`invalid value for ${key} in config file ${JSON.stringify(path)}: expected a mapping, got ${describe(y)}`, key);
  }
  const meaningful = (v: unknown): boolean => v === true || (typeof v === "string" && v !== "") || (Array.isArray(v) && v.length > 0);
  for (const [sub, v] of Object.entries(y)) {
    let why: string | undefined;
    if (key === "client-transport-security" || key === "peer-transport-security") why = meaningful(v) ? TLS : undefined;
    else if (key === "socket-options") why = v === true ? "socket options are not implemented yet" : undefined;
    else if (key === "discovery-config") why = (sub === "endpoints" || sub === "token") && meaningful(v) ? DISCOVERY : undefined;
    if (why !== undefined) {
      throw new ConfigError(`${key}.${sub} (config file ${JSON.stringify(path)}) is not supported yet: ${why}`, key);
    }
  }
}

// ---------------------------------------------------------------------------
// loadConfig

const DEFAULT_QUOTA = 2n * 1024n * 1024n * 1024n;
const MAX_QUOTA = 8n * 1024n * 1024n * 1024n;
const MAX_ELECTION_MS = 50000;
const LOG_LEVELS: readonly string[] = ["debug", "info", "warn", "error", "panic", "fatal"] satisfies readonly LogLevel[];
const isLogLevel = (s: string): s is LogLevel => LOG_LEVELS.includes(s);

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): LoadResult {
  const first = argv[0];
  if (first === "gateway" || first === "grpc-proxy") {
    throw new ConfigError(`etcd ${first} is not supported yet`);
  }
  const cmd = parseArgs(argv);
  if (cmd.help) return { kind: "help", text: helpText() };
  const stray = cmd.positional[0];
  if (stray !== undefined) throw new ConfigError(`${JSON.stringify(stray)} is not a valid flag`);
  if (cmd.settings.has("version") && cmd.settings.bool("version")) return { kind: "version" };

  const warnings: string[] = [];
  let configFile = cmd.settings.str("config-file");
  if (configFile === "") configFile = env["ETCD_CONFIG_FILE"] ?? "";

  let settings: Settings;
  if (configFile !== "") {
    settings = readConfigFile(configFile, warnings);
    const ignored = [...cmd.settings.set.keys()].filter((n) => n !== "config-file").map((n) => `--${n}`);
    ignored.push(...Object.keys(env).filter((k) => k.startsWith("ETCD_") && k !== "ETCD_CONFIG_FILE" && !NON_FLAG_ENV.has(k)).sort());
    if (ignored.length > 0) {
      warnings.push(
        `loaded server configuration from ${JSON.stringify(configFile)}; other configuration command line flags and environment variables are ignored: ${ignored.join(", ")}`,
      );
    }
  } else {
    settings = cmd.settings;
    applyEnv(settings, env, warnings);
  }

  checkAliases(settings, warnings);
  refuseUnsupported(settings, warnings);
  const config = buildConfig(settings, configFile === "" ? null : configFile, warnings);
  return { kind: "run", config, warnings };
}

/** 3.6's deprecated experimental-X spellings: not both, and a deprecation warning. */
function checkAliases(s: Settings, warnings: string[]): void {
  for (const f of FLAGS) {
    if (f.aliasOf === undefined || !s.has(f.name)) continue;
    if (s.has(f.aliasOf)) {
      throw new ConfigError(`cannot set --${f.name} and --${f.aliasOf} at the same time, please use --${f.aliasOf} only`, f.name);
    }
    warnings.push(`--${f.name} is deprecated in v3.6 and will be decommissioned in v3.7. Use '--${f.aliasOf}' instead.`);
  }
}

/** Not-supported-yet flags with non-default values throw; no-op flags warn. */
function refuseUnsupported(s: Settings, warnings: string[]): void {
  for (const [name, setting] of s.set) {
    const f = specOf(name);
    if (f.status === "refused" && !isDefault(f, setting.value)) {
      throw new ConfigError(`--${name}=${setting.raw} (${where(setting.source)}) is not supported yet: ${f.note}`, name);
    }
    if (f.status === "noop" && name !== "feature-gates") {
      warnings.push(`--${name} has no effect in etcd-ts (${f.note}); ignored`);
    }
    if (f.status === "legacy") warnings.push(`flag "-${name}" is no longer supported - ignoring.`);
  }
  const gates = s.set.get("feature-gates");
  if (gates !== undefined) checkFeatureGates(gates, warnings);

  const token = s.set.get("auth-token");
  if (token !== undefined && token.value.t === "str" && token.value.v !== "simple") {
    const type = token.value.v.split(",")[0] ?? "";
    if (type === "jwt") {
      throw new ConfigError(`--auth-token=${token.raw} (${where(token.source)}) is not supported yet: JWT tokens are not implemented; use 'simple'`, "auth-token");
    }
    throw new ConfigError(`invalid value ${JSON.stringify(token.raw)} for --auth-token: unknown token type ${JSON.stringify(type)} (supported: simple)`, "auth-token");
  }

  for (const name of ["listen-client-urls", "advertise-client-urls", "listen-peer-urls", "initial-advertise-peer-urls", "listen-metrics-urls"]) {
    for (const u of s.list(name)) refuseScheme(name, u);
  }
}

function refuseScheme(flag: string, url: string): void {
  const scheme = url.slice(0, url.indexOf(":"));
  if (scheme === "http") return;
  const why = scheme === "https" || scheme === "unixs" ? TLS : "unix sockets are not implemented yet";
  throw new ConfigError(`--${flag}: ${scheme}:// URLs are not supported yet (${why}): ${url}`, flag);
}

/** --feature-gates=Name=bool,... as etcd 3.6's feature gate. */
function checkFeatureGates(setting: Setting, warnings: string[]): void {
  if (setting.value.t !== "str") return;
  for (const part of setting.value.v.split(",")) {
    const item = part.trim();
    if (item === "") continue;
    const [name = "", rawValue] = item.split("=", 2).map((x) => x.trim());
    if (rawValue === undefined) throw new ConfigError(`--feature-gates: missing bool value for ${name}`, "feature-gates");
    const gate = FEATURE_GATES.get(name);
    if (gate === undefined) throw new ConfigError(`--feature-gates: unrecognized feature gate: ${name}`, "feature-gates");
    const on = goParseBool(rawValue);
    if (on === undefined) throw new ConfigError(`--feature-gates: invalid value of ${name}=${rawValue}, expected true or false`, "feature-gates");
    if (on === gate.def) continue;
    if (gate.refuse !== undefined) {
      throw new ConfigError(`--feature-gates=${name}=${rawValue} (${where(setting.source)}) is not supported yet: ${gate.refuse}`, "feature-gates");
    }
    warnings.push(`--feature-gates ${name}=${rawValue} has no effect in etcd-ts (${gate.noop ?? ""}); ignored`);
  }
}

/** A non-negative integer that fits a JS number (ms, counts, bytes). */
function num(s: Settings, name: string): number {
  const v = s.int(name);
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ConfigError(`invalid value ${JSON.stringify(s.raw(name))} for --${name}: value out of range`, name);
  }
  return Number(v);
}

/** A non-negative duration flag, in ms. */
function ms(s: Settings, name: string): number {
  const ns = s.ns(name);
  if (ns < 0n) throw new ConfigError(`invalid value ${JSON.stringify(s.raw(name))} for --${name}: must not be negative`, name);
  return Number(ns) / 1e6;
}

/** The supported flag or its deprecated experimental- spelling, whichever is set. */
function aliased(s: Settings, name: string): string {
  const alt = `experimental-${name}`;
  return s.has(alt) && BY_NAME.get(alt)?.aliasOf === name ? alt : name;
}

/** Builds Config and applies etcd's validation (embed.Config.Validate, in its order). */
function buildConfig(s: Settings, configFile: string | null, warnings: string[]): Config {
  // logging (etcd validates it first)
  const logger = s.str("logger");
  if (logger === "capnslog") throw new ConfigError(`--logger=capnslog is removed in v3.5; use --logger=zap`, "logger");
  if (logger !== "zap") throw new ConfigError(`unknown Logger option ${JSON.stringify(logger)} for --logger (supported: zap)`, "logger");
  const level = s.str("log-level");
  if (!isLogLevel(level)) {
    throw new ConfigError(`invalid value ${JSON.stringify(level)} for --log-level: only supports debug, info, warn, error, panic, or fatal`, "log-level");
  }
  let logLevel: LogLevel = level;
  if (s.has("debug")) {
    warnings.push(`--debug is deprecated (removed in etcd v3.5); use '--log-level=debug' instead`);
    if (s.bool("debug") && !s.has("log-level")) logLevel = "debug";
  }
  const outputs = s.list("log-outputs").length === 0 ? ["default"] : s.list("log-outputs");
  if (outputs.length > 1 && outputs.includes("default")) {
    throw new ConfigError(`--log-outputs: multi logoutput for "default" is not supported yet`, "log-outputs");
  }
  const logOutputs: LogOutput[] = [];
  for (const o of outputs) {
    if (o !== "default" && o !== "stderr" && o !== "stdout") {
      throw new ConfigError(`--log-outputs=${o} is not supported yet: only default, stderr and stdout are implemented (no log files or journald)`, "log-outputs");
    }
    logOutputs.push(o);
  }
  const logFormat = s.str("log-format");
  if (logFormat !== "json" && logFormat !== "console") {
    throw new ConfigError(`invalid value ${JSON.stringify(logFormat)} for --log-format: only supports json or console`, "log-format");
  }
  const metricsRaw = s.str("metrics");
  const metrics = metricsRaw === "extensive" ? "extensive" : "basic";
  if (metricsRaw !== "basic" && metricsRaw !== "extensive") warnings.push(`unknown --metrics=${JSON.stringify(metricsRaw)}; using basic`);

  // URLs
  const listenPeerUrls = s.list("listen-peer-urls");
  const listenClientUrls = s.list("listen-client-urls");
  const listenMetricsUrls = s.list("listen-metrics-urls");
  for (const [flag, urls] of [["listen-peer-urls", listenPeerUrls], ["listen-client-urls", listenClientUrls], ["listen-metrics-urls", listenMetricsUrls]] as const) {
    for (const u of urls) checkBindUrl(flag, u);
  }
  const initialAdvertisePeerUrls = s.list("initial-advertise-peer-urls");
  const advertiseClientUrls = s.list("advertise-client-urls");
  for (const [flag, urls] of [["initial-advertise-peer-urls", initialAdvertisePeerUrls], ["advertise-client-urls", advertiseClientUrls]] as const) {
    for (const u of urls) {
      const hp = u.startsWith("http") ? splitHostPort(u.slice(u.indexOf("//") + 2)) : undefined;
      if (hp !== undefined && hp.host === "") {
        throw new ConfigError(`--${flag} ${JSON.stringify(urls.join(","))} must be "host:port" (unexpected empty host (${u}))`, flag);
      }
    }
  }

  // cluster
  const name = s.str("name");
  const state = s.str("initial-cluster-state");
  const initialClusterState = state === "existing" ? "existing" : "new";
  const initialCluster = s.has("initial-cluster")
    ? s.str("initial-cluster")
    : initialAdvertisePeerUrls.map((u) => `${name}=${u}`).join(",");
  const initialClusterMembers = parseInitialCluster(initialCluster);

  // raft timing
  const heartbeatInterval = num(s, "heartbeat-interval");
  const electionTimeout = num(s, "election-timeout");
  if (heartbeatInterval === 0) throw new ConfigError(`--heartbeat-interval must be >0 (set to 0ms)`, "heartbeat-interval");
  if (electionTimeout === 0) throw new ConfigError(`--election-timeout must be >0 (set to 0ms)`, "election-timeout");
  if (5 * heartbeatInterval > electionTimeout) {
    throw new ConfigError(
      `--election-timeout[${electionTimeout}ms] should be at least as 5 times as --heartbeat-interval[${heartbeatInterval}ms]`,
      "election-timeout",
    );
  }
  if (electionTimeout > MAX_ELECTION_MS) {
    throw new ConfigError(`--election-timeout[${electionTimeout}ms] is too long, and should be set less than ${MAX_ELECTION_MS}ms`, "election-timeout");
  }

  // etcd: an explicit --listen-client-urls (flag or ETCD_ variable, even with
  // the default value) needs an explicit --advertise-client-urls. Not checked
  // for a config file, where the advertise default stays.
  if (configFile === null && s.has("listen-client-urls") && !s.has("advertise-client-urls")) {
    throw new ConfigError(`--advertise-client-urls is required when --listen-client-urls is set explicitly`, "advertise-client-urls");
  }

  // compaction
  const mode = s.str("auto-compaction-mode");
  if (mode === "") throw new ConfigError(`undefined auto-compaction-mode`, "auto-compaction-mode");
  if (mode !== "periodic" && mode !== "revision") {
    throw new ConfigError(`unknown auto-compaction-mode ${JSON.stringify(mode)} for --auto-compaction-mode (supported: periodic, revision)`, "auto-compaction-mode");
  }
  const retention = s.str("auto-compaction-retention");
  const autoCompactionRetentionParsed = parseRetention(mode, retention === "" ? "0" : retention);

  // quota
  const quotaBackendBytes = s.int("quota-backend-bytes");
  const quotaBackendBytesEffective = quotaBackendBytes === 0n ? DEFAULT_QUOTA : quotaBackendBytes < 0n ? null : quotaBackendBytes;
  if (quotaBackendBytes > MAX_QUOTA) warnings.push(`--quota-backend-bytes=${quotaBackendBytes} exceeds the suggested maximum of ${MAX_QUOTA} (8 GiB)`);

  // auth
  let bcryptCost = num(s, "bcrypt-cost");
  if (bcryptCost < 4 || bcryptCost > 31) {
    warnings.push(`Use default bcrypt-cost 10 instead of the invalid value ${bcryptCost}`);
    bcryptCost = 10;
  }

  const enablePprof = s.bool("enable-pprof");
  if (enablePprof) warnings.push(`--enable-pprof has no effect in etcd-ts (there are no Go pprof endpoints)`);

  const maxLearners = s.int(aliased(s, "max-learners"));
  if (maxLearners < 0n || maxLearners > 1_000_000n) throw new ConfigError(`invalid value ${JSON.stringify(s.raw(aliased(s, "max-learners")))} for --max-learners: value out of range`, "max-learners");
  const batch = s.int(aliased(s, "compaction-batch-limit"));
  if (batch > BigInt(Number.MAX_SAFE_INTEGER) || batch < BigInt(Number.MIN_SAFE_INTEGER)) throw new ConfigError(`invalid value for --compaction-batch-limit: value out of range`, "compaction-batch-limit");
  const progress = ms(s, aliased(s, "watch-progress-notify-interval"));

  const dataDir = s.str("data-dir");
  return {
    name,
    dataDir: dataDir === "" ? `${name}.etcd` : dataDir,
    walDir: s.str("wal-dir"),
    listenClientUrls,
    advertiseClientUrls,
    listenPeerUrls,
    initialAdvertisePeerUrls,
    listenMetricsUrls,
    initialCluster,
    initialClusterMembers,
    initialClusterState,
    initialClusterToken: s.str("initial-cluster-token"),
    heartbeatInterval,
    electionTimeout,
    initialElectionTickAdvance: s.bool("initial-election-tick-advance"),
    preVote: s.bool("pre-vote"),
    strictReconfigCheck: s.bool("strict-reconfig-check"),
    maxLearners: Number(maxLearners),
    snapshotCount: s.int("snapshot-count"),
    snapshotCatchUpEntries: s.int(aliased(s, "snapshot-catchup-entries")),
    quotaBackendBytes,
    quotaBackendBytesEffective,
    maxRequestBytes: num(s, "max-request-bytes"),
    maxTxnOps: num(s, "max-txn-ops"),
    maxConcurrentStreams: num(s, "max-concurrent-streams"),
    grpcKeepaliveMinTime: ms(s, "grpc-keepalive-min-time"),
    grpcKeepaliveInterval: ms(s, "grpc-keepalive-interval"),
    grpcKeepaliveTimeout: ms(s, "grpc-keepalive-timeout"),
    enableGrpcGateway: s.bool("enable-grpc-gateway"),
    autoCompactionMode: mode,
    autoCompactionRetention: retention,
    autoCompactionRetentionParsed,
    compactionBatchLimit: Number(batch),
    watchProgressNotifyInterval: progress === 0 ? 600_000 : progress,
    authToken: "simple",
    authTokenTtl: num(s, "auth-token-ttl"),
    bcryptCost,
    logger: "zap",
    logLevel,
    logOutputs,
    logFormat,
    metrics,
    enablePprof,
    unsafeNoFsync: s.bool("unsafe-no-fsync"),
    configFile,
  };
}

/** etcd's checkBindURLs: listen hosts must be IP addresses or "localhost". */
function checkBindUrl(flag: string, url: string): void {
  if (!url.startsWith("http")) return;
  const hp = splitHostPort(url.slice(url.indexOf("//") + 2));
  const host = hp?.host ?? "";
  if (host === "localhost" || isIP(host) !== 0) return;
  throw new ConfigError(`--${flag}: expected IP in URL for binding (${url})`, flag);
}

/** name=url,name=url (types.NewURLsMap); members in first-appearance order. */
function parseInitialCluster(raw: string): readonly InitialClusterMember[] {
  const byName = new Map<string, string[]>();
  for (const part of raw.split(",")) {
    const entry = part.trim();
    if (entry === "") continue;
    const eq = entry.indexOf("=");
    if (eq <= 0) {
      throw new ConfigError(`invalid value ${JSON.stringify(raw)} for --initial-cluster: entry ${JSON.stringify(entry)} must have the form name=url`, "initial-cluster");
    }
    const r = checkUrl(entry.slice(eq + 1));
    if ("err" in r) throw new ConfigError(`invalid value ${JSON.stringify(raw)} for --initial-cluster: ${r.err}`, "initial-cluster");
    refuseScheme("initial-cluster", r.ok);
    const name = entry.slice(0, eq);
    byName.set(name, [...(byName.get(name) ?? []), r.ok]);
  }
  return [...byName].map(([name, urls]) => ({ name, peerUrls: [...new Set(urls.sort())] }));
}

/** etcd's retention parsing (embed.StartEtcd), stricter on nonsense (see README). */
function parseRetention(mode: "periodic" | "revision", raw: string): AutoCompactionRetention {
  const bad = (why: string) => new ConfigError(`invalid value ${JSON.stringify(raw)} for --auto-compaction-retention: ${why}`, "auto-compaction-retention");
  const integer = /^\+?[0-9]+$/.test(raw) ? BigInt(raw.replace("+", "")) : undefined;
  if (mode === "revision") {
    if (integer === undefined) throw bad("revision mode takes a non-negative number of revisions");
    if (integer > MAX_INT64) throw bad("value out of range");
    return { mode, revisions: integer };
  }
  if (integer !== undefined) {
    const hours = Number(integer);
    if (!Number.isSafeInteger(hours * 3_600_000)) throw bad("value out of range");
    return { mode, ms: hours * 3_600_000 };
  }
  const d = parseGoDuration(raw);
  if (typeof d === "string") throw bad(`${d} (periodic mode takes hours as a bare integer, or a duration such as 5m, 1h30m)`);
  if (d < 0n) throw bad("must not be negative");
  return { mode, ms: Number(d) / 1e6 };
}

/**
 * etcd's checks when a NEW member bootstraps (fresh data dir): this member's
 * name must be in --initial-cluster, with exactly its advertised peer URLs.
 * etcd skips them on restart, so the server calls this only on first start.
 * URLs are compared as normalised strings (etcd also resolves host names).
 */
export function checkInitialClusterForBootstrap(c: Config): void {
  const me = c.initialClusterMembers.find((m) => m.name === c.name);
  if (me === undefined) {
    throw new ConfigError(`couldn't find local name ${JSON.stringify(c.name)} in the initial cluster configuration`, "initial-cluster");
  }
  const want = [...c.initialAdvertisePeerUrls].sort().join(",");
  const got = me.peerUrls.join(",");
  if (want !== got) {
    throw new ConfigError(
      `--initial-cluster has ${c.name}=${got} but missing from --initial-advertise-peer-urls=${want} (resolved urls: ${JSON.stringify(want)} != ${JSON.stringify(got)})`,
      "initial-cluster",
    );
  }
}

// ---------------------------------------------------------------------------
// --help

function helpText(): string {
  const lines = [
    "Usage:",
    "",
    "  etcdts [flags]",
    "    Start an etcd-ts server (etcd v3 compatible).",
    "",
    "  etcdts --version",
    "    Show the version of etcd-ts.",
    "",
    "  etcdts -h | --help",
    "    Show the help information about etcd-ts.",
    "",
    "Flags are etcd's: --flag=value or --flag value (booleans: --flag or --flag=false).",
    "Each flag can also be set as ETCD_<FLAG> (e.g. ETCD_DATA_DIR); a variable and a flag for the same setting conflict.",
    "With --config-file (or ETCD_CONFIG_FILE), the YAML file is the only source.",
    "",
    "Supported flags:",
  ];
  for (const f of FLAGS) {
    if (f.status !== "supported" || f.aliasOf !== undefined) continue;
    lines.push(`  --${f.name} '${f.def}'`, `    ${f.note}`);
  }
  const list = (status: Status) => FLAGS.filter((f) => f.status === status && f.name !== "feature-gates").map((f) => `--${f.name}`);
  const gates = (refuse: boolean) => [...FEATURE_GATES].filter(([, g]) => (g.refuse !== undefined) === refuse).map(([n]) => n);
  lines.push(
    "",
    "Accepted for compatibility, no effect in etcd-ts (a warning is logged):",
    ...wrap(list("noop")),
    `  --feature-gates with ${gates(false).join(", ")}`,
    "",
    "Not supported yet (an error unless left at etcd's default):",
    ...wrap(list("refused")),
    `  --feature-gates with ${gates(true).join(", ")} enabled`,
    "",
  );
  return lines.join("\n");
}

function wrap(words: readonly string[]): string[] {
  const out: string[] = [];
  let line = " ";
  for (const w of words) {
    if (line.length + w.length + 1 > 100) {
      out.push(line);
      line = " ";
    }
    line += ` ${w}`;
  }
  if (line.trim() !== "") out.push(line);
  return out;
}
