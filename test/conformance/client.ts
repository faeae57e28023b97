// One small client interface, four very different clients behind it.
//
//   grpc    - raw gRPC (grpc-js + protobuf-es schemas from node/gen): the exact
//             request and response messages; errors are the exact gRPC code
//             and message.
//   http    - the JSON gateway (POST /v3/..., base64 bytes, int64 as strings);
//             errors are the HTTP status and the gateway's error body.
//   etcdctl - real etcdctl 3.4 (ETCDCTL_API=3, -w json where it exists);
//             results are its stdout, stderr and exit code.
//   etcd3   - the `etcd3` npm client, through its high-level builders where it
//             has them (get/getAll/put/delete/if/watch) and its RPC clients
//             otherwise (leases, maintenance, cluster).
//
// A test body is written once against `Client` and runs through every kind
// that can express it. A kind that cannot express a request throws
// NotExpressible before talking to the server (the case is then skipped for
// that kind, identically on every target).
//
// Results are returned as protobuf-es messages (the canonical form test bodies
// assert on). Independently, every call appends what the client actually saw
// (its raw, kind-specific form) to a Transcript; the framework normalises the
// transcripts of two targets and requires them to be equal.

import { spawn } from "node:child_process";
import http from "node:http";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromJson, toJson } from "@bufbuild/protobuf";
import type { DescMessage, JsonValue, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { Etcd3 } from "etcd3";
import {
  AlarmResponseSchema,
  AlarmRequestSchema,
  StatusRequestSchema,
  DefragmentRequestSchema,
  MemberListRequestSchema,
  LeaseLeasesRequestSchema,
  CompactionRequestSchema,
  CompactionResponseSchema,
  DefragmentResponseSchema,
  DeleteRangeRequestSchema,
  DeleteRangeResponseSchema,
  HashKVResponseSchema,
  KV,
  Lease,
  LeaseGrantRequestSchema,
  LeaseGrantResponseSchema,
  LeaseKeepAliveRequestSchema,
  LeaseKeepAliveResponseSchema,
  LeaseLeasesResponseSchema,
  LeaseRevokeRequestSchema,
  LeaseRevokeResponseSchema,
  LeaseTimeToLiveRequestSchema,
  LeaseTimeToLiveResponseSchema,
  Maintenance,
  Cluster,
  MemberListResponseSchema,
  PutRequestSchema,
  PutResponseSchema,
  RangeRequestSchema,
  RangeResponseSchema,
  StatusResponseSchema,
  TxnRequestSchema,
  TxnResponseSchema,
  Watch,
  WatchCreateRequestSchema,
  WatchRequestSchema,
  WatchResponseSchema,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  Compare_CompareResult,
  Compare_CompareTarget,
  WatchCreateRequest_FilterType,
  AlarmRequest_AlarmAction,
} from "../../node/gen/etcdserverpb/rpc_pb.js";
import type {
  AlarmResponse,
  CompactionResponse,
  DefragmentResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  HashKVResponse,
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  MemberListResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  StatusResponse,
  TxnRequest,
  TxnResponse,
  WatchCreateRequest,
  WatchResponse,
} from "../../node/gen/etcdserverpb/rpc_pb.js";
import { GrpcConn, GrpcCallError } from "../harness/grpc.js";
import { etcdBinaries } from "../harness/provision.js";
import type { Member } from "../harness/member.js";

export type ClientKind = "grpc" | "http" | "etcdctl" | "etcd3";
export const ALL_CLIENTS: readonly ClientKind[] = ["grpc", "http", "etcdctl", "etcd3"];

export type RangeReq = MessageInitShape<typeof RangeRequestSchema>;
export type PutReq = MessageInitShape<typeof PutRequestSchema>;
export type DeleteReq = MessageInitShape<typeof DeleteRangeRequestSchema>;
export type TxnReq = MessageInitShape<typeof TxnRequestSchema>;
export type CompactReq = MessageInitShape<typeof CompactionRequestSchema>;
export type LeaseGrantReq = MessageInitShape<typeof LeaseGrantRequestSchema>;
export type LeaseTimeToLiveReq = MessageInitShape<typeof LeaseTimeToLiveRequestSchema>;
export type WatchCreateReq = MessageInitShape<typeof WatchCreateRequestSchema>;

/** What the snapshot stream delivered (the bytes themselves differ between servers). */
export interface SnapshotSummary {
  readonly chunks: number;
  readonly bytes: number;
  /** remaining_bytes of the last message (0 when the stream says it is complete). */
  readonly lastRemaining: bigint;
}

/** A failed call as the client saw it. */
export class ClientError extends Error {
  override readonly name = "ClientError";
  constructor(
    /** Server's message (for etcdctl: its "Error: ..." text, which contains the server's). */
    message: string,
    /** gRPC status code when the client exposes it. */
    readonly code: number | undefined,
    readonly kind: ClientKind,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** The request cannot be expressed with this client kind. */
export class NotExpressible extends Error {
  override readonly name = "NotExpressible";
}

export interface WatchSession {
  /** Sends a create request. */
  create(req: WatchCreateReq): Promise<void>;
  /** Sends a cancel request. */
  cancel(watchId: bigint): Promise<void>;
  /** Sends a progress request. */
  progress(): Promise<void>;
  /** The next response from the server (fails after a generous cap, or if the stream ends). */
  next(): Promise<WatchResponse>;
  /** Ends the stream (client side) and frees resources. */
  close(): Promise<void>;
}

export interface Client {
  readonly kind: ClientKind;
  range(req: RangeReq): Promise<RangeResponse>;
  put(req: PutReq): Promise<PutResponse>;
  deleteRange(req: DeleteReq): Promise<DeleteRangeResponse>;
  txn(req: TxnReq): Promise<TxnResponse>;
  compact(req: CompactReq): Promise<CompactionResponse>;
  leaseGrant(req: LeaseGrantReq): Promise<LeaseGrantResponse>;
  leaseRevoke(id: bigint): Promise<LeaseRevokeResponse>;
  leaseKeepAliveOnce(id: bigint): Promise<LeaseKeepAliveResponse>;
  leaseTimeToLive(req: LeaseTimeToLiveReq): Promise<LeaseTimeToLiveResponse>;
  leaseLeases(): Promise<LeaseLeasesResponse>;
  status(): Promise<StatusResponse>;
  hashKV(revision: bigint): Promise<HashKVResponse>;
  alarmList(): Promise<AlarmResponse>;
  defragment(): Promise<DefragmentResponse>;
  snapshot(): Promise<SnapshotSummary>;
  memberList(): Promise<MemberListResponse>;
  watch(): Promise<WatchSession>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Transcript

export interface TranscriptEntry {
  readonly op: string;
  readonly req?: unknown;
  readonly out: unknown;
}

/** Everything a client observed, in order, in a JSON-able form. */
export class Transcript {
  readonly entries: TranscriptEntry[] = [];
  /** Lease IDs the server chose (granted with ID 0), in decimal. */
  readonly serverLeaseIds: string[] = [];

  add(op: string, req: unknown, out: unknown): void {
    this.entries.push(req === undefined ? { op, out } : { op, req, out });
  }
  serverChoseLease(id: bigint | string): void {
    const s = String(id);
    if (!this.serverLeaseIds.includes(s)) this.serverLeaseIds.push(s);
  }
}

/** Protobuf JSON with proto field names, so every client's record reads alike. */
function pj<D extends DescMessage>(schema: D, msg: MessageShape<D>): JsonValue {
  return toJson(schema, msg, { useProtoFieldName: true });
}

function timeoutAfter<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Generous cap for anything a test waits on (a poll, never an assertion about speed). */
export const WAIT_CAP_MS = 30_000;

/** A queue of stream items with a blocking, capped next(). */
class Inbox<T> {
  private items: T[] = [];
  private waiters: Array<{ resolve: (v: T) => void; reject: (e: Error) => void }> = [];
  private ended: Error | undefined;

  push(item: T): void {
    const w = this.waiters.shift();
    if (w) w.resolve(item);
    else this.items.push(item);
  }
  end(err: Error): void {
    if (this.ended) return;
    this.ended = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
  next(what: string): Promise<T> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve(item);
    if (this.ended) return Promise.reject(this.ended);
    const p = new Promise<T>((resolve, reject) => this.waiters.push({ resolve, reject }));
    return timeoutAfter(p, WAIT_CAP_MS, what).catch((e: Error) => {
      this.waiters = this.waiters.filter((w) => w.resolve !== undefined);
      throw e;
    });
  }
}


/**
 * Records raw stream lines into the transcript when the test consumes them
 * (next()), not when they arrive: arrival order against the test's own
 * requests on other connections depends on timing, consumption order does not.
 */
class LineLog {
  private lines: unknown[] = [];
  constructor(
    private readonly tr: Transcript,
    private readonly op = "watch.line",
  ) {}
  arrived(line: unknown): void {
    this.lines.push(line);
  }
  async consume<T>(p: Promise<T>): Promise<T> {
    try {
      const v = await p;
      if (this.lines.length > 0) this.tr.add(this.op, undefined, this.lines.shift());
      return v;
    } catch (e) {
      for (const l of this.lines.splice(0)) this.tr.add(this.op, undefined, l);
      throw e;
    }
  }
}

// ---------------------------------------------------------------------------
// gRPC

class GrpcClient implements Client {
  readonly kind = "grpc" as const;
  private readonly conn: GrpcConn;

  constructor(member: Member, private readonly tr: Transcript) {
    this.conn = new GrpcConn(member.grpcTarget);
  }

  private async call<I extends DescMessage, O extends DescMessage>(
    op: string,
    method: { input: I; output: O } & Parameters<GrpcConn["unary"]>[0],
    req: MessageInitShape<I>,
  ): Promise<MessageShape<O>> {
    const reqMsg = create(method.input, req);
    const reqJson = pj(method.input, reqMsg);
    try {
      const res = (await this.conn.unary(method, reqMsg as MessageInitShape<I>)) as MessageShape<O>;
      this.tr.add(op, reqJson, { ok: pj(method.output, res) });
      return res;
    } catch (e) {
      if (e instanceof GrpcCallError) {
        this.tr.add(op, reqJson, { err: { code: e.code, message: e.details } });
        throw new ClientError(e.details, e.code, "grpc");
      }
      throw e;
    }
  }

  range(req: RangeReq) { return this.call("range", KV.method.range, req); }
  put(req: PutReq) { return this.call("put", KV.method.put, req); }
  deleteRange(req: DeleteReq) { return this.call("deleteRange", KV.method.deleteRange, req); }
  txn(req: TxnReq) { return this.call("txn", KV.method.txn, req); }
  compact(req: CompactReq) { return this.call("compact", KV.method.compact, req); }
  async leaseGrant(req: LeaseGrantReq) {
    const r = await this.call("leaseGrant", Lease.method.leaseGrant, req);
    if (!req.ID) this.tr.serverChoseLease(r.ID);
    return r;
  }
  leaseRevoke(id: bigint) { return this.call("leaseRevoke", Lease.method.leaseRevoke, { ID: id }); }
  leaseTimeToLive(req: LeaseTimeToLiveReq) { return this.call("leaseTimeToLive", Lease.method.leaseTimeToLive, req); }
  leaseLeases() { return this.call("leaseLeases", Lease.method.leaseLeases, {}); }
  status() { return this.call("status", Maintenance.method.status, {}); }
  hashKV(revision: bigint) { return this.call("hashKV", Maintenance.method.hashKV, { revision }); }
  alarmList() { return this.call("alarmList", Maintenance.method.alarm, { action: AlarmRequest_AlarmAction.GET }); }
  defragment() { return this.call("defragment", Maintenance.method.defragment, {}); }
  memberList() { return this.call("memberList", Cluster.method.memberList, {}); }

  async leaseKeepAliveOnce(id: bigint): Promise<LeaseKeepAliveResponse> {
    const stream = this.conn.bidi(Lease.method.leaseKeepAlive);
    const inbox = new Inbox<LeaseKeepAliveResponse>();
    stream.on("data", (r: LeaseKeepAliveResponse) => inbox.push(r));
    stream.on("error", (e: { code?: number; details?: string }) => inbox.end(new ClientError(e.details ?? String(e), e.code, "grpc")));
    stream.on("end", () => inbox.end(new Error("keepalive stream ended")));
    stream.write(create(LeaseKeepAliveRequestSchema, { ID: id }));
    try {
      const r = await inbox.next("keepalive response");
      this.tr.add("leaseKeepAliveOnce", { ID: String(id) }, { ok: pj(LeaseKeepAliveResponseSchema, r) });
      return r;
    } catch (e) {
      if (e instanceof ClientError) this.tr.add("leaseKeepAliveOnce", { ID: String(id) }, { err: { code: e.code, message: e.message } });
      throw e;
    } finally {
      stream.cancel();
    }
  }

  async snapshot(): Promise<SnapshotSummary> {
    const stream = this.conn.serverStream(Maintenance.method.snapshot, {}, 120_000);
    let chunks = 0;
    let bytes = 0;
    let lastRemaining = -1n;
    try {
      await new Promise<void>((resolve, reject) => {
        stream.on("data", (r: MessageShape<typeof Maintenance.method.snapshot.output>) => {
          chunks++;
          bytes += r.blob.length;
          lastRemaining = r.remainingBytes;
        });
        stream.on("error", (e: { code?: number; details?: string }) => reject(new ClientError(e.details ?? String(e), e.code, "grpc")));
        stream.on("end", () => resolve());
      });
    } catch (e) {
      if (e instanceof ClientError) this.tr.add("snapshot", undefined, { err: { code: e.code, message: e.message } });
      throw e;
    }
    const s = { chunks, bytes, lastRemaining };
    this.tr.add("snapshot", undefined, { ok: { nonEmpty: bytes > 0, lastRemaining: String(lastRemaining) } });
    return s;
  }

  async watch(): Promise<WatchSession> {
    const stream = this.conn.bidi(Watch.method.watch);
    const inbox = new Inbox<WatchResponse>();
    const tr = this.tr;
    stream.on("data", (r: WatchResponse) => inbox.push(r));
    stream.on("error", (e: { code?: number; details?: string }) => inbox.end(new ClientError(e.details ?? String(e), e.code, "grpc")));
    stream.on("end", () => inbox.end(new Error("watch stream ended")));
    const send = (op: string, req: MessageInitShape<typeof WatchRequestSchema>) => {
      const msg = create(WatchRequestSchema, req);
      tr.add(op, pj(WatchRequestSchema, msg), null);
      stream.write(msg);
      return Promise.resolve();
    };
    return {
      create: (req) => send("watch.create", { requestUnion: { case: "createRequest", value: req } }),
      cancel: (watchId) => send("watch.cancel", { requestUnion: { case: "cancelRequest", value: { watchId } } }),
      progress: () => send("watch.progress", { requestUnion: { case: "progressRequest", value: {} } }),
      next: async () => {
        try {
          const r = await inbox.next("a watch response");
          tr.add("watch.next", undefined, { ok: pj(WatchResponseSchema, r) });
          return r;
        } catch (e) {
          tr.add("watch.next", undefined, { err: e instanceof ClientError ? { code: e.code, message: e.message } : String(e) });
          throw e;
        }
      },
      close: async () => {
        stream.end();
        stream.cancel();
      },
    };
  }

  async close(): Promise<void> {
    this.conn.close();
  }
}

// ---------------------------------------------------------------------------
// JSON gateway

class HttpClient implements Client {
  readonly kind = "http" as const;
  constructor(private readonly member: Member, private readonly tr: Transcript) {}

  private async call<I extends DescMessage, O extends DescMessage>(
    op: string,
    path: string,
    inSchema: I,
    outSchema: O,
    req: MessageInitShape<I>,
  ): Promise<MessageShape<O>> {
    const reqJson = pj(inSchema, create(inSchema, req));
    const res = await fetch(`${this.member.clientUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(reqJson),
      signal: AbortSignal.timeout(WAIT_CAP_MS),
    });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = { nonJson: text };
    }
    this.tr.add(op, reqJson, { status: res.status, body });
    if (res.status !== 200) {
      const b = body as { message?: unknown; error?: unknown; code?: unknown };
      const msg = typeof b.message === "string" ? b.message : typeof b.error === "string" ? b.error : text;
      throw new ClientError(msg, typeof b.code === "number" ? b.code : undefined, "http", { status: res.status });
    }
    return fromJson(outSchema, body as JsonValue, { ignoreUnknownFields: true });
  }

  range(req: RangeReq) { return this.call("range", "/v3/kv/range", RangeRequestSchema, RangeResponseSchema, req); }
  put(req: PutReq) { return this.call("put", "/v3/kv/put", PutRequestSchema, PutResponseSchema, req); }
  deleteRange(req: DeleteReq) { return this.call("deleteRange", "/v3/kv/deleterange", DeleteRangeRequestSchema, DeleteRangeResponseSchema, req); }
  txn(req: TxnReq) { return this.call("txn", "/v3/kv/txn", TxnRequestSchema, TxnResponseSchema, req); }
  compact(req: CompactReq) { return this.call("compact", "/v3/kv/compaction", CompactionRequestSchema, CompactionResponseSchema, req); }
  async leaseGrant(req: LeaseGrantReq) {
    const r = await this.call("leaseGrant", "/v3/lease/grant", LeaseGrantRequestSchema, LeaseGrantResponseSchema, req);
    if (!req.ID) this.tr.serverChoseLease(r.ID);
    return r;
  }
  leaseRevoke(id: bigint) { return this.call("leaseRevoke", "/v3/lease/revoke", LeaseRevokeRequestSchema, LeaseRevokeResponseSchema, { ID: id }); }
  /** One request in one (ended) body, first response line out: the 3.4 gateway is half duplex. */
  async leaseKeepAliveOnce(id: bigint): Promise<LeaseKeepAliveResponse> {
    const reqJson = pj(LeaseKeepAliveRequestSchema, create(LeaseKeepAliveRequestSchema, { ID: id }));
    const res = await fetch(`${this.member.clientUrl}/v3/lease/keepalive`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(reqJson),
      signal: AbortSignal.timeout(WAIT_CAP_MS),
    });
    const reader = res.body?.getReader();
    let text = "";
    try {
      while (reader && !text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString("utf8");
      }
    } finally {
      await reader?.cancel().catch(() => undefined);
    }
    const line = text.split("\n")[0] ?? "";
    let body: unknown;
    try {
      body = JSON.parse(line);
    } catch {
      body = { nonJson: line };
    }
    this.tr.add("leaseKeepAliveOnce", reqJson, { status: res.status, body });
    const b = body as { result?: JsonValue; error?: { message?: string; code?: number } };
    if (res.status !== 200 || b.result === undefined) {
      throw new ClientError(b.error?.message ?? line, b.error?.code, "http", { status: res.status });
    }
    return fromJson(LeaseKeepAliveResponseSchema, b.result, { ignoreUnknownFields: true });
  }
  leaseTimeToLive(req: LeaseTimeToLiveReq) { return this.call("leaseTimeToLive", "/v3/lease/timetolive", LeaseTimeToLiveRequestSchema, LeaseTimeToLiveResponseSchema, req); }
  leaseLeases() { return this.call("leaseLeases", "/v3/lease/leases", LeaseLeasesRequestSchema, LeaseLeasesResponseSchema, {}); }
  status() { return this.call("status", "/v3/maintenance/status", StatusRequestSchema, StatusResponseSchema, {}); }
  hashKV(): Promise<HashKVResponse> {
    // etcd 3.4's gateway routes no HashKV (/v3/maintenance/hashkv is 404 there; /v3/maintenance/hash is Hash).
    throw new NotExpressible("HashKV over the 3.4 gateway");
  }
  alarmList() { return this.call("alarmList", "/v3/maintenance/alarm", AlarmRequestSchema, AlarmResponseSchema, {}); }
  defragment() { return this.call("defragment", "/v3/maintenance/defragment", DefragmentRequestSchema, DefragmentResponseSchema, {}); }
  memberList() { return this.call("memberList", "/v3/cluster/member/list", MemberListRequestSchema, MemberListResponseSchema, {}); }

  async snapshot(): Promise<SnapshotSummary> {
    throw new NotExpressible("snapshot over the gateway (binary blob in a JSON stream)");
  }

  /**
   * etcd 3.4's gateway (Go 1.19 net/http, HTTP/1.1) is not full duplex: it
   * answers once the request body is complete, then keeps streaming. So the
   * requests sent before the first next() go in one body (as with
   * `curl -d '{"create_request":...}' /v3/watch`), and later requests are
   * not expressible.
   */
  async watch(): Promise<WatchSession> {
    const inbox = new Inbox<WatchResponse>();
    const log = new LineLog(this.tr);
    const tr = this.tr;
    const url = new URL(`${this.member.clientUrl}/v3/watch`);
    const pending: string[] = [];
    let req: http.ClientRequest | undefined;
    const start = () => {
      const r = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { "content-type": "application/json" } });
      req = r;
      let buf = "";
      r.on("response", (res) => {
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            const obj = JSON.parse(line) as { result?: JsonValue; error?: unknown };
            log.arrived(obj);
            if (obj.result !== undefined) inbox.push(fromJson(WatchResponseSchema, obj.result, { ignoreUnknownFields: true }));
            else inbox.end(new ClientError(JSON.stringify(obj.error), undefined, "http"));
          }
        });
        res.on("end", () => inbox.end(new Error("watch stream ended")));
        res.on("error", (e) => inbox.end(e));
      });
      r.on("error", (e) => inbox.end(e));
      r.end(pending.join("\n"));
    };
    const send = (op: string, m: MessageInitShape<typeof WatchRequestSchema>) => {
      if (req) return Promise.reject(new NotExpressible("a watch request after the first response over the gateway (3.4 gateway is half duplex)"));
      const json = pj(WatchRequestSchema, create(WatchRequestSchema, m));
      tr.add(op, json, null);
      pending.push(JSON.stringify(json));
      return Promise.resolve();
    };
    return {
      create: (r) => send("watch.create", { requestUnion: { case: "createRequest", value: r } }),
      cancel: (watchId) => send("watch.cancel", { requestUnion: { case: "cancelRequest", value: { watchId } } }),
      progress: () => send("watch.progress", { requestUnion: { case: "progressRequest", value: {} } }),
      next: () => {
        if (!req) start();
        return log.consume(inbox.next("a watch response line"));
      },
      close: async () => {
        req?.destroy();
      },
    };
  }

  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------
// etcdctl

const codeByName: Record<string, number> = {
  OK: 0, Canceled: 1, Unknown: 2, InvalidArgument: 3, DeadlineExceeded: 4, NotFound: 5, AlreadyExists: 6,
  PermissionDenied: 7, ResourceExhausted: 8, FailedPrecondition: 9, Aborted: 10, OutOfRange: 11,
  Unimplemented: 12, Internal: 13, Unavailable: 14, DataLoss: 15, Unauthenticated: 16,
};

/** Go's encoding/json prints int64/uint64 as bare numbers; keep the big ones exact by quoting them. */
export function parseGoJson(text: string): unknown {
  return JSON.parse(text.replace(/([:\[,]\s*)(-?\d{16,})(?=\s*[,}\]])/g, '$1"$2"'));
}

const latin1 = (b: Uint8Array | string): string => (typeof b === "string" ? b : Buffer.from(b).toString("latin1"));

function argSafe(s: string, what: string): string {
  // argv cannot carry NUL, and Node encodes non-ASCII argv as UTF-8 (not the raw bytes).
  if (/[^\x01-\x7f]/.test(s)) throw new NotExpressible(`${what} with a NUL or non-ASCII byte as an etcdctl argument`);
  return s;
}

/** "a" -> "b", "a\xff" -> "b": the end of the prefix range, or undefined if none. */
function prefixEnd(key: string): string | undefined {
  const b = Buffer.from(key, "latin1");
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i] = b[i]! + 1;
      return out.toString("latin1");
    }
  }
  return undefined;
}

/** Turns key/range_end into etcdctl arguments (positional range end, --prefix or --from-key). */
function rangeArgs(key: string, end: string): string[] {
  if (end === "") return ["--", argSafe(key, "key")];
  if (end === "\0") return ["--from-key", "--", key === "\0" ? "" : argSafe(key, "key")];
  if (key !== "" && prefixEnd(key) === end) return ["--prefix", "--", argSafe(key, "key")];
  if (key === "\0" && end === "\0") return ["--from-key", "--", ""];
  return ["--", argSafe(key, "key"), argSafe(end, "range end")];
}

interface CtlResult {
  readonly exit: number;
  readonly stdout: string;
  readonly stderr: string;
}

class EtcdctlClient implements Client {
  readonly kind = "etcdctl" as const;
  private readonly bin: string;
  private readonly children = new Set<import("node:child_process").ChildProcess>();

  constructor(private readonly member: Member, private readonly tr: Transcript) {
    const b = etcdBinaries();
    if (!b.ok) throw new Error(`etcdctl unavailable: ${b.reason}`);
    this.bin = b.value.etcdctl;
  }

  private env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, ETCDCTL_API: "3" };
    for (const k of Object.keys(env)) if (k.startsWith("ETCDCTL_") && k !== "ETCDCTL_API") delete env[k];
    return env;
  }

  private run(args: string[], stdin?: string): Promise<CtlResult> {
    const full = [`--endpoints=${this.member.grpcTarget}`, "--dial-timeout=10s", "--command-timeout=30s", ...args];
    return new Promise((resolve, reject) => {
      const child = spawn(this.bin, full, { env: this.env(), stdio: ["pipe", "pipe", "pipe"] });
      this.children.add(child);
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("latin1").on("data", (d: string) => (stdout += d));
      child.stderr.setEncoding("latin1").on("data", (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      child.on("error", reject);
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        this.children.delete(child);
        resolve({ exit: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      // etcdctl reads stdin only for some commands; one that exits first closes
      // the pipe, and the EPIPE that follows is not a failure of the command.
      child.stdin.on("error", () => undefined);
      child.stdin.end(stdin ?? "");
    });
  }

  /** Runs, records, and on failure throws a ClientError carrying etcdctl's message and (if logged) the gRPC code. */
  private async exec(op: string, req: unknown, args: string[], stdin?: string): Promise<CtlResult> {
    const r = await this.run(args, stdin);
    let parsed: unknown = r.stdout;
    const trimmed = r.stdout.trim();
    if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
      try {
        parsed = parseGoJson(trimmed);
      } catch {
        parsed = r.stdout;
      }
    }
    this.tr.add(op, req, { exit: r.exit, stdout: parsed, stderr: r.stderr });
    if (r.exit !== 0) {
      const errLine = r.stderr.split("\n").find((l) => l.startsWith("Error: "));
      const m = /code = (\w+) desc = ([^"]*)"/.exec(r.stderr);
      const message = errLine ? errLine.slice("Error: ".length) : r.stderr.trim();
      throw new ClientError(message, m ? codeByName[m[1]!] : undefined, "etcdctl", { exit: r.exit, stderr: r.stderr });
    }
    return r;
  }

  private json<D extends DescMessage>(schema: D, r: CtlResult): MessageShape<D> {
    return fromJson(schema, parseGoJson(r.stdout.trim()) as JsonValue, { ignoreUnknownFields: true });
  }

  async range(req: RangeReq): Promise<RangeResponse> {
    const q = create(RangeRequestSchema, req);
    if (q.minModRevision || q.maxModRevision || q.minCreateRevision || q.maxCreateRevision) throw new NotExpressible("min/max revision filters in etcdctl get");
    const args = ["get", "-w", "json"];
    if (q.limit) args.push(`--limit=${q.limit}`);
    if (q.revision) args.push(`--rev=${q.revision}`);
    if (q.serializable) args.push("--consistency=s");
    if (q.keysOnly) args.push("--keys-only");
    if (q.countOnly) throw new NotExpressible("count_only with etcdctl 3.4 get (no --count-only flag)");
    if (q.sortOrder !== RangeRequest_SortOrder.NONE) args.push(`--order=${RangeRequest_SortOrder[q.sortOrder]}`);
    if (q.sortTarget !== RangeRequest_SortTarget.KEY || q.sortOrder !== RangeRequest_SortOrder.NONE) {
      const t = { KEY: "KEY", VERSION: "VERSION", CREATE: "CREATE", MOD: "MODIFY", VALUE: "VALUE" }[RangeRequest_SortTarget[q.sortTarget] as "KEY"];
      args.push(`--sort-by=${t}`);
    }
    args.push(...rangeArgs(latin1(q.key), latin1(q.rangeEnd)));
    const r = await this.exec("range", pj(RangeRequestSchema, q), args);
    return this.json(RangeResponseSchema, r);
  }

  async put(req: PutReq): Promise<PutResponse> {
    const q = create(PutRequestSchema, req);
    if (q.ignoreValue && q.value.length > 0) throw new NotExpressible("etcdctl put --ignore-value refuses a value client-side");
    const args = ["put", "-w", "json"];
    if (q.lease) args.push(`--lease=${q.lease.toString(16)}`);
    if (q.prevKv) args.push("--prev-kv");
    if (q.ignoreValue) args.push("--ignore-value");
    if (q.ignoreLease) args.push("--ignore-lease");
    args.push("--", argSafe(latin1(q.key), "key"));
    if (!q.ignoreValue || q.value.length > 0) args.push(argSafe(latin1(q.value), "value"));
    const r = await this.exec("put", pj(PutRequestSchema, q), args);
    return this.json(PutResponseSchema, r);
  }

  async deleteRange(req: DeleteReq): Promise<DeleteRangeResponse> {
    const q = create(DeleteRangeRequestSchema, req);
    const args = ["del", "-w", "json"];
    if (q.prevKv) args.push("--prev-kv");
    args.push(...rangeArgs(latin1(q.key), latin1(q.rangeEnd)));
    const r = await this.exec("deleteRange", pj(DeleteRangeRequestSchema, q), args);
    return this.json(DeleteRangeResponseSchema, r);
  }

  async txn(req: TxnReq): Promise<TxnResponse> {
    const q = create(TxnRequestSchema, req);
    const quote = (s: string) => JSON.stringify(argSafe(s, "txn argument"));
    const lines: string[] = [];
    for (const c of q.compare) {
      if (c.rangeEnd.length > 0) throw new NotExpressible("range compare in etcdctl txn");
      const op = { [Compare_CompareResult.EQUAL]: "=", [Compare_CompareResult.NOT_EQUAL]: "!=", [Compare_CompareResult.LESS]: "<", [Compare_CompareResult.GREATER]: ">" }[c.result];
      let target: string;
      let value: string;
      switch (c.targetUnion.case) {
        case "version": target = "ver"; value = String(c.targetUnion.value); break;
        case "createRevision": target = "c"; value = String(c.targetUnion.value); break;
        case "modRevision": target = "m"; value = String(c.targetUnion.value); break;
        case "value": target = "val"; value = latin1(c.targetUnion.value); break;
        default: throw new NotExpressible(`compare target ${Compare_CompareTarget[c.target]} in etcdctl txn`);
      }
      const expectedTarget = { ver: Compare_CompareTarget.VERSION, c: Compare_CompareTarget.CREATE, m: Compare_CompareTarget.MOD, val: Compare_CompareTarget.VALUE }[target];
      if (expectedTarget !== c.target) throw new NotExpressible("compare whose target and value kind disagree");
      lines.push(`${target}(${quote(latin1(c.key))}) ${op} ${quote(value)}`);
    }
    const opLine = (o: RequestOp): string => {
      switch (o.request.case) {
        case "requestPut": {
          const p = o.request.value;
          if (p.prevKv || p.ignoreValue || p.ignoreLease) throw new NotExpressible("put flags inside etcdctl txn");
          const lease = p.lease ? ` --lease=${p.lease.toString(16)}` : "";
          return `put${lease} ${quote(latin1(p.key))} ${quote(latin1(p.value))}`;
        }
        case "requestRange": {
          const g = o.request.value;
          if (g.limit || g.revision || g.keysOnly || g.countOnly || g.sortOrder || g.sortTarget || g.serializable || g.minModRevision || g.maxModRevision || g.minCreateRevision || g.maxCreateRevision)
            throw new NotExpressible("range options inside etcdctl txn");
          const [flag, ...rest] = rangeArgs(latin1(g.key), latin1(g.rangeEnd)).filter((a) => a !== "--");
          const keyArgs = flag !== undefined && flag.startsWith("--") ? [flag, ...rest.map(quote)] : [flag ?? "", ...rest].map(quote);
          return `get ${keyArgs.join(" ")}`;
        }
        case "requestDeleteRange": {
          const d = o.request.value;
          if (d.prevKv) throw new NotExpressible("del --prev-kv inside etcdctl txn");
          const [flag, ...rest] = rangeArgs(latin1(d.key), latin1(d.rangeEnd)).filter((a) => a !== "--");
          const keyArgs = flag !== undefined && flag.startsWith("--") ? [flag, ...rest.map(quote)] : [flag ?? "", ...rest].map(quote);
          return `del ${keyArgs.join(" ")}`;
        }
        default:
          throw new NotExpressible(`${o.request.case ?? "empty"} op in etcdctl txn`);
      }
    };
    const stdin = [...lines, "", ...q.success.map(opLine), "", ...q.failure.map(opLine), ""].join("\n") + "\n";
    const r = await this.exec("txn", pj(TxnRequestSchema, q), ["txn", "-w", "json"], stdin);
    // Go's encoding/json spells the oneof as {"Response":{"ResponsePut":{...}}}.
    const o = parseGoJson(r.stdout.trim()) as { responses?: Array<{ Response?: Record<string, unknown> }> | null } & Record<string, unknown>;
    const goName: Record<string, string> = { ResponseRange: "response_range", ResponsePut: "response_put", ResponseDeleteRange: "response_delete_range", ResponseTxn: "response_txn" };
    const responses = (o.responses ?? []).map((x) => Object.fromEntries(Object.entries(x.Response ?? {}).map(([k, v]) => [goName[k] ?? k, v])));
    return fromJson(TxnResponseSchema, { ...o, responses } as unknown as JsonValue, { ignoreUnknownFields: true });
  }

  async compact(req: CompactReq): Promise<CompactionResponse> {
    const q = create(CompactionRequestSchema, req);
    const args = ["compaction", ...(q.physical ? ["--physical"] : []), "--", String(q.revision)];
    await this.exec("compact", pj(CompactionRequestSchema, q), args);
    return create(CompactionResponseSchema, {});
  }

  /** etcdctl prints lease responses flat: {cluster_id, member_id, revision, raft_term, ...}. */
  private flatHeader(o: Record<string, unknown>): JsonValue {
    if (o["header"] && typeof o["header"] === "object") return o["header"] as JsonValue;
    return { cluster_id: o["cluster_id"] ?? "0", member_id: o["member_id"] ?? "0", revision: o["revision"] ?? "0", raft_term: o["raft_term"] ?? "0" } as unknown as JsonValue;
  }

  async leaseGrant(req: LeaseGrantReq): Promise<LeaseGrantResponse> {
    const q = create(LeaseGrantRequestSchema, req);
    if (q.ID) throw new NotExpressible("client-chosen lease ID in etcdctl lease grant");
    const r = await this.exec("leaseGrant", pj(LeaseGrantRequestSchema, q), ["lease", "grant", "-w", "json", "--", String(q.TTL)]);
    const o = parseGoJson(r.stdout.trim()) as Record<string, unknown>;
    const res = fromJson(LeaseGrantResponseSchema, { header: this.flatHeader(o), ID: o["ID"], TTL: o["TTL"], error: o["Error"] ?? "" } as unknown as JsonValue);
    this.tr.serverChoseLease(res.ID);
    return res;
  }

  async leaseRevoke(id: bigint): Promise<LeaseRevokeResponse> {
    const r = await this.exec("leaseRevoke", { ID: String(id) }, ["lease", "revoke", "-w", "json", "--", id.toString(16)]);
    const o = parseGoJson(r.stdout.trim()) as Record<string, unknown>;
    return fromJson(LeaseRevokeResponseSchema, { header: this.flatHeader(o) } as unknown as JsonValue);
  }

  async leaseKeepAliveOnce(id: bigint): Promise<LeaseKeepAliveResponse> {
    const r = await this.exec("leaseKeepAliveOnce", { ID: String(id) }, ["lease", "keep-alive", "--once", "-w", "json", "--", id.toString(16)]);
    const o = parseGoJson(r.stdout.trim()) as Record<string, unknown>;
    return fromJson(LeaseKeepAliveResponseSchema, { header: this.flatHeader(o), ID: o["ID"], TTL: o["TTL"] } as unknown as JsonValue);
  }

  async leaseTimeToLive(req: LeaseTimeToLiveReq): Promise<LeaseTimeToLiveResponse> {
    const q = create(LeaseTimeToLiveRequestSchema, req);
    const args = ["lease", "timetolive", "-w", "json", ...(q.keys ? ["--keys"] : []), "--", q.ID.toString(16)];
    const r = await this.exec("leaseTimeToLive", pj(LeaseTimeToLiveRequestSchema, q), args);
    const o = parseGoJson(r.stdout.trim()) as Record<string, unknown>;
    return fromJson(LeaseTimeToLiveResponseSchema, { header: this.flatHeader(o), ID: o["id"], TTL: o["ttl"], grantedTTL: o["granted-ttl"], keys: o["keys"] ?? [] } as unknown as JsonValue);
  }

  async leaseLeases(): Promise<LeaseLeasesResponse> {
    const r = await this.exec("leaseLeases", undefined, ["lease", "list", "-w", "json"]);
    const o = parseGoJson(r.stdout.trim()) as Record<string, unknown>;
    const leases = ((o["leases"] as Array<{ id: unknown }> | null) ?? []).map((l) => ({ ID: l.id }));
    return fromJson(LeaseLeasesResponseSchema, { header: this.flatHeader(o), leases } as unknown as JsonValue);
  }

  async status(): Promise<StatusResponse> {
    const r = await this.exec("status", undefined, ["endpoint", "status", "-w", "json"]);
    const arr = parseGoJson(r.stdout.trim()) as Array<{ Status: JsonValue }>;
    return fromJson(StatusResponseSchema, arr[0]!.Status, { ignoreUnknownFields: true });
  }

  async hashKV(revision: bigint): Promise<HashKVResponse> {
    const r = await this.exec("hashKV", { revision: String(revision) }, ["endpoint", "hashkv", "-w", "json", `--rev=${revision}`]);
    const arr = parseGoJson(r.stdout.trim()) as Array<{ HashKV: JsonValue }>;
    return fromJson(HashKVResponseSchema, arr[0]!.HashKV, { ignoreUnknownFields: true });
  }

  async alarmList(): Promise<AlarmResponse> {
    const r = await this.exec("alarmList", undefined, ["alarm", "list", "-w", "json"]);
    return this.json(AlarmResponseSchema, r);
  }

  async defragment(): Promise<DefragmentResponse> {
    await this.exec("defragment", undefined, ["defrag"]);
    return create(DefragmentResponseSchema, {});
  }

  async snapshot(): Promise<SnapshotSummary> {
    const dir = mkdtempSync(join(tmpdir(), "etcdts-snap-"));
    try {
      const file = join(dir, "snap.db");
      const r = await this.run(["snapshot", "save", file]);
      const size = r.exit === 0 ? statSync(file).size : 0;
      // The path and timing in its output differ run to run; record what matters.
      this.tr.add("snapshot", undefined, { exit: r.exit, nonEmpty: size > 0 });
      if (r.exit !== 0) throw new ClientError(r.stderr.trim(), undefined, "etcdctl", { exit: r.exit });
      return { chunks: 1, bytes: size, lastRemaining: 0n };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  async memberList(): Promise<MemberListResponse> {
    const r = await this.exec("memberList", undefined, ["member", "list", "-w", "json"]);
    return this.json(MemberListResponseSchema, r);
  }

  /** One `etcdctl watch` process per session; it expresses exactly one create. */
  async watch(): Promise<WatchSession> {
    const inbox = new Inbox<WatchResponse>();
    const log = new LineLog(this.tr);
    const tr = this.tr;
    let child: import("node:child_process").ChildProcess | undefined;
    const self = this;
    return {
      async create(req: WatchCreateReq) {
        if (child) throw new NotExpressible("more than one watch per etcdctl watch process");
        const q = create(WatchCreateRequestSchema, req);
        if (q.watchId || q.filters.length || q.fragment || q.progressNotify) throw new NotExpressible("watch id/filters/fragment/progress_notify with etcdctl watch");
        const args = [`--endpoints=${self.member.grpcTarget}`, "watch", "-w", "json"];
        if (q.startRevision) args.push(`--rev=${q.startRevision}`);
        if (q.prevKv) args.push("--prev-kv");
        // etcdctl watch parses "--" itself (watch ... -- <command>), so no separator here.
        const ra = rangeArgs(latin1(q.key), latin1(q.rangeEnd)).filter((a) => a !== "--");
        if (ra.some((a) => a.startsWith("-") && !a.startsWith("--"))) throw new NotExpressible("a key starting with '-' for etcdctl watch");
        args.push(...ra);
        tr.add("watch.create", pj(WatchCreateRequestSchema, q), null);
        const c = spawn(self.bin, args, { env: self.env(), stdio: ["ignore", "pipe", "pipe"] });
        child = c;
        self.children.add(c);
        let buf = "";
        let stderr = "";
        c.stdout.setEncoding("latin1").on("data", (d: string) => {
          buf += d;
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            // clientv3.WatchResponse as Go JSON: {Header, Events, CompactRevision, Canceled, Created}
            const o = parseGoJson(line) as Record<string, unknown>;
            log.arrived(o);
            const events = ((o["Events"] as Array<Record<string, unknown>> | null) ?? []).map((e) => ({ type: e["type"] ?? 0, kv: e["kv"] ?? null, prev_kv: e["prev_kv"] ?? null }));
            try {
              inbox.push(
                fromJson(
                  WatchResponseSchema,
                  { header: o["Header"] ?? null, events, compact_revision: o["CompactRevision"] ?? 0, canceled: o["Canceled"] ?? false, created: o["Created"] ?? false } as unknown as JsonValue,
                  { ignoreUnknownFields: true },
                ),
              );
            } catch (e) {
              inbox.end(e instanceof Error ? e : new Error(String(e)));
            }
          }
        });
        c.stderr.setEncoding("latin1").on("data", (d: string) => (stderr += d));
        c.on("close", (code) => {
          self.children.delete(c);
          inbox.end(new ClientError(`etcdctl watch exited ${code}: ${stderr.trim()}`, undefined, "etcdctl"));
        });
      },
      cancel: () => Promise.reject(new NotExpressible("cancel with etcdctl watch")),
      progress: () => Promise.reject(new NotExpressible("progress request with etcdctl watch")),
      next: () => log.consume(inbox.next("an etcdctl watch line")),
      close: async () => {
        child?.kill("SIGKILL");
      },
    };
  }

  async close(): Promise<void> {
    for (const c of this.children) c.kill("SIGKILL");
    this.children.clear();
  }
}

// ---------------------------------------------------------------------------
// etcd3 (npm)

/** etcd3 returns messages with Buffers, int64 as strings and enums as names; turn them into protobuf JSON. */
/** etcd3's own proto spells enum values in CamelCase ("Put", "Nospace"). */
const etcd3Enums: Record<string, Record<string, number>> = {
  type: { Put: 0, Delete: 1 },
  alarm: { None: 0, Nospace: 1, Corrupt: 2 },
};

function etcd3Json(v: unknown): JsonValue {
  if (Buffer.isBuffer(v)) return v.toString("base64");
  if (Array.isArray(v)) return v.map(etcd3Json);
  if (v !== null && typeof v === "object") {
    const out: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x === undefined) continue;
      const e = etcd3Enums[k];
      out[k] = e && typeof x === "string" && x in e ? e[x]! : etcd3Json(x);
    }
    return out;
  }
  return (v ?? null) as JsonValue;
}

/** grpc-js error text is "<code> <NAME>: <details>"; etcd3 keeps it in its typed errors. */
function etcd3Error(e: unknown): ClientError {
  const err = e as Error;
  // etcd3 sometimes rewords around it ("Lease 5 NOT_FOUND: ... is expired or revoked").
  const m = /(\d+) [A-Z_]+: ([\s\S]*)$/.exec(err.message ?? "");
  return new ClientError(m ? m[2]! : String(err.message), m ? Number(m[1]) : undefined, "etcd3", { name: err.constructor?.name });
}

type AnyBuilder = { request: Record<string, unknown>; exec(): Promise<unknown> };

class Etcd3Client implements Client {
  readonly kind = "etcd3" as const;
  private readonly c: Etcd3;

  constructor(member: Member, private readonly tr: Transcript) {
    this.c = new Etcd3({ hosts: member.clientUrl, dialTimeout: 10_000 });
  }

  private async record<D extends DescMessage>(op: string, req: unknown, schema: D, f: () => Promise<unknown>): Promise<MessageShape<D>> {
    let raw: unknown;
    try {
      raw = await f();
    } catch (e) {
      if (e instanceof NotExpressible) throw e;
      const ce = etcd3Error(e);
      this.tr.add(op, req, { err: { name: ce.extra["name"], code: ce.code, message: ce.message } });
      throw ce;
    }
    const json = etcd3Json(raw);
    this.tr.add(op, req, { ok: json });
    return fromJson(schema, json, { ignoreUnknownFields: true });
  }

  async range(req: RangeReq): Promise<RangeResponse> {
    const q = create(RangeRequestSchema, req);
    const key = Buffer.from(q.key);
    let b: ReturnType<Etcd3["get"]> | ReturnType<Etcd3["getAll"]>;
    if (q.rangeEnd.length === 0) {
      if (q.limit !== 0n && q.limit !== 1n) throw new NotExpressible("single-key get with a limit other than 1 in etcd3");
      if (q.sortOrder || q.sortTarget || q.countOnly) throw new NotExpressible("sort/count on a single-key get in etcd3");
      b = this.c.get(key); // always limit 1
    } else {
      const all = this.c.getAll().inRange({ start: key, end: Buffer.from(q.rangeEnd) });
      if (q.limit) all.limit(Number(q.limit));
      if (q.sortOrder || q.sortTarget) {
        const t = (["Key", "Version", "Create", "Mod", "Value"] as const)[q.sortTarget];
        const o = (["None", "Ascend", "Descend"] as const)[q.sortOrder];
        if (t === undefined || o === undefined) throw new NotExpressible("unknown sort enum through etcd3");
        all.sort(t, o);
      }
      b = all;
    }
    if (q.revision) b.revision(String(q.revision));
    if (q.serializable) b.serializable(true);
    if (q.minModRevision) b.minModRevision(String(q.minModRevision));
    if (q.maxModRevision) b.maxModRevision(String(q.maxModRevision));
    if (q.minCreateRevision) b.minCreateRevision(String(q.minCreateRevision));
    if (q.maxCreateRevision) b.maxCreateRevision(String(q.maxCreateRevision));
    // keys()/count() set exactly these flags before exec(); we want the whole response.
    const ab = b as unknown as AnyBuilder;
    if (q.keysOnly) ab.request["keys_only"] = true;
    if (q.countOnly) ab.request["count_only"] = true;
    return this.record("range", pj(RangeRequestSchema, q), RangeResponseSchema, () => ab.exec());
  }

  async put(req: PutReq): Promise<PutResponse> {
    const q = create(PutRequestSchema, req);
    if (q.prevKv) throw new NotExpressible("put prev_kv through etcd3's builder");
    if (q.ignoreValue) throw new NotExpressible("ignore_value through etcd3's builder (touch() puts an empty value)");
    const b = this.c.put(Buffer.from(q.key)).value(Buffer.from(q.value));
    if (q.lease) b.lease(String(q.lease));
    if (q.ignoreLease) b.ignoreLease();
    return this.record("put", pj(PutRequestSchema, q), PutResponseSchema, () => b.exec());
  }

  async deleteRange(req: DeleteReq): Promise<DeleteRangeResponse> {
    const q = create(DeleteRangeRequestSchema, req);
    const d = this.c.delete();
    if (q.rangeEnd.length === 0) d.key(Buffer.from(q.key));
    else d.inRange({ start: Buffer.from(q.key), end: Buffer.from(q.rangeEnd) });
    if (q.prevKv) (d as unknown as AnyBuilder).request["prev_kv"] = true; // what getPrevious() sets
    return this.record("deleteRange", pj(DeleteRangeRequestSchema, q), DeleteRangeResponseSchema, () => d.exec());
  }

  async txn(req: TxnReq): Promise<TxnResponse> {
    const q = create(TxnRequestSchema, req);
    if (q.compare.length === 0) throw new NotExpressible("txn without compares through etcd3's if()");
    const targetName = { [Compare_CompareTarget.VERSION]: "Version", [Compare_CompareTarget.CREATE]: "Create", [Compare_CompareTarget.MOD]: "Mod", [Compare_CompareTarget.VALUE]: "Value", [Compare_CompareTarget.LEASE]: "Lease" } as const;
    const cmpName = { [Compare_CompareResult.EQUAL]: "==", [Compare_CompareResult.NOT_EQUAL]: "!=", [Compare_CompareResult.LESS]: "<", [Compare_CompareResult.GREATER]: ">" } as const;
    let builder: ReturnType<Etcd3["if"]> | undefined;
    for (const c of q.compare) {
      if (c.rangeEnd.length > 0) throw new NotExpressible("range compare in etcd3");
      const v = c.targetUnion.value;
      if (v === undefined) throw new NotExpressible("compare without a value in etcd3");
      const value: string | Buffer = typeof v === "bigint" ? String(v) : Buffer.from(v);
      const args = [Buffer.from(c.key), targetName[c.target], cmpName[c.result], value] as const;
      const expected = { version: Compare_CompareTarget.VERSION, createRevision: Compare_CompareTarget.CREATE, modRevision: Compare_CompareTarget.MOD, value: Compare_CompareTarget.VALUE, lease: Compare_CompareTarget.LEASE }[c.targetUnion.case!];
      if (expected !== c.target) throw new NotExpressible("compare whose target and value kind disagree");
      builder = builder ? builder.and(...(args as unknown as Parameters<typeof builder.and>)) : this.c.if(...(args as unknown as Parameters<Etcd3["if"]>));
    }
    const op = (o: RequestOp): unknown => {
      switch (o.request.case) {
        case "requestRange": {
          const g = o.request.value;
          return { request_range: { ...etcd3Req(RangeRequestSchema, g) } };
        }
        case "requestPut":
          return { request_put: etcd3Req(PutRequestSchema, o.request.value) };
        case "requestDeleteRange":
          return { request_delete_range: etcd3Req(DeleteRangeRequestSchema, o.request.value) };
        default:
          throw new NotExpressible(`${o.request.case ?? "empty"} op through etcd3's then()/else()`);
      }
    };
    const b = builder!;
    const ops = (xs: RequestOp[]) => xs.map(op) as Parameters<typeof b.then>;
    b.then(...ops(q.success)).else(...ops(q.failure));
    return this.record("txn", pj(TxnRequestSchema, q), TxnResponseSchema, () => b.commit());
  }

  compact(req: CompactReq) {
    const q = create(CompactionRequestSchema, req);
    return this.record("compact", pj(CompactionRequestSchema, q), CompactionResponseSchema, () => this.c.kv.compact({ revision: String(q.revision), physical: q.physical }));
  }
  async leaseGrant(req: LeaseGrantReq) {
    const q = create(LeaseGrantRequestSchema, req);
    const r = await this.record("leaseGrant", pj(LeaseGrantRequestSchema, q), LeaseGrantResponseSchema, () => this.c.leaseClient.leaseGrant({ TTL: String(q.TTL), ID: String(q.ID) }));
    if (!q.ID) this.tr.serverChoseLease(r.ID);
    return r;
  }
  leaseRevoke(id: bigint) {
    return this.record("leaseRevoke", { ID: String(id) }, LeaseRevokeResponseSchema, () => this.c.leaseClient.leaseRevoke({ ID: String(id) }));
  }
  async leaseKeepAliveOnce(id: bigint): Promise<LeaseKeepAliveResponse> {
    return this.record("leaseKeepAliveOnce", { ID: String(id) }, LeaseKeepAliveResponseSchema, async () => {
      const stream = await this.c.leaseClient.leaseKeepAlive();
      try {
        const p = new Promise<unknown>((resolve, reject) => {
          stream.on("data", resolve);
          stream.on("error", reject);
        });
        stream.write({ ID: String(id) });
        return await timeoutAfter(p, WAIT_CAP_MS, "etcd3 keepalive response");
      } finally {
        stream.end();
      }
    });
  }
  leaseTimeToLive(req: LeaseTimeToLiveReq) {
    const q = create(LeaseTimeToLiveRequestSchema, req);
    return this.record("leaseTimeToLive", pj(LeaseTimeToLiveRequestSchema, q), LeaseTimeToLiveResponseSchema, () => this.c.leaseClient.leaseTimeToLive({ ID: String(q.ID), keys: q.keys }));
  }
  leaseLeases() {
    return this.record("leaseLeases", undefined, LeaseLeasesResponseSchema, () => this.c.leaseClient.leaseLeases());
  }
  status() { return this.record("status", undefined, StatusResponseSchema, () => this.c.maintenance.status({})); }
  hashKV(): Promise<HashKVResponse> {
    throw new NotExpressible("HashKV through etcd3 (its maintenance client has no HashKV)");
  }
  alarmList() { return this.record("alarmList", undefined, AlarmResponseSchema, () => this.c.maintenance.alarm({ action: "Get" as never })); }
  defragment() { return this.record("defragment", undefined, DefragmentResponseSchema, () => this.c.maintenance.defragment({})); }
  memberList() { return this.record("memberList", undefined, MemberListResponseSchema, () => this.c.cluster.memberList({})); }
  async snapshot(): Promise<SnapshotSummary> {
    throw new NotExpressible("snapshot through etcd3 (no API)");
  }

  async watch(): Promise<WatchSession> {
    const inbox = new Inbox<WatchResponse>();
    const log = new LineLog(this.tr, "watch.next");
    const tr = this.tr;
    const watchers: Array<import("etcd3").Watcher> = [];
    const c = this.c;
    return {
      async create(req: WatchCreateReq) {
        const q = create(WatchCreateRequestSchema, req);
        if (q.watchId || q.fragment || q.progressNotify) throw new NotExpressible("watch id/fragment/progress_notify through etcd3's watch()");
        const b = c.watch();
        if (q.rangeEnd.length === 0) b.key(Buffer.from(q.key));
        else b.inRange({ start: Buffer.from(q.key), end: Buffer.from(q.rangeEnd) });
        if (q.startRevision) b.startRevision(String(q.startRevision));
        if (q.prevKv) b.withPreviousKV();
        // etcd3's ignore() is an alias of only() (a client bug): only("delete") sends NOPUT.
        if (q.filters.length > 0) {
          const only = (["put", "delete"] as const).filter((op) => !q.filters.includes(op === "put" ? WatchCreateRequest_FilterType.NOPUT : WatchCreateRequest_FilterType.NODELETE));
          if (only.length === 0) throw new NotExpressible("both filters through etcd3");
          b.only(...only);
        }
        tr.add("watch.create", pj(WatchCreateRequestSchema, q), null);
        const w = b.watcher();
        const push = (res: unknown) => {
          const json = etcd3Json(res);
          log.arrived({ ok: json });
          inbox.push(fromJson(WatchResponseSchema, json, { ignoreUnknownFields: true }));
        };
        w.on("connected", push);
        w.on("data", push);
        w.on("error", (e) => inbox.end(etcd3Error(e)));
        watchers.push(w);
        await timeoutAfter(new Promise((resolve) => w.once("connected", resolve)), WAIT_CAP_MS, "etcd3 watcher connected");
      },
      cancel: () => Promise.reject(new NotExpressible("cancel by watch id through etcd3 (its cancel response is consumed internally)")),
      progress: () => Promise.reject(new NotExpressible("progress request through etcd3")),
      next: () => log.consume(inbox.next("an etcd3 watch response")),
      close: async () => {
        await Promise.all(watchers.map((w) => w.cancel().catch(() => undefined)));
      },
    };
  }

  async close(): Promise<void> {
    this.c.close();
  }
}

/** A protobuf-es message as the snake_case object etcd3's RPC layer expects (Buffers for bytes). */
function etcd3Req<D extends DescMessage>(schema: D, msg: MessageShape<D>): Record<string, unknown> {
  const json = toJson(schema, msg, { useProtoFieldName: true }) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const f of schema.fields) {
    const v = json[f.name];
    if (v === undefined) continue;
    out[f.name] = f.fieldKind === "scalar" && f.scalar === 12 /* BYTES */ ? Buffer.from(v as string, "base64") : v;
  }
  return out;
}

// ---------------------------------------------------------------------------

export function makeClient(kind: ClientKind, member: Member, tr: Transcript): Client {
  switch (kind) {
    case "grpc":
      return new GrpcClient(member, tr);
    case "http":
      return new HttpClient(member, tr);
    case "etcdctl":
      return new EtcdctlClient(member, tr);
    case "etcd3":
      return new Etcd3Client(member, tr);
  }
}

export type { PutRequest, RangeRequest, DeleteRangeRequest, TxnRequest, WatchCreateRequest };
