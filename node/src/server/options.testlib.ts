// Server options with etcd's defaults, for tests that run a member in-process.
// (Named .testlib.ts: compiled with the tests, never run as one.)
import pino from "pino";
import type { ServerOptions } from "./server.js";

export function testServerOptions(dataDir: string, over: Partial<ServerOptions> = {}): ServerOptions {
  return {
    name: "default",
    dataDir,
    advertiseClientUrls: ["http://127.0.0.1:2379"],
    initialAdvertisePeerUrls: ["http://localhost:2380"],
    initialClusterToken: "etcd-cluster",
    quotaBackendBytes: 0n,
    maxRequestBytes: 1572864,
    maxTxnOps: 128,
    autoCompactionMode: "periodic",
    autoCompactionRetention: 0n,
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 1000,
    watchProgressNotifyIntervalMs: 600000,
    logger: pino({ level: "silent" }),
    onFatal: (err) => {
      throw err;
    },
    ...over,
  };
}
