// Starting and stopping one member from a Config: the server, its gRPC
// services and HTTP endpoints on every client URL, and the peer URL.
// main.ts uses it; tests use it to run a member in-process.

import * as grpc from "@grpc/grpc-js";
import { existsSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import { join } from "node:path";
import type { Logger } from "pino";
import { bindServices, grpcHardCap } from "../api/grpc/bind.js";
import { createHttpHandler, type HealthSource } from "../api/http/index.js";
import { serveClientPort } from "../api/listener.js";
import { checkInitialClusterForBootstrap, type Config } from "../config/config.js";
import { AlarmType } from "../../gen/etcdserverpb/rpc_pb.js";
import { CLUSTER_VERSION, SERVER_VERSION, STORAGE_VERSION } from "../version.js";
import { EtcdServer, healthRange } from "./server.js";
import { allServices } from "./services.js";

export interface Member {
  readonly server: EtcdServer;
  /** host:port of each client listener, in the order of --listen-client-urls. */
  readonly clientAddrs: string[];
  stop(): Promise<void>;
}

/** host and port of an http:// URL; "localhost" binds the IPv4 loopback, as etcd does. */
export function hostPort(u: string): { host: string; port: number } {
  const url = new URL(u);
  const host = url.hostname === "localhost" ? "127.0.0.1" : url.hostname.replace(/^\[|\]$/g, "");
  return { host, port: Number(url.port || "80") };
}

export async function startMember(cfg: Config, logger: Logger): Promise<Member> {
  const fresh = !existsSync(join(cfg.dataDir, "member"));
  if (fresh) checkInitialClusterForBootstrap(cfg);
  const server = await EtcdServer.start({
    name: cfg.name,
    dataDir: cfg.dataDir,
    advertiseClientUrls: [...cfg.advertiseClientUrls],
    initialAdvertisePeerUrls: [...cfg.initialAdvertisePeerUrls],
    initialClusterToken: cfg.initialClusterToken,
    quotaBackendBytes: cfg.quotaBackendBytesEffective ?? -1n,
    maxRequestBytes: cfg.maxRequestBytes,
    maxTxnOps: cfg.maxTxnOps,
    autoCompactionMode: cfg.autoCompactionMode,
    autoCompactionRetention:
      cfg.autoCompactionRetentionParsed.mode === "periodic"
        ? BigInt(cfg.autoCompactionRetentionParsed.ms)
        : cfg.autoCompactionRetentionParsed.revisions,
    heartbeatIntervalMs: cfg.heartbeatInterval,
    electionTimeoutMs: cfg.electionTimeout,
    watchProgressNotifyIntervalMs: cfg.watchProgressNotifyInterval,
    logger: logger.child({ component: "server" }),
  });
  const grpcServer = new grpc.Server({
    // etcd: requests up to max-request-bytes plus 512 KiB of gRPC overhead (checked
    // in bindServices with etcd's text); grpc-js's own check sits above that.
    "grpc.max_receive_message_length": grpcHardCap(cfg.maxRequestBytes + 512 * 1024),
    "grpc.max_send_message_length": 2 ** 31 - 1,
    "grpc.keepalive_time_ms": cfg.grpcKeepaliveInterval,
    "grpc.keepalive_timeout_ms": cfg.grpcKeepaliveTimeout,
    "grpc.http2.min_ping_interval_without_data_ms": cfg.grpcKeepaliveMinTime,
    "grpc.max_concurrent_streams": Math.min(cfg.maxConcurrentStreams, 2 ** 31 - 1),
  });
  const services = allServices(server);
  bindServices(grpcServer, services, logger.child({ component: "grpc" }), cfg.maxRequestBytes + 512 * 1024);
  const httpLog = logger.child({ component: "http" });
  const http = createHttpHandler({
    services,
    health: healthSource(server),
    versions: () => ({ etcdserver: SERVER_VERSION, etcdcluster: CLUSTER_VERSION, storage: STORAGE_VERSION }),
    metrics: server.metrics.registry,
    maxRequestBytes: cfg.maxRequestBytes + 512 * 1024,
    onError: (err) => httpLog.error({ err }, "gateway error"),
  });
  const closers: (() => Promise<void>)[] = [];
  const clientAddrs: string[] = [];
  try {
    // One port, two protocols, as etcd: HTTP/2 to gRPC, HTTP/1.1 to the gateway and /health, /metrics.
    for (const u of cfg.listenClientUrls) {
      const { host, port } = hostPort(u);
      const cp = await serveClientPort({ host, port, grpcServer, http });
      clientAddrs.push(`${host.includes(":") ? `[${host}]` : host}:${cp.port}`);
      closers.push(() => cp.close(1000));
    }
    for (const u of cfg.listenPeerUrls) {
      const peer = peerHttp(server);
      const { host, port } = hostPort(u);
      await new Promise<void>((resolve, reject) => {
        peer.once("error", reject);
        peer.listen(port, host, () => resolve());
      });
      closers.push(() => new Promise((r) => peer.close(() => r())));
    }
  } catch (err) {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    grpcServer.forceShutdown();
    await server.stop();
    throw err;
  }
  logger.info({ clientUrls: cfg.listenClientUrls, peerUrls: cfg.listenPeerUrls }, "serving");
  return {
    server,
    clientAddrs,
    async stop() {
      for (const c of closers.reverse()) await c().catch(() => undefined);
      grpcServer.forceShutdown();
      await server.stop();
    },
  };
}

/** What /health, /livez and /readyz ask of the member. */
function healthSource(s: EtcdServer): HealthSource {
  return {
    alarms: () => s.alarms.get().map((a) => AlarmType[a.alarm]),
    hasLeader: () => true, // one member is always its own leader
    serializableRead: async () => void (await s.range(healthRange())),
    linearizableRead: async () => void (await s.range(healthRange())),
    isLearner: () => false,
  };
}

/** The peer port: etcd's /version and /members; Raft traffic comes with the clustering work. */
function peerHttp(s: EtcdServer): HttpServer {
  return createServer((req, res) => {
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "GET" && req.url === "/version") return send(200, { etcdserver: SERVER_VERSION, etcdcluster: CLUSTER_VERSION });
    if (req.method === "GET" && req.url === "/members")
      return send(200, [{ id: s.memberId.toString(16), name: s.opts.name, peerURLs: s.opts.initialAdvertisePeerUrls, clientURLs: s.opts.advertiseClientUrls }]);
    res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
    res.end("404 page not found\n");
  });
}
