// etcd's grpc-gateway: the JSON-over-HTTP/1.1 form of the gRPC API, served
// under /v3/ on the client port. Generic over the registered handlers
// (registry.ts); every path is a POST whose body is the request message.
//
// Wire behaviour (observed against etcd 3.4.23, see gateway.test.ts):
//
// * Unary: the body is read up to the end of its first JSON value (anything
//   after it is ignored; an empty body is an empty request). 200 answers carry
//   Content-Type: application/json, Grpc-Metadata-Content-Type:
//   application/grpc and the jsonpb form of the response (jsonpb.ts).
// * Errors: body {"error":M,"message":M,"code":C} (flavor "3.4") or
//   {"code":C,"message":M} (flavor "3.6", grpc-gateway v2 / google.rpc.Status
//   with EmitUnpopulated=false); HTTP status from the gRPC code (see
//   httpStatusFromCode). A request that cannot be decoded is code 3 with Go's
//   encoding/json text. An error returned by the handler additionally comes
//   chunked with trailer Grpc-Trailer-Content-Type: application/grpc (3.4).
// * Server streaming (Snapshot, Observe): one line per message,
//   {"result":{...}}\n, chunked. An error before the first message is a plain
//   error response; after it, a final chunk {"error":{...}} without newline.
// * Bidi (Watch, LeaseKeepAlive): the body is a stream of consecutive JSON
//   values, each handed to the handler as it arrives; a value that fails to
//   decode ends the request stream silently, except the first, which fails the
//   call with code 2 (Unknown, HTTP 500) as in etcd. Responses as above.
//
// Flavour "3.6" (grpc-gateway v2, compared with etcd 3.6.16 in
// gateway36.test.ts) differs: requests are decoded by protojson's rules
// (protojson.ts) after encoding/json framing; unary and server-streaming
// calls start only once the body has been read to its end; in bidi streams
// every value is decoded in the sender loop, so a bad value (even the first)
// just ends the request stream; a stream that ends without a message has no
// Content-Type; stream error chunks end with a newline; "TE: trailers"
// chunks route answers.
//
// Request metadata (CallContext.metadata) follows grpc-gateway v1:
// "authorization" from the Authorization header, "grpc-metadata-<k>" headers
// as "<k>", well-known HTTP headers as "grpcgateway-<header>", plus
// x-forwarded-host / x-forwarded-for.

import type { IncomingMessage, ServerResponse } from "node:http";
import { STATUS_CODES } from "node:http";
import type { DescMessage, DescMethod, DescService, MessageShape } from "@bufbuild/protobuf";
import { Code, EtcdError, toStatus } from "../../errors.js";
import type { CodeValue } from "../../errors.js";
import type { AnyServiceImpl, BidiHandler, CallContext, ServerStreamHandler, UnaryHandler } from "../registry.js";
import { findHandler } from "../registry.js";
import { Auth, Cluster, KV, Lease, Maintenance, Watch } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Lock } from "../../../gen/v3lockpb/v3lock_pb.js";
import { Election } from "../../../gen/v3electionpb/v3election_pb.js";
import { StreamDecoder, goJsonString } from "./gojson.js";
import type { DecodeResult, JValue } from "./gojson.js";
import { JsonDecodeError, messageFromJson, messageToJson } from "./jsonpb.js";
import { messageFromProtoJson, protoJsonString } from "./protojson.js";
import { goHttpError, sendBody, writeHeadSorted } from "./respond.js";

/**
 * Which etcd release's gateway to imitate where they differ: error body,
 * FailedPrecondition's HTTP status, /health body. "3.4" is byte-exact against
 * etcd 3.4.23; "3.6" follows etcd 3.6's sources (grpc-gateway v2).
 */
export type GatewayFlavor = "3.4" | "3.6";

/** One gateway binding: POST path -> gRPC method. */
export interface GatewayRoute {
  readonly path: string;
  readonly service: DescService;
  readonly method: DescMethod;
}

function r(path: string, service: DescService, method: DescMethod): GatewayRoute {
  return { path, service, method };
}

/** Every HTTP binding etcd's protos declare (rpc.proto, v3lock.proto, v3election.proto). */
export const GATEWAY_ROUTES: readonly GatewayRoute[] = [
  r("/v3/kv/range", KV, KV.method.range),
  r("/v3/kv/put", KV, KV.method.put),
  r("/v3/kv/deleterange", KV, KV.method.deleteRange),
  r("/v3/kv/txn", KV, KV.method.txn),
  r("/v3/kv/compaction", KV, KV.method.compact),
  r("/v3/watch", Watch, Watch.method.watch),
  r("/v3/lease/grant", Lease, Lease.method.leaseGrant),
  r("/v3/lease/revoke", Lease, Lease.method.leaseRevoke),
  r("/v3/kv/lease/revoke", Lease, Lease.method.leaseRevoke),
  r("/v3/lease/keepalive", Lease, Lease.method.leaseKeepAlive),
  r("/v3/lease/timetolive", Lease, Lease.method.leaseTimeToLive),
  r("/v3/kv/lease/timetolive", Lease, Lease.method.leaseTimeToLive),
  r("/v3/lease/leases", Lease, Lease.method.leaseLeases),
  r("/v3/kv/lease/leases", Lease, Lease.method.leaseLeases),
  r("/v3/cluster/member/add", Cluster, Cluster.method.memberAdd),
  r("/v3/cluster/member/remove", Cluster, Cluster.method.memberRemove),
  r("/v3/cluster/member/update", Cluster, Cluster.method.memberUpdate),
  r("/v3/cluster/member/list", Cluster, Cluster.method.memberList),
  r("/v3/cluster/member/promote", Cluster, Cluster.method.memberPromote),
  r("/v3/maintenance/alarm", Maintenance, Maintenance.method.alarm),
  r("/v3/maintenance/status", Maintenance, Maintenance.method.status),
  r("/v3/maintenance/defragment", Maintenance, Maintenance.method.defragment),
  r("/v3/maintenance/hash", Maintenance, Maintenance.method.hash),
  r("/v3/maintenance/hashkv", Maintenance, Maintenance.method.hashKV),
  r("/v3/maintenance/snapshot", Maintenance, Maintenance.method.snapshot),
  r("/v3/maintenance/transfer-leadership", Maintenance, Maintenance.method.moveLeader),
  r("/v3/maintenance/downgrade", Maintenance, Maintenance.method.downgrade),
  r("/v3/auth/enable", Auth, Auth.method.authEnable),
  r("/v3/auth/disable", Auth, Auth.method.authDisable),
  r("/v3/auth/status", Auth, Auth.method.authStatus),
  r("/v3/auth/authenticate", Auth, Auth.method.authenticate),
  r("/v3/auth/user/add", Auth, Auth.method.userAdd),
  r("/v3/auth/user/get", Auth, Auth.method.userGet),
  r("/v3/auth/user/list", Auth, Auth.method.userList),
  r("/v3/auth/user/delete", Auth, Auth.method.userDelete),
  r("/v3/auth/user/changepw", Auth, Auth.method.userChangePassword),
  r("/v3/auth/user/grant", Auth, Auth.method.userGrantRole),
  r("/v3/auth/user/revoke", Auth, Auth.method.userRevokeRole),
  r("/v3/auth/role/add", Auth, Auth.method.roleAdd),
  r("/v3/auth/role/get", Auth, Auth.method.roleGet),
  r("/v3/auth/role/list", Auth, Auth.method.roleList),
  r("/v3/auth/role/delete", Auth, Auth.method.roleDelete),
  r("/v3/auth/role/grant", Auth, Auth.method.roleGrantPermission),
  r("/v3/auth/role/revoke", Auth, Auth.method.roleRevokePermission),
  r("/v3/lock/lock", Lock, Lock.method.lock),
  r("/v3/lock/unlock", Lock, Lock.method.unlock),
  r("/v3/election/campaign", Election, Election.method.campaign),
  r("/v3/election/proclaim", Election, Election.method.proclaim),
  r("/v3/election/leader", Election, Election.method.leader),
  r("/v3/election/observe", Election, Election.method.observe),
  r("/v3/election/resign", Election, Election.method.resign),
];

/**
 * grpc-gateway's gRPC code -> HTTP status. v1 (etcd 3.4/3.5) answers
 * FailedPrecondition with 412 (observed on 3.4.23); v2 (etcd 3.6) with 400.
 */
export function httpStatusFromCode(code: number, flavor: GatewayFlavor = "3.4"): number {
  switch (code) {
    case Code.OK: return 200;
    case Code.Canceled: return 408;
    case Code.Unknown: return 500;
    case Code.InvalidArgument: return 400;
    case Code.DeadlineExceeded: return 504;
    case Code.NotFound: return 404;
    case Code.AlreadyExists: return 409;
    case Code.PermissionDenied: return 403;
    case Code.Unauthenticated: return 401;
    case Code.ResourceExhausted: return 429;
    case Code.FailedPrecondition: return flavor === "3.4" ? 412 : 400;
    case Code.Aborted: return 409;
    case Code.OutOfRange: return 400;
    case Code.Unimplemented: return 501;
    case Code.Internal: return 500;
    case Code.Unavailable: return 503;
    case Code.DataLoss: return 500;
    default: return 500;
  }
}

/** The JSON body of a failed gateway call. */
export function errorBody(code: number, message: string, flavor: GatewayFlavor = "3.4"): string {
  const parts: string[] = [];
  if (flavor === "3.4") {
    if (message !== "") parts.push(`"error":${goJsonString(message)}`, `"message":${goJsonString(message)}`);
    if (code !== 0) parts.push(`"code":${code}`);
  } else {
    if (code !== 0) parts.push(`"code":${code}`);
    if (message !== "") parts.push(`"message":${protoJsonString(message)}`);
  }
  return `{${parts.join(",")}}`;
}

/**
 * The final chunk of a stream that failed after its first message. v2 wraps
 * the status in a Go map, so encoding/json re-compacts protojson's text: it
 * gains HTML escaping (<, >, &, U+2028, U+2029) and a newline delimiter.
 */
export function streamErrorChunk(code: number, message: string, flavor: GatewayFlavor = "3.4"): string {
  if (flavor === "3.6") {
    const parts: string[] = [];
    if (code !== 0) parts.push(`"code":${code}`);
    if (message !== "") parts.push(`"message":${htmlEscaped(protoJsonString(message))}`);
    return `{"error":{${parts.join(",")}}}\n`;
  }
  const http = httpStatusFromCode(code, flavor);
  const parts: string[] = [];
  if (code !== 0) parts.push(`"grpc_code":${code}`);
  parts.push(`"http_code":${http}`);
  if (message !== "") parts.push(`"message":${goJsonString(message)}`);
  parts.push(`"http_status":${goJsonString(STATUS_CODES[http] ?? "")}`);
  return `{"error":{${parts.join(",")}}}`;
}

/** encoding/json's compaction of JSON text (HTMLEscape). */
function htmlEscaped(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

export interface GatewayOptions {
  readonly services: readonly AnyServiceImpl[];
  readonly flavor?: GatewayFlavor;
  /** Largest single JSON value accepted in a request body (default 32 MiB). */
  readonly maxRequestBytes?: number;
}

export interface Gateway {
  /** The route for a (decoded, /v3beta-rewritten) path, if it is a gateway path. */
  route(path: string): GatewayRoute | undefined;
  /** Serves a request already matched to `route` (any method: non-POST gets 405). */
  serve(route: GatewayRoute, req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Answers a /v3/ path that is no binding (404). */
  notFound(req: IncomingMessage, res: ServerResponse): void;
}

const JSON_CT: readonly [string, string] = ["Content-Type", "application/json"];
const GRPC_MD: readonly [string, string] = ["Grpc-Metadata-Content-Type", "application/grpc"];

/** Request decoding and response encoding of one flavour. */
export function codecFor(flavor: GatewayFlavor): {
  decode: <D extends DescMessage>(desc: D, value: JValue | undefined) => MessageShape<D>;
  encode: <D extends DescMessage>(desc: D, msg: MessageShape<D>) => string;
} {
  if (flavor === "3.4") return { decode: messageFromJson, encode: (d, m) => messageToJson(d, m) };
  return { decode: messageFromProtoJson, encode: (d, m) => messageToJson(d, m, protoJsonString) };
}

export function createGateway(opts: GatewayOptions): Gateway {
  const flavor = opts.flavor ?? "3.4";
  const codec = codecFor(flavor);
  const maxBytes = opts.maxRequestBytes ?? 32 * 1024 * 1024;
  const routes = new Map(GATEWAY_ROUTES.map((x) => [x.path, x]));
  const impls = new Map<string, AnyServiceImpl>();
  for (const s of opts.services) impls.set(s.service.typeName, s);

  /** The handler for a route, or the error grpc-go would give for a missing one. */
  function lookup(rt: GatewayRoute): unknown {
    const impl = impls.get(rt.service.typeName);
    if (impl === undefined) throw new EtcdError(Code.Unimplemented, `unknown service ${rt.service.typeName}`);
    // The route's method descriptor may come from another copy of the
    // generated code than the impl's; match by name.
    const m = impl.service.methods.find((x) => x.name === rt.method.name) ?? rt.method;
    const h = findHandler(impl, m);
    if (typeof h !== "function") throw new EtcdError(Code.Unimplemented, `unknown method ${rt.method.name} for service ${rt.service.typeName}`);
    return h;
  }

  /**
   * Answers a failed call. `origin`: "routing" (no binding / wrong method),
   * "route" (the body did not decode, or a stream failed before its first
   * message) or "handler" (a unary handler's error, which carries gRPC
   * trailers). 3.4 always chunks a handler error with its trailer; 3.6 chunks
   * any route's error when the client sent "TE: trailers", with the trailer
   * only for a handler error.
   */
  function writeError(req: IncomingMessage, res: ServerResponse, code: number, message: string, origin: "routing" | "route" | "handler"): void {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const body = errorBody(code, message, flavor);
    const status = httpStatusFromCode(code, flavor);
    const te = acceptsTrailers(req);
    const trailer = origin === "handler" && (flavor === "3.4" || te);
    const chunked = trailer || (flavor === "3.6" && te && origin === "route");
    if (!chunked) {
      sendBody(res, status, body, [JSON_CT]);
      return;
    }
    writeHeadSorted(res, status, trailer ? [JSON_CT, ["Trailer", "Grpc-Trailer-Content-Type"]] : [JSON_CT], [["Transfer-Encoding", "chunked"]]);
    res.write(body);
    if (trailer) res.addTrailers({ "Grpc-Trailer-Content-Type": "application/grpc" });
    res.end();
  }

  async function serve(rt: GatewayRoute, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST") {
      req.resume();
      // v1 answers in text; v2 turns routing errors into gRPC statuses
      // (405 -> Unimplemented, so HTTP 501).
      if (flavor === "3.4") goHttpError(res, 405, "Method Not Allowed");
      else writeError(req, res, Code.Unimplemented, "Method Not Allowed", "routing");
      return;
    }
    const ac = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) ac.abort(new EtcdError(Code.Canceled, "context canceled"));
    };
    res.once("close", onClose);
    const ctx: CallContext = { metadata: metadataFromRequest(req), signal: ac.signal };
    const body = new BodyReader(req, maxBytes);
    try {
      switch (rt.method.methodKind) {
        case "unary":
          await serveUnary(rt, req, res, body, ctx);
          break;
        case "server_streaming":
          await serveServerStream(rt, req, res, body, ctx);
          break;
        case "bidi_streaming":
          await serveBidi(rt, req, res, body, ctx);
          break;
        default:
          body.discard();
          writeError(req, res, Code.Unimplemented, "client streaming is not supported by the gateway", "routing");
      }
    } finally {
      body.discard();
    }
  }

  async function serveUnary(rt: GatewayRoute, req: IncomingMessage, res: ServerResponse, body: BodyReader, ctx: CallContext): Promise<void> {
    const first = await nextValue(new StreamDecoder(), body);
    body.discard();
    // v2 reads the request body to its end before calling the server.
    if (flavor === "3.6") await body.ended;
    if (first.kind === "error") return writeError(req, res, Code.InvalidArgument, first.message, "route");
    let input;
    try {
      input = codec.decode(rt.method.input, first.kind === "value" ? first.value : undefined);
    } catch (e) {
      if (e instanceof JsonDecodeError) return writeError(req, res, Code.InvalidArgument, e.message, "route");
      throw e;
    }
    let out;
    try {
      const h = lookup(rt) as UnaryHandler<unknown, unknown>;
      out = await h(input, ctx);
    } catch (e) {
      const st = toStatus(e);
      return writeError(req, res, st.code, st.message, "handler");
    }
    if (res.destroyed) return;
    const json = codec.encode(rt.method.output as DescMessage, out as never);
    if (flavor === "3.6" && acceptsTrailers(req)) {
      // v2 forwards (here: no) trailers, so it chunks the answer.
      writeHeadSorted(res, 200, [JSON_CT, GRPC_MD], [["Transfer-Encoding", "chunked"]]);
      res.end(json);
      return;
    }
    sendBody(res, 200, json, [JSON_CT, GRPC_MD]);
  }

  async function serveServerStream(rt: GatewayRoute, req: IncomingMessage, res: ServerResponse, body: BodyReader, ctx: CallContext): Promise<void> {
    const first = await nextValue(new StreamDecoder(), body);
    body.discard();
    // v2 reads the request body to its end before calling the server.
    if (flavor === "3.6") await body.ended;
    if (first.kind === "error") return writeError(req, res, Code.InvalidArgument, first.message, "route");
    let input;
    try {
      input = codec.decode(rt.method.input, first.kind === "value" ? first.value : undefined);
    } catch (e) {
      if (e instanceof JsonDecodeError) return writeError(req, res, Code.InvalidArgument, e.message, "route");
      throw e;
    }
    const sink = new StreamSink(res, rt.method.output as DescMessage, flavor, true, ctx.signal);
    try {
      const h = lookup(rt) as ServerStreamHandler<unknown, unknown>;
      await h(input, sink, ctx);
    } catch (e) {
      const st = toStatus(e);
      if (sink.started) sink.fail(st.code, st.message);
      else writeError(req, res, st.code, st.message, "route");
      return;
    }
    sink.finish();
  }

  async function serveBidi(rt: GatewayRoute, req: IncomingMessage, res: ServerResponse, body: BodyReader, ctx: CallContext): Promise<void> {
    const dec = new StreamDecoder();
    const input = rt.method.input as DescMessage;
    let first = await nextValue(dec, body);
    let firstMsg: unknown;
    if (first.kind === "error") {
      // v1 decodes the first value before calling the server; v2 decodes
      // every value in its sender loop, where a failure only ends the
      // request stream.
      if (flavor === "3.4") return writeError(req, res, Code.Unknown, first.message, "route");
      first = { kind: "eof" };
    }
    if (first.kind === "value") {
      try {
        firstMsg = codec.decode(input, first.value);
      } catch (e) {
        if (!(e instanceof JsonDecodeError)) throw e;
        if (flavor === "3.4") return writeError(req, res, Code.Unknown, e.message, "route");
        first = { kind: "eof" };
      }
    }
    if (first.kind !== "value") body.discard();
    const started = first.kind === "value";
    async function* requests(): AsyncGenerator<unknown> {
      if (!started) return;
      yield firstMsg;
      for (;;) {
        const r = await nextValue(dec, body);
        if (r.kind !== "value") return;
        let m: unknown;
        try {
          m = codec.decode(input, r.value);
        } catch {
          return;
        }
        yield m;
      }
    }
    // With an empty body etcd 3.4's gateway never waits for the server's
    // headers, so its answer lacks Grpc-Metadata-Content-Type, and an early
    // error arrives as a stream error chunk rather than a plain error. 3.6's
    // always waits for them.
    const gotFirst = started || flavor === "3.6";
    const sink = new StreamSink(res, rt.method.output as DescMessage, flavor, gotFirst, ctx.signal);
    const stream = Object.assign(sink, { requests: requests() });
    try {
      const h = lookup(rt) as BidiHandler<unknown, unknown>;
      await h(stream as never, ctx);
    } catch (e) {
      const st = toStatus(e);
      if (sink.started || !gotFirst) sink.fail(st.code, st.message);
      else writeError(req, res, st.code, st.message, "route");
      return;
    }
    sink.finish();
  }

  function notFound(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    if (flavor === "3.4") goHttpError(res, 404, "Not Found");
    else writeError(req, res, Code.NotFound, "Not Found", "routing");
  }

  return {
    route: (path) => routes.get(path),
    serve,
    notFound,
  };
}

// ---------------------------------------------------------------------------

/** grpc-gateway's requestAcceptsTrailers. */
function acceptsTrailers(req: IncomingMessage): boolean {
  return /trailers/i.test(String(req.headers.te ?? ""));
}

async function nextValue(dec: StreamDecoder, body: BodyReader): Promise<DecodeResult> {
  for (;;) {
    const r = dec.next();
    if (r.kind !== "need") return r;
    if (dec.buffered > body.maxBytes) return { kind: "error", message: "http: request body too large" };
    const chunk = await body.read();
    if (chunk === null) dec.end();
    else dec.write(chunk);
  }
}

/** Pull-style access to a request body, with backpressure. */
class BodyReader {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private done = false;
  private dropping = false;
  private wake: (() => void) | null = null;
  /** Resolves when the body has ended (or the client is gone). */
  readonly ended: Promise<void>;

  constructor(
    private readonly req: IncomingMessage,
    readonly maxBytes: number,
  ) {
    req.on("data", (c: Buffer) => {
      if (this.dropping) return;
      this.chunks.push(c);
      this.size += c.length;
      if (this.size > 1 << 20) req.pause();
      this.notify();
    });
    let ended!: () => void;
    this.ended = new Promise<void>((r) => (ended = r));
    const end = () => {
      this.done = true;
      ended();
      this.notify();
    };
    req.once("end", end);
    req.once("error", end);
    req.once("close", end);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** The next chunk, or null at the end of the body (or when the client is gone). */
  async read(): Promise<Buffer | null> {
    for (;;) {
      const c = this.chunks.shift();
      if (c !== undefined) {
        this.size -= c.length;
        if (this.req.isPaused() && !this.dropping) this.req.resume();
        return c;
      }
      if (this.done || this.dropping) return null;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Stops reading: the rest of the body is drained and dropped. */
  discard(): void {
    if (this.dropping) return;
    this.dropping = true;
    this.chunks.length = 0;
    this.req.resume();
    this.notify();
  }
}

/** The HTTP side of a server stream: {"result":...} lines, chunked. */
class StreamSink {
  started = false;
  private closed = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly schema: DescMessage,
    private readonly flavor: GatewayFlavor,
    private readonly grpcHeader: boolean,
    private readonly signal: AbortSignal,
  ) {
    res.once("close", () => {
      this.closed = true;
    });
  }

  private start(status: number): void {
    if (this.started) return;
    this.started = true;
    const h: (readonly [string, string])[] = [JSON_CT];
    if (this.grpcHeader && status === 200) h.push(GRPC_MD);
    writeHeadSorted(this.res, status, h, [["Transfer-Encoding", "chunked"]]);
  }

  send = async (msg: unknown): Promise<void> => {
    if (this.closed || this.signal.aborted || this.res.destroyed) throw new EtcdError(Code.Canceled, "context canceled");
    this.start(200);
    const line = `{"result":${codecFor(this.flavor).encode(this.schema, msg as never)}}\n`;
    if (this.res.write(line)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.res.off("drain", done);
        this.res.off("close", done);
        resolve();
      };
      this.res.on("drain", done);
      this.res.on("close", done);
    });
  };

  fail(code: CodeValue | number, message: string): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    if (!this.started) this.start(httpStatusFromCode(code, this.flavor));
    this.res.end(streamErrorChunk(code, message, this.flavor));
  }

  finish(): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    if (!this.started && this.flavor === "3.6") {
      // v2 sets Content-Type with the first message only.
      this.started = true;
      writeHeadSorted(this.res, 200, [], [["Transfer-Encoding", "chunked"]]);
    }
    this.start(200);
    this.res.end();
  }
}

// grpc-gateway v1's isPermanentHTTPHeader list.
const PERMANENT_HEADERS = new Set([
  "accept", "accept-charset", "accept-language", "accept-ranges", "authorization", "cache-control",
  "content-type", "cookie", "date", "expect", "from", "host", "if-match", "if-modified-since",
  "if-none-match", "if-schedule-tag-match", "if-unmodified-since", "max-forwards", "origin", "pragma",
  "referer", "user-agent", "via", "warning",
]);

/** The gRPC metadata etcd's gateway would attach to the call. */
export function metadataFromRequest(req: IncomingMessage): Map<string, string> {
  const md = new Map<string, string>();
  const add = (k: string, v: string) => {
    if (!md.has(k)) md.set(k, v);
  };
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i]!.toLowerCase();
    const val = raw[i + 1]!;
    if (key === "authorization") add("authorization", val);
    if (PERMANENT_HEADERS.has(key)) add(`grpcgateway-${key}`, val);
    else if (key.startsWith("grpc-metadata-")) add(key.slice("grpc-metadata-".length), val);
  }
  if (req.headers.host !== undefined) add("x-forwarded-host", req.headers.host);
  const ra = req.socket.remoteAddress;
  if (ra !== undefined) add("x-forwarded-for", ra);
  return md;
}
