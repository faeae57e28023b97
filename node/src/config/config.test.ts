// Tests for node/src/config/config.ts. Expected texts and behaviours were
// checked against the etcd 3.4.23 binary where etcd has them (see README.md).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkInitialClusterForBootstrap, ConfigError, loadConfig, parseGoDuration, type Config } from "./config.js";

type Run = { readonly config: Config; readonly warnings: readonly string[] };

function run(argv: readonly string[], env: NodeJS.ProcessEnv = {}): Run {
  const r = loadConfig(argv, env);
  if (r.kind !== "run") throw new Error(`expected kind "run", got ${r.kind}`);
  return r;
}

/** Asserts loadConfig throws a ConfigError matching `message`, for `flag`, with `exitCode`. */
function fails(argv: readonly string[], env: NodeJS.ProcessEnv, message: RegExp | string, flag?: string, exitCode: 1 | 2 = 1): ConfigError {
  let caught: unknown;
  try {
    loadConfig(argv, env);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError for ${JSON.stringify(argv)}, got ${String(caught)}`);
  if (typeof message === "string") assert.equal(caught.message, message);
  else assert.match(caught.message, message);
  if (flag !== undefined) assert.equal(caught.flag, flag);
  assert.equal(caught.exitCode, exitCode);
  return caught;
}

const dir = mkdtempSync(join(tmpdir(), "etcdts-config-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;
function yamlFile(text: string): string {
  const path = join(dir, `c${++fileCount}.yaml`);
  writeFileSync(path, text);
  return path;
}

const DEFAULTS: Config = {
  name: "default",
  dataDir: "default.etcd",
  walDir: "",
  listenClientUrls: ["http://localhost:2379"],
  advertiseClientUrls: ["http://localhost:2379"],
  listenPeerUrls: ["http://localhost:2380"],
  initialAdvertisePeerUrls: ["http://localhost:2380"],
  listenMetricsUrls: [],
  initialCluster: "default=http://localhost:2380",
  initialClusterMembers: [{ name: "default", peerUrls: ["http://localhost:2380"] }],
  initialClusterState: "new",
  initialClusterToken: "etcd-cluster",
  heartbeatInterval: 100,
  electionTimeout: 1000,
  initialElectionTickAdvance: true,
  preVote: true,
  strictReconfigCheck: true,
  maxLearners: 1,
  snapshotCount: 10000n,
  snapshotCatchUpEntries: 5000n,
  quotaBackendBytes: 0n,
  quotaBackendBytesEffective: 2147483648n,
  maxRequestBytes: 1572864,
  maxTxnOps: 128,
  maxConcurrentStreams: 4294967295,
  grpcKeepaliveMinTime: 5000,
  grpcKeepaliveInterval: 7200000,
  grpcKeepaliveTimeout: 20000,
  enableGrpcGateway: true,
  autoCompactionMode: "periodic",
  autoCompactionRetention: "0",
  autoCompactionRetentionParsed: { mode: "periodic", ms: 0 },
  compactionBatchLimit: 1000,
  watchProgressNotifyInterval: 600000,
  authToken: "simple",
  authTokenTtl: 300,
  bcryptCost: 10,
  logger: "zap",
  logLevel: "info",
  logOutputs: ["default"],
  logFormat: "json",
  metrics: "basic",
  enablePprof: false,
  unsafeNoFsync: false,
  configFile: null,
};

describe("defaults", () => {
  test("no flags, no env: etcd's defaults and no warnings", () => {
    const r = run([]);
    assert.deepEqual(r.config, DEFAULTS);
    assert.deepEqual(r.warnings, []);
  });
  test("non-ETCD variables are not read", () => {
    assert.deepEqual(run([], { PATH: "/bin", ETCDCTL_ENDPOINTS: "x", HOME: "/root" }).config, DEFAULTS);
  });
  test("data-dir and initial-cluster derive from --name", () => {
    const c = run(["--name", "n1"]).config;
    assert.equal(c.dataDir, "n1.etcd");
    assert.equal(c.initialCluster, "n1=http://localhost:2380");
    assert.deepEqual(c.initialClusterMembers, [{ name: "n1", peerUrls: ["http://localhost:2380"] }]);
  });
  test("initial-cluster derives from the advertised peer URLs, sorted", () => {
    const c = run(["--name=a", "--initial-advertise-peer-urls=http://127.0.0.2:2380,http://127.0.0.1:2380"]).config;
    assert.deepEqual(c.initialAdvertisePeerUrls, ["http://127.0.0.1:2380", "http://127.0.0.2:2380"]);
    assert.equal(c.initialCluster, "a=http://127.0.0.1:2380,a=http://127.0.0.2:2380");
    assert.deepEqual(c.initialClusterMembers, [{ name: "a", peerUrls: ["http://127.0.0.1:2380", "http://127.0.0.2:2380"] }]);
  });
  test("an empty --data-dir means the default", () => {
    assert.equal(run(["--data-dir="]).config.dataDir, "default.etcd");
  });
});

describe("command-line syntax (Go flag package)", () => {
  test("--flag=value, --flag value, -flag value, -flag=value", () => {
    assert.equal(run(["--name=a"]).config.name, "a");
    assert.equal(run(["--name", "b"]).config.name, "b");
    assert.equal(run(["-name", "c"]).config.name, "c");
    assert.equal(run(["-name=d"]).config.name, "d");
  });
  test("a value may start with a dash and contain '='", () => {
    assert.equal(run(["--name", "-x"]).config.name, "-x");
    assert.equal(run(["--initial-cluster-token=a=b"]).config.initialClusterToken, "a=b");
  });
  test("booleans: --flag, --flag=true|false, Go spellings", () => {
    assert.equal(run(["--enable-pprof"]).config.enablePprof, true);
    assert.equal(run(["-enable-pprof=true"]).config.enablePprof, true);
    assert.equal(run(["--enable-grpc-gateway=false"]).config.enableGrpcGateway, false);
    assert.equal(run(["--enable-grpc-gateway=0"]).config.enableGrpcGateway, false);
    assert.equal(run(["--pre-vote=F"]).config.preVote, false);
    assert.equal(run(["--unsafe-no-fsync=TRUE"]).config.unsafeNoFsync, true);
  });
  test("a boolean does not take the next argument", () => {
    fails(["--enable-pprof", "false"], {}, '"false" is not a valid flag', undefined, 1);
  });
  test("the last occurrence wins", () => {
    assert.equal(run(["--name=a", "--name=b"]).config.name, "b");
  });
  test("-- ends the flags; what follows is an error", () => {
    assert.equal(run(["--name=a", "--"]).config.name, "a");
    fails(["--", "--name=a"], {}, '"--name=a" is not a valid flag');
  });
  test("positional arguments are refused", () => {
    fails(["extra"], {}, '"extra" is not a valid flag');
    fails(["--name", "a", "b"], {}, '"b" is not a valid flag');
  });
  test("Go base-0 integers", () => {
    const c = run(["--heartbeat-interval=0x10", "--election-timeout=1_000", "--max-txn-ops=010", "--auth-token-ttl=0b101"]).config;
    assert.equal(c.heartbeatInterval, 16);
    assert.equal(c.electionTimeout, 1000);
    assert.equal(c.maxTxnOps, 8);
    assert.equal(c.authTokenTtl, 5);
  });
  test("unknown flag: etcd's message, exit 2", () => {
    fails(["--foo"], {}, "flag provided but not defined: -foo", "foo", 2);
    fails(["-foo=1"], {}, "flag provided but not defined: -foo", "foo", 2);
  });
  test("bad flag syntax and missing argument", () => {
    fails(["---name=x"], {}, "bad flag syntax: ---name=x", undefined, 2);
    fails(["-=x"], {}, "bad flag syntax: -=x", undefined, 2);
    fails(["--name"], {}, "flag needs an argument: -name", "name", 2);
  });
  test("--help, -h, -help return the help text", () => {
    for (const h of ["--help", "-h", "-help", "--h"]) {
      const r = loadConfig(["--name=x", h, "--bogus"], {});
      assert.equal(r.kind, "help");
      if (r.kind === "help") {
        assert.match(r.text, /^Usage:/);
        assert.match(r.text, /--listen-client-urls 'http:\/\/localhost:2379'/);
        assert.match(r.text, /--cert-file/);
      }
    }
  });
  test("a flag error before --help wins, as in Go", () => {
    fails(["--bogus", "--help"], {}, "flag provided but not defined: -bogus", "bogus", 2);
  });
  test("--version", () => {
    assert.deepEqual(loadConfig(["--version"], {}), { kind: "version" });
    assert.deepEqual(loadConfig(["-version", "--heartbeat-interval=9999"], {}), { kind: "version" });
    assert.equal(run(["--version=false"]).config.name, "default");
  });
  test("etcd subcommands are refused", () => {
    fails(["gateway", "start"], {}, "etcd gateway is not supported yet");
    fails(["grpc-proxy", "start"], {}, "etcd grpc-proxy is not supported yet");
  });
});

describe("environment variables", () => {
  test("ETCD_<FLAG> sets the flag", () => {
    const c = run([], {
      ETCD_NAME: "e1",
      ETCD_DATA_DIR: "/var/lib/etcd",
      ETCD_LISTEN_CLIENT_URLS: "http://127.0.0.1:2379,http://localhost:2379",
      ETCD_ADVERTISE_CLIENT_URLS: "http://10.0.0.1:2379",
      ETCD_HEARTBEAT_INTERVAL: "50",
      ETCD_SNAPSHOT_COUNT: "18446744073709551615",
      ETCD_QUOTA_BACKEND_BYTES: "-1",
      ETCD_ENABLE_GRPC_GATEWAY: "false",
      ETCD_GRPC_KEEPALIVE_TIMEOUT: "1m30s",
      ETCD_LOG_LEVEL: "debug",
    }).config;
    assert.equal(c.name, "e1");
    assert.equal(c.dataDir, "/var/lib/etcd");
    assert.deepEqual(c.listenClientUrls, ["http://127.0.0.1:2379", "http://localhost:2379"]);
    assert.deepEqual(c.advertiseClientUrls, ["http://10.0.0.1:2379"]);
    assert.equal(c.heartbeatInterval, 50);
    assert.equal(c.snapshotCount, 18446744073709551615n);
    assert.equal(c.quotaBackendBytes, -1n);
    assert.equal(c.quotaBackendBytesEffective, null);
    assert.equal(c.enableGrpcGateway, false);
    assert.equal(c.grpcKeepaliveTimeout, 90000);
    assert.equal(c.logLevel, "debug");
    assert.equal(c.initialCluster, "e1=http://localhost:2380");
  });
  test("a bad value names the variable", () => {
    fails([], { ETCD_HEARTBEAT_INTERVAL: "abc" }, 'invalid value "abc" for ETCD_HEARTBEAT_INTERVAL: parse error (expected an unsigned integer)', "heartbeat-interval");
    fails([], { ETCD_ENABLE_PPROF: "maybe" }, /^invalid value "maybe" for ETCD_ENABLE_PPROF: parse error/, "enable-pprof");
  });
  test("empty values are ignored (with a warning)", () => {
    const r = run([], { ETCD_NAME: "" });
    assert.equal(r.config.name, "default");
    assert.deepEqual(r.warnings, ["ignoring empty environment variable ETCD_NAME"]);
  });
  test("unknown ETCD_ variables are warnings, as in etcd", () => {
    const r = run([], { ETCD_FOO: "bar", ETCD_UNSUPPORTED_ARCH: "arm64" });
    assert.deepEqual(r.warnings, ["unrecognized environment variable ETCD_FOO=bar"]);
  });
  test("ETCD_VERSION is ignored with a warning (etcd 3.5+)", () => {
    const r = run([], { ETCD_VERSION: "true" });
    assert.deepEqual(r.warnings, ["cannot set special environment variable ETCD_VERSION; ignored"]);
  });
  test("refused flags are refused from the environment too", () => {
    fails([], { ETCD_CERT_FILE: "/a.crt" }, '--cert-file=/a.crt (from ETCD_CERT_FILE) is not supported yet: TLS is not implemented yet', "cert-file");
  });
});

describe("config file", () => {
  test("YAML keys are flag names; etcd's value types", () => {
    const path = yamlFile(
      [
        "name: f1",
        "data-dir: /data/f1",
        "wal-dir: /wal/f1",
        "listen-client-urls: http://127.0.0.1:2379,http://localhost:2379",
        "advertise-client-urls: http://10.0.0.5:2379",
        "listen-peer-urls: http://127.0.0.1:2380",
        "initial-advertise-peer-urls: http://10.0.0.5:2380",
        "initial-cluster: f1=http://10.0.0.5:2380",
        "initial-cluster-token: tok",
        "initial-cluster-state: new",
        "heartbeat-interval: 200",
        "election-timeout: 2000",
        "snapshot-count: 5000",
        "quota-backend-bytes: 8589934592",
        "max-request-bytes: 10485760",
        "max-txn-ops: 1024",
        "auto-compaction-mode: revision",
        "auto-compaction-retention: '1000'",
        "grpc-keepalive-min-time: 1000000000", // integer nanoseconds, as etcd
        "grpc-keepalive-interval: 30m", // a Go duration string (etcd-ts extension)
        "enable-grpc-gateway: false",
        "enable-pprof: no", // YAML 1.1 boolean, as go-yaml v2
        "log-level: warn",
        "log-outputs: [stdout]",
        "listen-metrics-urls: http://127.0.0.1:2381",
        "",
      ].join("\n"),
    );
    const r = run(["--config-file", path]);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.config, {
      ...DEFAULTS,
      name: "f1",
      dataDir: "/data/f1",
      walDir: "/wal/f1",
      listenClientUrls: ["http://127.0.0.1:2379", "http://localhost:2379"],
      advertiseClientUrls: ["http://10.0.0.5:2379"],
      listenPeerUrls: ["http://127.0.0.1:2380"],
      initialAdvertisePeerUrls: ["http://10.0.0.5:2380"],
      initialCluster: "f1=http://10.0.0.5:2380",
      initialClusterMembers: [{ name: "f1", peerUrls: ["http://10.0.0.5:2380"] }],
      initialClusterToken: "tok",
      heartbeatInterval: 200,
      electionTimeout: 2000,
      snapshotCount: 5000n,
      quotaBackendBytes: 8589934592n,
      quotaBackendBytesEffective: 8589934592n,
      maxRequestBytes: 10485760,
      maxTxnOps: 1024,
      autoCompactionMode: "revision",
      autoCompactionRetention: "1000",
      autoCompactionRetentionParsed: { mode: "revision", revisions: 1000n },
      grpcKeepaliveMinTime: 1000,
      grpcKeepaliveInterval: 1800000,
      enableGrpcGateway: false,
      enablePprof: false,
      logLevel: "warn",
      logOutputs: ["stdout"],
      listenMetricsUrls: ["http://127.0.0.1:2381"],
      configFile: path,
    });
  });
  test("an empty file gives the defaults", () => {
    const path = yamlFile("# nothing here\n");
    assert.deepEqual(run(["--config-file=" + path]).config, { ...DEFAULTS, configFile: path });
  });
  test("null values leave the default", () => {
    const path = yamlFile("name:\nheartbeat-interval: ~\n");
    assert.equal(run(["--config-file=" + path]).config.name, "default");
  });
  test("listen-client-urls without advertise-client-urls is allowed in a file (as etcd)", () => {
    const path = yamlFile("listen-client-urls: http://127.0.0.1:2379\n");
    const c = run(["--config-file", path]).config;
    assert.deepEqual(c.listenClientUrls, ["http://127.0.0.1:2379"]);
    assert.deepEqual(c.advertiseClientUrls, ["http://localhost:2379"]);
  });
  test("unknown keys are a warning", () => {
    const path = yamlFile("bogus-key: 1\n");
    assert.deepEqual(run(["--config-file", path]).warnings, [`config file ${JSON.stringify(path)}: unknown key "bogus-key" ignored`]);
  });
  test("wrong YAML types are errors naming the key", () => {
    fails(["--config-file", yamlFile("heartbeat-interval: abc\n")], {}, /^invalid value for heartbeat-interval in config file ".*": expected an integer, got string "abc"$/, "heartbeat-interval");
    fails(["--config-file", yamlFile("heartbeat-interval: '100'\n")], {}, /heartbeat-interval .*expected an integer/, "heartbeat-interval");
    fails(["--config-file", yamlFile("auto-compaction-retention: 1\n")], {}, /auto-compaction-retention .*expected a string, got number 1 \(quote the value\)/, "auto-compaction-retention");
    fails(["--config-file", yamlFile("enable-pprof: maybe\n")], {}, /enable-pprof .*expected a boolean/, "enable-pprof");
    fails(["--config-file", yamlFile("grpc-keepalive-min-time: 5x\n")], {}, /grpc-keepalive-min-time .*parse error/, "grpc-keepalive-min-time");
    fails(["--config-file", yamlFile("snapshot-count: -1\n")], {}, /snapshot-count .*parse error/, "snapshot-count");
    fails(["--config-file", yamlFile("listen-client-urls: foo\n")], {}, /listen-client-urls .*URL scheme must be http, https, unix, or unixs: foo/, "listen-client-urls");
  });
  test("bad files", () => {
    fails(["--config-file", join(dir, "missing.yaml")], {}, /^cannot read --config-file ".*missing.yaml": ENOENT/, "config-file");
    fails(["--config-file", yamlFile("- a\n- b\n")], {}, /top level must be a mapping/, "config-file");
    fails(["--config-file", yamlFile("name: a\nname: b\n")], {}, /^cannot parse --config-file/, "config-file");
  });
  test("validation applies to the file", () => {
    fails(["--config-file", yamlFile("heartbeat-interval: 500\n")], {}, "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[500ms]", "election-timeout");
    fails(["--config-file", yamlFile("initial-cluster-state: bogus\n")], {}, /initial-cluster-state.*invalid value/, "initial-cluster-state");
  });
  test("TLS in the file's security sections is refused", () => {
    fails(["--config-file", yamlFile("client-transport-security:\n  cert-file: /a.crt\n")], {}, /^client-transport-security\.cert-file .* is not supported yet: TLS/, "client-transport-security");
    fails(["--config-file", yamlFile("peer-transport-security:\n  client-cert-auth: true\n")], {}, /^peer-transport-security\.client-cert-auth .* is not supported yet/, "peer-transport-security");
    // empty/default sections are fine
    assert.equal(run(["--config-file", yamlFile("client-transport-security:\n  cert-file: ''\n  auto-tls: false\n")]).config.name, "default");
  });
  test("a refused flag name as a key is refused", () => {
    fails(["--config-file", yamlFile("auto-tls: true\n")], {}, /^--auto-tls=true \(in config file ".*"\) is not supported yet: TLS is not implemented yet$/, "auto-tls");
  });
});

describe("precedence", () => {
  test("a flag and its variable together are an error (etcd: not a precedence rule)", () => {
    fails(
      ["--name=y"],
      { ETCD_NAME: "x" },
      'conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)',
      "name",
    );
    // even an empty variable conflicts, as in etcd 3.4
    fails(["--name=y"], { ETCD_NAME: "" }, /conflicting environment variable "ETCD_NAME"/, "name");
  });
  test("flags and variables for different settings combine", () => {
    const c = run(["--name=f"], { ETCD_DATA_DIR: "/d" }).config;
    assert.equal(c.name, "f");
    assert.equal(c.dataDir, "/d");
  });
  test("--config-file: flags and variables are ignored, with a warning", () => {
    const path = yamlFile("name: fromfile\n");
    const r = run(["--config-file", path, "--name=fromflag", "--heartbeat-interval=500"], { ETCD_DATA_DIR: "/fromenv", ETCD_HEARTBEAT_INTERVAL: "abc" });
    assert.equal(r.config.name, "fromfile");
    assert.equal(r.config.dataDir, "fromfile.etcd");
    assert.equal(r.config.heartbeatInterval, 100);
    assert.deepEqual(r.warnings, [
      `loaded server configuration from ${JSON.stringify(path)}; other configuration command line flags and environment variables are ignored: --name, --heartbeat-interval, ETCD_DATA_DIR, ETCD_HEARTBEAT_INTERVAL`,
    ]);
  });
  test("ETCD_CONFIG_FILE selects the file when the flag is absent", () => {
    const path = yamlFile("name: envfile\n");
    const r = run([], { ETCD_CONFIG_FILE: path, ETCD_NAME: "ignored" });
    assert.equal(r.config.name, "envfile");
    assert.equal(r.config.configFile, path);
  });
  test("--config-file beats ETCD_CONFIG_FILE", () => {
    const a = yamlFile("name: a\n");
    const b = yamlFile("name: b\n");
    assert.equal(run(["--config-file", a], { ETCD_CONFIG_FILE: b }).config.name, "a");
  });
  test("with a config file the command line is still checked for syntax", () => {
    const path = yamlFile("name: a\n");
    fails(["--config-file", path, "--foo"], {}, "flag provided but not defined: -foo", "foo", 2);
    fails(["--config-file", path, "--heartbeat-interval=abc"], {}, /^invalid value "abc" for flag -heartbeat-interval: parse error/, "heartbeat-interval", 2);
  });
  test("with a config file, refused flags on the command line are ignored like the rest", () => {
    const path = yamlFile("name: a\n");
    const r = run(["--config-file", path, "--cert-file=x"]);
    assert.equal(r.config.name, "a");
    assert.match(r.warnings[0] ?? "", /ignored: --cert-file$/);
  });
});

describe("refused (not supported yet)", () => {
  // [flag, a non-default value, etcd's default]
  const REFUSED: ReadonlyArray<readonly [string, string, string | null]> = [
    ["cert-file", "/s.crt", ""],
    ["key-file", "/s.key", ""],
    ["client-cert-auth", "true", "false"],
    ["client-cert-file", "/c.crt", ""],
    ["client-key-file", "/c.key", ""],
    ["client-crl-file", "/c.crl", ""],
    ["client-cert-allowed-hostname", "a.example", ""],
    ["trusted-ca-file", "/ca.crt", ""],
    ["auto-tls", "true", "false"],
    ["peer-cert-file", "/p.crt", ""],
    ["peer-key-file", "/p.key", ""],
    ["peer-client-cert-auth", "true", "false"],
    ["peer-trusted-ca-file", "/ca.crt", ""],
    ["peer-cert-allowed-cn", "etcd", ""],
    ["peer-cert-allowed-hostname", "a.example", ""],
    ["peer-auto-tls", "true", "false"],
    ["peer-client-cert-file", "/pc.crt", ""],
    ["peer-client-key-file", "/pc.key", ""],
    ["peer-crl-file", "/p.crl", ""],
    ["self-signed-cert-validity", "2", "1"],
    ["cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", ""],
    ["tls-min-version", "TLS1.3", "TLS1.2"],
    ["tls-max-version", "TLS1.3", ""],
    ["peer-skip-client-san-verification", "true", "false"],
    ["experimental-peer-skip-client-san-verification", "true", "false"],
    ["discovery", "https://discovery.etcd.io/abc", ""],
    ["discovery-proxy", "http://proxy:8080", ""],
    ["discovery-srv", "example.com", ""],
    ["discovery-srv-name", "x", ""],
    ["discovery-endpoints", "http://127.0.0.1:2379", ""],
    ["discovery-token", "tok", ""],
    ["discovery-dial-timeout", "3s", "2s"],
    ["discovery-request-timeout", "3s", "5s"],
    ["discovery-keepalive-time", "3s", "2s"],
    ["discovery-keepalive-timeout", "3s", "6s"],
    ["discovery-insecure-transport", "false", "true"],
    ["discovery-insecure-skip-tls-verify", "true", "false"],
    ["discovery-cert", "/d.crt", ""],
    ["discovery-key", "/d.key", ""],
    ["discovery-cacert", "/d.ca", ""],
    ["discovery-user", "u", ""],
    ["discovery-password", "p", ""],
    ["enable-v2", "true", "false"],
    ["experimental-enable-v2v3", "/v2/", ""],
    ["proxy", "on", "off"],
    ["proxy-failure-wait", "1", "5000"],
    ["proxy-refresh-interval", "1", "30000"],
    ["proxy-dial-timeout", "1", "1000"],
    ["proxy-write-timeout", "1", "5000"],
    ["proxy-read-timeout", "1", "0"],
    ["force-new-cluster", "true", "false"],
    ["listen-client-http-urls", "http://127.0.0.1:2390", ""],
    ["socket-reuse-port", "true", "false"],
    ["socket-reuse-address", "true", "false"],
    ["cors", "http://example.com", "*"],
    ["host-whitelist", "example.com", "*"],
    ["enable-distributed-tracing", "true", "false"],
    ["experimental-enable-distributed-tracing", "true", "false"],
    ["enable-log-rotation", "true", "false"],
    ["experimental-enable-lease-checkpoint", "true", "false"],
    ["experimental-enable-lease-checkpoint-persist", "true", "false"],
    ["experimental-stop-grpc-service-on-defrag", "true", "false"],
    ["auth-token", "jwt,pub-key=a.pub,priv-key=a.key,sign-method=RS256", "simple"],
  ];
  for (const [flag, value, def] of REFUSED) {
    test(`--${flag}`, () => {
      const e = fails([`--${flag}=${value}`], {}, /is not supported yet/, flag);
      assert.ok(e.message.startsWith(`--${flag}=${value} (on the command line) is not supported yet: `), e.message);
      if (def !== null) assert.equal(run([`--${flag}=${def}`]).config.name, "default", "the default value is accepted");
    });
  }
  test("--auth-token: an unknown type is invalid, not unsupported", () => {
    fails(["--auth-token=bogus"], {}, 'invalid value "bogus" for --auth-token: unknown token type "bogus" (supported: simple)', "auth-token");
  });
  test("cors/host-whitelist: '' and '*' both mean allow all", () => {
    assert.equal(run(["--cors=", "--host-whitelist=*"]).config.name, "default");
  });
  test("https, unix and unixs URLs", () => {
    fails(["--listen-client-urls=https://127.0.0.1:2379", "--advertise-client-urls=https://127.0.0.1:2379"], {}, "--listen-client-urls: https:// URLs are not supported yet (TLS is not implemented yet): https://127.0.0.1:2379", "listen-client-urls");
    fails(["--advertise-client-urls=https://a:2379"], {}, /^--advertise-client-urls: https:\/\/ URLs are not supported yet/, "advertise-client-urls");
    fails(["--listen-peer-urls=unix://sock"], {}, /^--listen-peer-urls: unix:\/\/ URLs are not supported yet \(unix sockets/, "listen-peer-urls");
    fails(["--listen-metrics-urls=unixs://sock"], {}, /^--listen-metrics-urls: unixs:\/\/ URLs are not supported yet \(TLS/, "listen-metrics-urls");
    fails(["--initial-cluster=default=https://localhost:2380"], {}, /^--initial-cluster: https:\/\/ URLs are not supported yet/, "initial-cluster");
  });
  test("clustering: several members, new or existing", () => {
    const c = run(["--initial-cluster=a=http://10.0.0.1:2380,b=http://10.0.0.2:2380", "--name=a", "--initial-advertise-peer-urls=http://10.0.0.1:2380"]).config;
    assert.deepEqual(c.initialClusterMembers, [
      { name: "a", peerUrls: ["http://10.0.0.1:2380"] },
      { name: "b", peerUrls: ["http://10.0.0.2:2380"] },
    ]);
    assert.equal(run(["--initial-cluster-state=existing"]).config.initialClusterState, "existing");
  });
  test("one member with several peer URLs is not clustering", () => {
    const c = run(["--initial-cluster=default=http://localhost:2380,default=http://127.0.0.1:2380"]).config;
    assert.deepEqual(c.initialClusterMembers, [{ name: "default", peerUrls: ["http://127.0.0.1:2380", "http://localhost:2380"] }]);
  });
  test("feature gates", () => {
    fails(["--feature-gates=StopGRPCServiceOnDefrag=true"], {}, /^--feature-gates=StopGRPCServiceOnDefrag=true \(on the command line\) is not supported yet/, "feature-gates");
    fails(["--feature-gates=LeaseCheckpointPersist=true"], {}, /is not supported yet: lease checkpointing/, "feature-gates");
    fails(["--feature-gates=Bogus=true"], {}, "--feature-gates: unrecognized feature gate: Bogus", "feature-gates");
    fails(["--feature-gates=InitialCorruptCheck"], {}, "--feature-gates: missing bool value for InitialCorruptCheck", "feature-gates");
    const r = run(["--feature-gates=InitialCorruptCheck=true,StopGRPCServiceOnDefrag=false"]);
    assert.deepEqual(r.warnings, ["--feature-gates InitialCorruptCheck=true has no effect in etcd-ts (a single member has no peers to compare with); ignored"]);
  });
});

describe("bad values name the flag and the value", () => {
  test("bad integers", () => {
    fails(["--heartbeat-interval=abc"], {}, 'invalid value "abc" for flag -heartbeat-interval: parse error (expected an unsigned integer)', "heartbeat-interval", 2);
    fails(["--snapshot-count=-1"], {}, 'invalid value "-1" for flag -snapshot-count: parse error (expected an unsigned integer)', "snapshot-count", 2);
    fails(["--quota-backend-bytes=1.5"], {}, 'invalid value "1.5" for flag -quota-backend-bytes: parse error (expected an integer)', "quota-backend-bytes", 2);
    fails(["--max-concurrent-streams=4294967296"], {}, 'invalid value "4294967296" for flag -max-concurrent-streams: value out of range', "max-concurrent-streams", 2);
    fails(["--quota-backend-bytes=9223372036854775808"], {}, /value out of range/, "quota-backend-bytes", 2);
    fails(["--max-txn-ops=1__0"], {}, /parse error/, "max-txn-ops", 2);
    fails(["--max-request-bytes=18446744073709551615"], {}, 'invalid value "18446744073709551615" for --max-request-bytes: value out of range', "max-request-bytes");
  });
  test("bad booleans", () => {
    fails(["--enable-pprof=maybe"], {}, 'invalid boolean value "maybe" for -enable-pprof: parse error (expected true or false)', "enable-pprof", 2);
  });
  test("bad durations", () => {
    fails(["--grpc-keepalive-min-time=5"], {}, 'invalid value "5" for flag -grpc-keepalive-min-time: parse error (time: missing unit in duration "5"; expected a Go duration such as 500ms, 5s, 1h30m)', "grpc-keepalive-min-time", 2);
    fails(["--grpc-keepalive-interval=1d"], {}, /time: unknown unit "d" in duration "1d"/, "grpc-keepalive-interval", 2);
    fails(["--grpc-keepalive-timeout=-1s"], {}, 'invalid value "-1s" for --grpc-keepalive-timeout: must not be negative', "grpc-keepalive-timeout");
  });
  test("bad URLs (etcd's messages)", () => {
    fails(["--listen-client-urls=foo"], {}, 'invalid value "foo" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: foo', "listen-client-urls", 2);
    fails(["--listen-client-urls=ftp://x:1"], {}, /URL scheme must be http, https, unix, or unixs: ftp:\/\/x:1$/, "listen-client-urls", 2);
    fails(["--listen-client-urls=http://x"], {}, 'invalid value "http://x" for flag -listen-client-urls: URL address does not have the form "host:port": http://x', "listen-client-urls", 2);
    fails(["--advertise-client-urls=http://localhost:2379/"], {}, /URL must not contain a path: http:\/\/localhost:2379\/$/, "advertise-client-urls", 2);
    fails(["--listen-peer-urls=http://localhost:99999"], {}, /URL port must be a number from 0 to 65535/, "listen-peer-urls", 2);
    fails(["--listen-peer-urls=http://localhost:2380,"], {}, /URL scheme must be http, https, unix, or unixs: $/, "listen-peer-urls", 2);
  });
  test("listen URLs must be IPs or localhost; advertise URLs need a host", () => {
    fails(["--listen-client-urls=http://example.com:2379", "--advertise-client-urls=http://localhost:2379"], {}, "--listen-client-urls: expected IP in URL for binding (http://example.com:2379)", "listen-client-urls");
    fails(["--advertise-client-urls=http://:2379"], {}, '--advertise-client-urls "http://:2379" must be "host:port" (unexpected empty host (http://:2379))', "advertise-client-urls");
    const c = run(["--listen-client-urls=http://0.0.0.0:2379,http://[::1]:2379", "--advertise-client-urls=http://host.example:2379"]).config;
    assert.deepEqual(c.listenClientUrls, ["http://0.0.0.0:2379", "http://[::1]:2379"]);
    assert.deepEqual(c.advertiseClientUrls, ["http://host.example:2379"]);
  });
  test("bad --initial-cluster", () => {
    fails(["--initial-cluster=garbage"], {}, 'invalid value "garbage" for --initial-cluster: entry "garbage" must have the form name=url', "initial-cluster");
    fails(["--initial-cluster=default=foo"], {}, 'invalid value "default=foo" for --initial-cluster: URL scheme must be http, https, unix, or unixs: foo', "initial-cluster");
  });
  test("bad --initial-cluster-state", () => {
    fails(["--initial-cluster-state=bogus"], {}, 'invalid value "bogus" for flag -initial-cluster-state: invalid value (valid values: new, existing)', "initial-cluster-state", 2);
  });
  test("bad log settings", () => {
    fails(["--log-level=bogus"], {}, 'invalid value "bogus" for --log-level: only supports debug, info, warn, error, panic, or fatal', "log-level");
    fails(["--log-level=bogus"], {}, /--log-level/, "log-level");
    fails(["--logger=capnslog"], {}, "--logger=capnslog is removed in v3.5; use --logger=zap", "logger");
    fails(["--log-outputs=default,stderr"], {}, '--log-outputs: multi logoutput for "default" is not supported yet', "log-outputs");
    fails(["--log-outputs=/var/log/etcd.log"], {}, /^--log-outputs=\/var\/log\/etcd.log is not supported yet/, "log-outputs");
    fails(["--log-format=xml"], {}, 'invalid value "xml" for --log-format: only supports json or console', "log-format");
    assert.deepEqual(run(["--log-outputs=stderr,stdout"]).config.logOutputs, ["stderr", "stdout"]);
  });
  test("bad compaction settings", () => {
    fails(["--auto-compaction-mode=bogus", "--auto-compaction-retention=1"], {}, 'unknown auto-compaction-mode "bogus" for --auto-compaction-mode (supported: periodic, revision)', "auto-compaction-mode");
    fails(["--auto-compaction-retention=abc"], {}, /^invalid value "abc" for --auto-compaction-retention: time: invalid duration "abc"/, "auto-compaction-retention");
    fails(["--auto-compaction-retention=-5m"], {}, 'invalid value "-5m" for --auto-compaction-retention: must not be negative', "auto-compaction-retention");
    fails(["--auto-compaction-mode=revision", "--auto-compaction-retention=5m"], {}, 'invalid value "5m" for --auto-compaction-retention: revision mode takes a non-negative number of revisions', "auto-compaction-retention");
  });
});

describe("etcd's validation rules", () => {
  test("election timeout >= 5 x heartbeat (etcd's message)", () => {
    fails(["--heartbeat-interval=500"], {}, "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[500ms]", "election-timeout");
    fails(["--election-timeout=400"], {}, "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]", "election-timeout");
    const c = run(["--heartbeat-interval=200", "--election-timeout=1000"]).config;
    assert.equal(c.heartbeatInterval, 200);
    assert.equal(c.electionTimeout, 1000);
  });
  test("election timeout <= 50000 ms; both > 0", () => {
    fails(["--election-timeout=60000"], {}, "--election-timeout[60000ms] is too long, and should be set less than 50000ms", "election-timeout");
    fails(["--heartbeat-interval=0"], {}, "--heartbeat-interval must be >0 (set to 0ms)", "heartbeat-interval");
    fails(["--election-timeout=0"], {}, "--election-timeout must be >0 (set to 0ms)", "election-timeout");
  });
  test("--listen-client-urls needs --advertise-client-urls (flag or env, even the default value)", () => {
    const msg = "--advertise-client-urls is required when --listen-client-urls is set explicitly";
    fails(["--listen-client-urls=http://127.0.0.1:2399"], {}, msg, "advertise-client-urls");
    fails(["--listen-client-urls=http://localhost:2379"], {}, msg, "advertise-client-urls");
    fails([], { ETCD_LISTEN_CLIENT_URLS: "http://127.0.0.1:2379" }, msg, "advertise-client-urls");
    const c = run(["--listen-client-urls=http://127.0.0.1:2399"], { ETCD_ADVERTISE_CLIENT_URLS: "http://127.0.0.1:2399" }).config;
    assert.deepEqual(c.advertiseClientUrls, ["http://127.0.0.1:2399"]);
  });
  test("experimental- spellings: deprecated, not together with the new name", () => {
    const r = run(["--experimental-watch-progress-notify-interval=5s", "--experimental-compaction-batch-limit=10"]);
    assert.equal(r.config.watchProgressNotifyInterval, 5000);
    assert.equal(r.config.compactionBatchLimit, 10);
    assert.deepEqual(r.warnings, [
      "--experimental-watch-progress-notify-interval is deprecated in v3.6 and will be decommissioned in v3.7. Use '--watch-progress-notify-interval' instead.",
      "--experimental-compaction-batch-limit is deprecated in v3.6 and will be decommissioned in v3.7. Use '--compaction-batch-limit' instead.",
    ]);
    fails(
      ["--experimental-max-learners=2", "--max-learners=3"],
      {},
      "cannot set --experimental-max-learners and --max-learners at the same time, please use --max-learners only",
      "experimental-max-learners",
    );
    assert.equal(run(["--max-learners=3"]).config.maxLearners, 3);
    assert.equal(run(["--snapshot-catchup-entries=7"]).config.snapshotCatchUpEntries, 7n);
  });
  test("--watch-progress-notify-interval=0 means the default", () => {
    assert.equal(run(["--watch-progress-notify-interval=0"]).config.watchProgressNotifyInterval, 600000);
  });
  test("bcrypt-cost outside 4..31 falls back to 10 with etcd's warning", () => {
    const r = run(["--bcrypt-cost=99"]);
    assert.equal(r.config.bcryptCost, 10);
    assert.deepEqual(r.warnings, ["Use default bcrypt-cost 10 instead of the invalid value 99"]);
    assert.equal(run(["--bcrypt-cost=4"]).config.bcryptCost, 4);
  });
});

describe("parsed values", () => {
  test("quota: 0 -> 2 GiB, negative -> no quota, >8 GiB warns", () => {
    assert.equal(run(["--quota-backend-bytes=0"]).config.quotaBackendBytesEffective, 2147483648n);
    assert.equal(run(["--quota-backend-bytes=-1"]).config.quotaBackendBytesEffective, null);
    assert.equal(run(["--quota-backend-bytes=5"]).config.quotaBackendBytesEffective, 5n);
    const r = run(["--quota-backend-bytes=9223372036854775807"]);
    assert.equal(r.config.quotaBackendBytes, 9223372036854775807n);
    assert.match(r.warnings[0] ?? "", /exceeds the suggested maximum of 8589934592/);
  });
  test("periodic retention: bare integer = hours, or a Go duration", () => {
    const cases: ReadonlyArray<readonly [string, number]> = [
      ["0", 0],
      ["1", 3600000],
      ["+2", 7200000],
      ["5m", 300000],
      ["1h30m", 5400000],
      ["30s", 30000],
      ["1.5h", 5400000],
      ["250ms", 250],
    ];
    for (const [raw, ms] of cases) {
      const c = run([`--auto-compaction-retention=${raw}`]).config;
      assert.equal(c.autoCompactionRetention, raw);
      assert.deepEqual(c.autoCompactionRetentionParsed, { mode: "periodic", ms }, raw);
    }
  });
  test("revision retention is a bigint", () => {
    const c = run(["--auto-compaction-mode=revision", "--auto-compaction-retention=9007199254740993"]).config;
    assert.deepEqual(c.autoCompactionRetentionParsed, { mode: "revision", revisions: 9007199254740993n });
  });
  test("Go duration syntax", () => {
    assert.equal(parseGoDuration("1h2m3.5s"), 3723500000000n);
    assert.equal(parseGoDuration("1.5us"), 1500n);
    assert.equal(parseGoDuration("1\u00b5s"), 1000n);
    assert.equal(parseGoDuration("-0.5s"), -500000000n);
    assert.equal(parseGoDuration(".5s"), 500000000n);
    assert.equal(parseGoDuration("0"), 0n);
    assert.equal(parseGoDuration(""), 'time: invalid duration ""');
    assert.equal(parseGoDuration("."), 'time: invalid duration "."');
    assert.equal(parseGoDuration("3"), 'time: missing unit in duration "3"');
    assert.equal(parseGoDuration("3x"), 'time: unknown unit "x" in duration "3x"');
    assert.equal(parseGoDuration("9999999999h"), 'time: invalid duration "9999999999h"');
  });
  test("durations in ms, fractional when finer", () => {
    assert.equal(run(["--grpc-keepalive-min-time=1500us"]).config.grpcKeepaliveMinTime, 1.5);
    assert.equal(run(["--grpc-keepalive-interval=0"]).config.grpcKeepaliveInterval, 0);
  });
  test("URL lists are normalised, sorted and de-duplicated (etcd's UniqueURLs)", () => {
    const c = run(["--listen-peer-urls= HTTP://127.0.0.2:2380,http://127.0.0.1:2380,http://127.0.0.2:2380", "--listen-metrics-urls="]).config;
    assert.deepEqual(c.listenPeerUrls, ["http://127.0.0.1:2380", "http://127.0.0.2:2380"]);
    assert.deepEqual(c.listenMetricsUrls, []);
  });
  test("--debug (etcd 3.4) means --log-level=debug", () => {
    const r = run(["--debug"]);
    assert.equal(r.config.logLevel, "debug");
    assert.deepEqual(r.warnings, ["--debug is deprecated (removed in etcd v3.5); use '--log-level=debug' instead"]);
  });
});

describe("accepted with no effect", () => {
  test("no-op flags warn", () => {
    const r = run(["--max-wals=10", "--experimental-initial-corrupt-check=true", "--backend-batch-interval=10ms"]);
    assert.deepEqual(r.config, DEFAULTS);
    assert.deepEqual(r.warnings, [
      "--max-wals has no effect in etcd-ts (etcd-ts keeps no WAL files); ignored",
      "--experimental-initial-corrupt-check has no effect in etcd-ts (corruption checks compare members; a single member has none to compare); ignored",
      "--backend-batch-interval has no effect in etcd-ts (backend batching is internal to etcd-ts); ignored",
    ]);
  });
  test("no-op flags still check their syntax", () => {
    fails(["--max-wals=abc"], {}, /^invalid value "abc" for flag -max-wals: parse error/, "max-wals", 2);
    fails(["--v2-deprecation=bogus"], {}, /^invalid value "bogus" for flag -v2-deprecation: invalid value/, "v2-deprecation", 2);
  });
  test("etcd's ignored v2 flags", () => {
    const r = run(["--v", "-config=x"]);
    assert.deepEqual(r.warnings, ['flag "-v" is no longer supported - ignoring.', 'flag "-config" is no longer supported - ignoring.']);
  });
  test("--enable-pprof is accepted with a warning", () => {
    const r = run(["--enable-pprof"]);
    assert.equal(r.config.enablePprof, true);
    assert.deepEqual(r.warnings, ["--enable-pprof has no effect in etcd-ts (there are no Go pprof endpoints)"]);
  });
});

describe("checkInitialClusterForBootstrap", () => {
  test("passes for the defaults and a derived cluster", () => {
    checkInitialClusterForBootstrap(run([]).config);
    checkInitialClusterForBootstrap(run(["--name=n", "--initial-advertise-peer-urls=http://127.0.0.1:2380"]).config);
  });
  test("this member must be in --initial-cluster (etcd's message)", () => {
    const c = run(["--name=n", "--initial-cluster=other=http://localhost:2380"]).config;
    assert.throws(() => checkInitialClusterForBootstrap(c), (e: unknown) => e instanceof ConfigError && e.message === `couldn't find local name "n" in the initial cluster configuration`);
  });
  test("its peer URLs must match --initial-advertise-peer-urls", () => {
    const c = run(["--initial-cluster=default=http://localhost:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380"]).config;
    assert.throws(
      () => checkInitialClusterForBootstrap(c),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message === `--initial-cluster has default=http://localhost:2380 but missing from --initial-advertise-peer-urls=http://127.0.0.1:2380 (resolved urls: "http://127.0.0.1:2380" != "http://localhost:2380")`,
    );
  });
});
