// Starting and stopping one member from a Config: the server, its gRPC
// services and HTTP endpoints on every client URL, and the peer URL.
// main.ts uses it; tests use it to run a member in-process.

import { existsSync } from "node:fs";
import { createServer, type IncomingMessage, type Server as HttpServer } from "node:http";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { GrpcServer } from "../api/grpc/server.js";
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

export interface StartOptions {
  /** This member was removed from the cluster and has stopped (main exits, as etcd does). */
  onRemoved?: () => void;
}

export async function startMember(cfg: Config, logger: Logger, opts: StartOptions = {}): Promise<Member> {
  const fresh = !existsSync(join(cfg.dataDir, "member"));
  if (fresh) checkInitialClusterForBootstrap(cfg);
  const server = await EtcdServer.start({
    name: cfg.name,
    dataDir: cfg.dataDir,
    advertiseClientUrls: [...cfg.advertiseClientUrls],
    initialAdvertisePeerUrls: [...cfg.initialAdvertisePeerUrls],
    initialClusterToken: cfg.initialClusterToken,
    initialCluster: cfg.initialClusterMembers.map((m) => ({ name: m.name, peerUrls: [...m.peerUrls] })),
    initialClusterState: cfg.initialClusterState,
    preVote: cfg.preVote,
    initialElectionTickAdvance: cfg.initialElectionTickAdvance,
    strictReconfigCheck: cfg.strictReconfigCheck,
    maxLearners: cfg.maxLearners,
    snapshotCount: cfg.snapshotCount,
    snapshotCatchUpEntries: cfg.snapshotCatchUpEntries,
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
    baseLogger: logger,
    onRemoved: () => void member.stop().finally(() => opts.onRemoved?.()),
  });
  const services = allServices(server);
  const grpcServer = new GrpcServer(services, {
    // etcd: requests up to max-request-bytes plus 512 KiB of gRPC overhead.
    maxReceiveBytes: cfg.maxRequestBytes + 512 * 1024,
    keepaliveTimeMs: cfg.grpcKeepaliveInterval,
    keepaliveTimeoutMs: cfg.grpcKeepaliveTimeout,
    maxConcurrentStreams: Math.min(cfg.maxConcurrentStreams, 2 ** 32 - 1),
    hasLeader: () => server.leader !== 0n,
    log: logger.child({ component: "grpc" }),
  });
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
      const cp = await serveClientPort({ host, port, grpcServer, http, ready: server.ready });
      clientAddrs.push(`${host.includes(":") ? `[${host}]` : host}:${cp.port}`);
      closers.push(() => cp.close(1000));
    }
    for (const u of cfg.listenPeerUrls) {
      const { server: peer, switched } = peerHttp(server);
      const { host, port } = hostPort(u);
      await new Promise<void>((resolve, reject) => {
        peer.once("error", reject);
        peer.listen(port, host, () => resolve());
      });
      closers.push(
        () =>
          new Promise((r) => {
            peer.close(() => r());
            // Raft streams are long-lived; they would hold close() forever. Those that
            // switched protocols are no longer the HTTP server's to close.
            peer.closeAllConnections();
            for (const s of switched) s.destroy();
          }),
      );
    }
  } catch (err) {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    grpcServer.destroy();
    await server.stop();
    throw err;
  }
  logger.info({ clientUrls: cfg.listenClientUrls, peerUrls: cfg.listenPeerUrls }, "serving");
  let stopping: Promise<void> | undefined;
  const member: Member = {
    server,
    clientAddrs,
    stop() {
      stopping ??= (async () => {
        for (const c of closers.reverse()) await c().catch(() => undefined);
        grpcServer.destroy();
        await server.stop();
      })();
      return stopping;
    },
  };
  return member;
}

/** What /health, /livez and /readyz ask of the member. */
function healthSource(s: EtcdServer): HealthSource {
  return {
    alarms: () => s.alarms.get().map((a) => AlarmType[a.alarm]),
    hasLeader: () => s.leader !== 0n,
    serializableRead: async () => void (await s.range(healthRange())),
    linearizableRead: async () => void (await s.range({ ...healthRange(), serializable: false })),
    isLearner: () => s.isLearner,
  };
}

/**
 * The peer port: raft traffic (/raft*; streams switch protocols to raw frames),
 * and etcd's /version, /members and /members/promote/<id> (a follower's
 * MemberPromote, forwarded to the leader).
 */
function peerHttp(s: EtcdServer): { server: HttpServer; switched: Set<Duplex> } {
  const raft = s.peerHandler();
  const server = createServer((req, res) => {
    const url = (req.url ?? "").split("?")[0] ?? "";
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { "Content-Type": "application/json", "X-Etcd-Cluster-ID": s.clusterId.toString(16) });
      res.end(JSON.stringify(body));
    };
    if (url.startsWith("/raft")) return raft(req, res);
    const theirCluster = req.headers["x-etcd-cluster-id"];
    if (req.method === "POST" && typeof theirCluster === "string" && theirCluster !== s.clusterId.toString(16)) {
      req.resume();
      res.writeHead(412, { "Content-Type": "text/plain; charset=utf-8" });
      res.end("etcdserver: cluster ID mismatch");
      return;
    }
    if (req.method === "GET" && url === "/version") return send(200, { etcdserver: SERVER_VERSION, etcdcluster: CLUSTER_VERSION });
    if (req.method === "GET" && url === "/members") {
      return send(
        200,
        s.membership.list().map((m) => ({ id: m.id.toString(16), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner })),
      );
    }
    const lease = /^\/leases\/(renew|ttl)$/.exec(url);
    if (req.method === "POST" && lease !== null) {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        let id = 0n;
        let ids: bigint[] | undefined;
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { id?: string; ids?: string[] };
          if (Array.isArray(body.ids)) ids = body.ids.map((x) => BigInt(x));
          else id = BigInt(body.id as string);
        } catch {
          res.writeHead(400, { "Content-Type": "text/plain; charset=utf-8" });
          res.end("bad lease request");
          return;
        }
        s.servePeerLease(lease[1] as "renew" | "ttl", id, ids).then(
          (r) => send(200, r),
          (err: unknown) => {
            res.writeHead(412, { "Content-Type": "text/plain; charset=utf-8" });
            res.end(err instanceof Error ? err.message : String(err));
          },
        );
      });
      return;
    }
    const promote = /^\/members\/promote\/([0-9a-f]+)$/.exec(url);
    if (req.method === "POST" && promote !== null) {
      req.resume();
      s.promoteMember(BigInt(`0x${promote[1]}`)).then(
        () => send(200, s.membership.list().map((m) => ({ id: m.id.toString(16), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner }))),
        (err: unknown) => {
          res.writeHead(412, { "Content-Type": "text/plain; charset=utf-8" });
          res.end(err instanceof Error ? err.message : String(err));
        },
      );
      return;
    }
    req.resume();
    res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
    res.end("404 page not found\n");
  });
  const upgrade = s.peerUpgradeHandler();
  const switched = new Set<Duplex>();
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    switched.add(socket);
    socket.once("close", () => switched.delete(socket));
    upgrade(req, socket, head);
  });
  return { server, switched };
}
