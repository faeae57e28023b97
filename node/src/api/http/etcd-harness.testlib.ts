// Test harness (used only by tests): starts real etcd processes, and builds
// AnyServiceImpl handlers that forward every call to a real etcd over gRPC
// (grpc-js with protobuf-es serializers). Real etcd answers; nothing is mocked.

import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescService } from "@bufbuild/protobuf";
import { Code, EtcdError } from "../../errors.js";
import type { CodeValue } from "../../errors.js";
import type { AnyServiceImpl, BidiStream, CallContext, ServerStream } from "../registry.js";
import { Auth, Cluster, KV, Lease, Maintenance, Watch } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Lock } from "../../../gen/v3lockpb/v3lock_pb.js";
import { Election } from "../../../gen/v3electionpb/v3election_pb.js";

export const ETCD_BIN = process.env.ETCD_BIN ?? "/usr/bin/etcd";

/**
 * Whether real etcd is available. Missing etcd fails loudly under CI and is a
 * loud skip otherwise.
 */
export function etcdAvailable(): boolean {
  if (existsSync(ETCD_BIN)) return true;
  if (process.env.CI) throw new Error(`${ETCD_BIN} is missing and CI is set: install etcd-server (apt-get install -y etcd-server etcd-client)`);
  console.log(`\n*** SKIP: ${ETCD_BIN} not found; real-etcd comparison tests skipped (apt-get install -y etcd-server) ***\n`);
  return false;
}

/** Real etcd 3.6 (grpc-gateway v2), built by `bash tools/build.sh etcd etcdctl`. */
export const ETCD36_BIN = process.env.ETCD36_BIN ?? path.resolve(process.cwd(), ".tools/bin/etcd");

/**
 * Whether real etcd 3.6 is available, building it when it is missing. A
 * failed build fails under CI and is a loud skip otherwise.
 */
export function etcd36Available(): boolean {
  if (existsSync(ETCD36_BIN)) return true;
  if (process.env.ETCD36_BIN === undefined) {
    console.log(`\n*** ${ETCD36_BIN} missing: building it with bash tools/build.sh etcd etcdctl ***\n`);
    const r = spawnSync("bash", ["tools/build.sh", "etcd", "etcdctl"], { stdio: "inherit" });
    if (r.status === 0 && existsSync(ETCD36_BIN)) return true;
  }
  if (process.env.CI) throw new Error(`${ETCD36_BIN} is missing and could not be built (bash tools/build.sh etcd etcdctl), and CI is set`);
  console.log(`\n*** SKIP: ${ETCD36_BIN} not found and not buildable; etcd 3.6 gateway comparison skipped ***\n`);
  return false;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export interface EtcdProcess {
  readonly clientPort: number;
  readonly endpoint: string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

/** Starts a fresh single-member etcd on free ports with a temporary data dir. */
export async function startEtcd(name: string, extraArgs: string[] = [], bin: string = ETCD_BIN): Promise<EtcdProcess> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `etcdts-gw-${name}-`));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const proc = spawn(
    bin,
    [
      "--name", name, "--data-dir", dir,
      "--listen-client-urls", client, "--advertise-client-urls", client,
      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
      "--initial-cluster", `${name}=${peer}`,
      "--log-level", "error",
      ...extraArgs,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  running.add(proc);
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    }
    running.delete(proc);
    rmSync(dir, { recursive: true, force: true });
  };
  // Wait until it serves.
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`etcd ${name} exited: ${stderr}`);
    try {
      const r = await fetch(`${client}/health`);
      if (r.status === 200) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd ${name} did not become healthy: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { clientPort, endpoint: `127.0.0.1:${clientPort}`, stop };
}

function grpcErrorToEtcd(err: grpc.ServiceError): EtcdError {
  return new EtcdError(err.code as CodeValue, err.details);
}

function metadataOf(ctx: CallContext): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of ctx.metadata) {
    try {
      md.add(k, v);
    } catch {
      // keys grpc-js refuses are dropped
    }
  }
  return md;
}

export const ALL_SERVICES: readonly DescService[] = [KV, Watch, Lease, Cluster, Maintenance, Auth, Lock, Election];

/** Handlers that forward to real etcd at `endpoint` (host:port). */
export function proxyServices(endpoint: string, services: readonly DescService[] = ALL_SERVICES): {
  services: AnyServiceImpl[];
  close(): void;
} {
  const client = new grpc.Client(endpoint, grpc.credentials.createInsecure());
  const out: AnyServiceImpl[] = [];
  for (const svc of services) {
    const handlers: Record<string, unknown> = {};
    for (const m of svc.methods) {
      const rpcPath = `/${svc.typeName}/${m.name}`;
      const ser = (msg: unknown) => Buffer.from(toBinary(m.input as DescMessage, msg as never));
      const de = (buf: Buffer) => fromBinary(m.output as DescMessage, buf);
      switch (m.methodKind) {
        case "unary":
          handlers[m.localName] = (req: unknown, ctx: CallContext) =>
            new Promise((resolve, reject) => {
              const call = client.makeUnaryRequest(rpcPath, ser, de, req, metadataOf(ctx), (err, res) => {
                if (err) reject(grpcErrorToEtcd(err));
                else resolve(res);
              });
              ctx.signal.addEventListener("abort", () => call.cancel(), { once: true });
            });
          break;
        case "server_streaming":
          handlers[m.localName] = (req: unknown, stream: ServerStream<unknown>, ctx: CallContext) => {
            const call = client.makeServerStreamRequest(rpcPath, ser, de, req, metadataOf(ctx));
            return pumpResponses(call, stream, ctx);
          };
          break;
        case "bidi_streaming":
          handlers[m.localName] = (stream: BidiStream<unknown, unknown>, ctx: CallContext) => {
            const call = client.makeBidiStreamRequest(rpcPath, ser, de, metadataOf(ctx));
            void (async () => {
              try {
                for await (const r of stream.requests) {
                  if (!call.write(r)) await new Promise((res) => call.once("drain", res));
                }
                call.end();
              } catch {
                call.cancel();
              }
            })();
            return pumpResponses(call, stream, ctx);
          };
          break;
        default:
          break;
      }
    }
    out.push({ service: svc, handlers });
  }
  return { services: out, close: () => client.close() };
}

function pumpResponses(
  call: grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>,
  stream: ServerStream<unknown>,
  ctx: CallContext,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let chain = Promise.resolve();
    let failed = false;
    ctx.signal.addEventListener("abort", () => call.cancel(), { once: true });
    call.on("data", (msg: unknown) => {
      call.pause();
      chain = chain
        .then(() => stream.send(msg))
        .then(
          () => {
            call.resume();
          },
          () => {
            failed = true;
            call.cancel();
          },
        );
    });
    call.on("error", (err: grpc.ServiceError) => {
      void chain.then(() => reject(failed ? new EtcdError(Code.Canceled, "context canceled") : grpcErrorToEtcd(err)));
    });
    call.on("status", (st: grpc.StatusObject) => {
      if (st.code === grpc.status.OK) void chain.then(() => resolve());
    });
  });
}
