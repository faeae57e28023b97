// Test harness shared by the Lock and Election suites: a real in-process
// server or a real etcd 3.4 process, a raw grpc-js client, and small waits.
// (Named .testlib.ts: compiled with the tests, never run as one.)

import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { KV } from "../../../gen/etcdserverpb/rpc_pb.js";
import { EtcdServer } from "../../server/server.js";
import { allServices } from "../../server/services.js";
import { testServerOptions } from "../../server/options.testlib.js";
import { GrpcServer } from "./server.js";

export const ETCD = "/usr/bin/etcd";
export const ETCDCTL = "/usr/bin/etcdctl";

export interface Target {
  readonly name: "ours" | "etcd";
  readonly addr: string; // host:port
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      srv.close(() => (typeof a === "object" && a !== null ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

export async function startOurs(tag = "rpc"): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), `etcdts-${tag}-`));
  const logger = pino({ level: "silent" });
  const s = await EtcdServer.start(testServerOptions(dir, { logger }));
  const g = new GrpcServer(allServices(s), { maxReceiveBytes: 1572864 + 512 * 1024, log: logger });
  const { port } = await g.listen(0, "127.0.0.1");
  return {
    name: "ours",
    addr: `127.0.0.1:${port}`,
    async stop() {
      g.destroy();
      await new Promise((r) => setTimeout(r, 20));
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startEtcd(tag = "rpc"): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), `etcd-${tag}-`));
  const cp = await freePort();
  const pp = await freePort();
  const proc = spawn(
    ETCD,
    [
      "--name", "default",
      "--data-dir", join(dir, "data"),
      "--listen-client-urls", `http://127.0.0.1:${cp}`,
      "--advertise-client-urls", `http://127.0.0.1:${cp}`,
      "--listen-peer-urls", `http://127.0.0.1:${pp}`,
      "--initial-advertise-peer-urls", `http://127.0.0.1:${pp}`,
      "--initial-cluster", `default=http://127.0.0.1:${pp}`,
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const t: Target = {
    name: "etcd",
    addr: `127.0.0.1:${cp}`,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const c = new Client(t.addr);
  try {
    await eventually(async () => {
      await c.unary(KV.method.range, { key: Buffer.from("health") }, 1000);
      return true;
    }, 30000);
  } catch (err) {
    await t.stop();
    throw err;
  } finally {
    c.close();
  }
  return t;
}

/** A failed call: the gRPC status code and message. */
export class CallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`gRPC ${code}: ${details}`);
  }
}

export class Client {
  readonly c: grpc.Client;
  constructor(addr: string) {
    this.c = new grpc.Client(addr, grpc.credentials.createInsecure());
  }
  /** A unary call; `cancel` abandons it (the server sees the call cancelled). */
  start<I extends DescMessage, O extends DescMessage>(
    m: DescMethod & { input: I; output: O },
    req: MessageInitShape<I>,
    deadlineMs = 120000,
  ): { result: Promise<MessageShape<O>>; cancel(): void } {
    let call: grpc.ClientUnaryCall | undefined;
    const result = new Promise<MessageShape<O>>((resolve, reject) => {
      call = this.c.makeUnaryRequest(
        `/${m.parent.typeName}/${m.name}`,
        (x: MessageShape<I>) => Buffer.from(toBinary(m.input, x)),
        (b: Buffer) => fromBinary(m.output, b),
        create(m.input, req),
        new grpc.Metadata(),
        { deadline: new Date(Date.now() + deadlineMs) },
        (err, res) => (err ? reject(new CallError(err.code, err.details)) : res === undefined ? reject(new Error("no response")) : resolve(res)),
      );
    });
    return { result, cancel: () => call?.cancel() };
  }
  unary<I extends DescMessage, O extends DescMessage>(m: DescMethod & { input: I; output: O }, req: MessageInitShape<I>, deadlineMs?: number): Promise<MessageShape<O>> {
    return this.start(m, req, deadlineMs).result;
  }
  stream<I extends DescMessage, O extends DescMessage>(m: DescMethod & { input: I; output: O }, req: MessageInitShape<I>): grpc.ClientReadableStream<MessageShape<O>> {
    return this.c.makeServerStreamRequest(
      `/${m.parent.typeName}/${m.name}`,
      (x: MessageShape<I>) => Buffer.from(toBinary(m.input, x)),
      (b: Buffer) => fromBinary(m.output, b),
      create(m.input, req),
      new grpc.Metadata(),
      {},
    );
  }
  close(): void {
    this.c.close();
  }
}

/** Polls fn until it returns a value other than undefined/false (errors count as "not yet"). */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, capMs = 20000): Promise<T> {
  const end = Date.now() + capMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`condition not met within ${capMs} ms${last !== undefined ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function rejectsWith(p: Promise<unknown>, code: number, details: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CallError, String(err));
    assert.equal(err.details, details);
    assert.equal(err.code, code);
    return true;
  });
}

/** Tracks whether a promise has settled, without waiting on it. */
export function track<T>(p: Promise<T>): { done: () => boolean; p: Promise<T> } {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  return { done: () => settled, p };
}

/** A long-running etcdctl (v3 API) whose stdout is collected. */
export function etcdctl(addr: string, args: string[]): { proc: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const proc = spawn(ETCDCTL, [`--endpoints=${addr}`, ...args], { env: { ...process.env, ETCDCTL_API: "3" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return { proc, out: () => out, exited };
}

export const UNKNOWN = 2;
export const b = (s: string) => Buffer.from(s);
export const str = (u: Uint8Array) => Buffer.from(u).toString();

