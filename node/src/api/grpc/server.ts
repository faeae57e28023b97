// etcd's gRPC services over HTTP/2: the one place where handler results and
// errors become gRPC messages and statuses. The HTTP/2 underneath is our own
// (h2.ts: about twice node:http2's throughput, docs/perf-notes.md), or node:http2
// with ETCDTS_GRPC_TRANSPORT=node; both give the stream interface used here.
//
// Why not grpc-js's Server: on the hot unary calls its machinery (interceptor
// chain, Metadata objects, call objects, several event-loop turns per call)
// cost as much as Node's HTTP/2 itself (docs/perf-notes.md). A gRPC server is
// a small protocol on top of HTTP/2 (gRPC's PROTOCOL-HTTP2.md):
//
//   request   HEADERS  :method POST, :path /<service>/<method>,
//                      content-type application/grpc[+proto], optional
//                      grpc-timeout, grpc-encoding, custom metadata
//             DATA     messages, each a 5-byte prefix (compressed flag,
//                      big-endian length) and the bytes; END_STREAM = half-close
//   response  HEADERS  :status 200, content-type application/grpc
//             DATA     messages, framed the same way
//             HEADERS  grpc-status, grpc-message (percent-encoded), END_STREAM
//   or, with no message, one HEADERS frame carrying both ("trailers-only").
//
// What a client sees matches etcd (grpc-go): the texts for unknown paths,
// oversized or undecodable requests, a bad content type; a request over the
// receive limit is refused from its length prefix, before its body arrives.
// Requests may be gzip-compressed (grpc-go registers gzip); responses never are.
//
// Connections arrive already accepted (listener.ts sniffs the client port and
// hands HTTP/2 connections here); `listen()` is for tests.

import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import zlib from "node:zlib";
import { fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { WatchResponseSchema, type WatchResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Code, type CodeValue, EtcdError, Errors, toStatus } from "../../errors.js";
import type { AnyServiceImpl, BidiHandler, CallContext, ServerStreamHandler, UnaryHandler } from "../registry.js";
import { fastEncoder } from "./encode.js";
import { H2Connection } from "./h2.js";
import { encodeWatchResponse } from "./watch-encode.js";

export interface GrpcServerOptions {
  /**
   * Largest request message accepted, in bytes (etcd: --max-request-bytes +
   * 512 KiB). Larger ones fail with ResourceExhausted from their length prefix.
   */
  readonly maxReceiveBytes: number;
  /** Ping a connection after this long without a frame from it (etcd --grpc-keepalive-interval); 0 or absent: never. */
  readonly keepaliveTimeMs?: number;
  /** Close a connection whose ping is not answered within this long (--grpc-keepalive-timeout); 0 or absent: wait forever. */
  readonly keepaliveTimeoutMs?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS (--max-concurrent-streams). */
  readonly maxConcurrentStreams?: number;
  /**
   * Whether the member knows a leader. A call carrying etcd's "hasleader: true"
   * metadata (clientv3.WithRequireLeader) fails with "etcdserver: no leader"
   * without one, as etcd's interceptors do.
   */
  readonly hasLeader?: () => boolean;
  /**
   * Which HTTP/2 server carries the calls: our own framing (h2.ts, the default) or
   * node:http2 (kept as a fallback). Unset: ETCDTS_GRPC_TRANSPORT=node picks node:http2.
   */
  readonly transport?: "node" | "own";
  readonly log: Logger;
}

/** ETCDTS_GRPC_TRANSPORT=node chooses node:http2 when the options do not; ours otherwise. */
function transportFromEnv(): "node" | "own" {
  return process.env["ETCDTS_GRPC_TRANSPORT"] === "node" ? "node" : "own";
}

/** One client connection, whichever HTTP/2 server carries it (what the listener needs of it). */
export interface GrpcConnection {
  /** GOAWAY: calls in progress may finish, no new ones start. */
  close(): void;
  destroy(): void;
  once(event: "close", fn: () => void): unknown;
}

type Kind = "unary" | "server_streaming" | "bidi_streaming";

interface Method {
  readonly kind: Kind;
  readonly input: DescMessage;
  readonly encode: (msg: unknown) => Uint8Array;
  readonly handler: unknown;
}

/** A gRPC status on its way to the client. */
interface Status {
  readonly code: CodeValue;
  readonly message: string;
}

/** Statuses that end a call before (or instead of) its handler. */
class CallFailed extends Error {
  constructor(readonly status: Status) {
    super(status.message);
  }
}

const RESPONSE_HEADERS = Object.freeze({ ":status": 200, "content-type": "application/grpc" });
const OK_TRAILERS = Object.freeze({ "grpc-status": "0" });
/** Request headers that are transport, not metadata (grpc-go strips the same). */
const NOT_METADATA = new Set(["content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "grpc-message-type", "accept-encoding"]);
/** The abort reason of every call's signal (one shared value instead of a DOMException per call). */
const CALL_ENDED = new Error("the call ended");
/** A bidi stream stops reading the client once this many decoded messages wait for the handler. */
const MAX_QUEUED = 64;
const noop = (): void => {};

/** gRPC's percent-encoding of grpc-message: bytes outside 0x20-0x7E, and '%', as %XX. */
export function encodeGrpcMessage(s: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(s)) return s;
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** grpc-timeout: 1-8 digits and a unit; milliseconds, or undefined when malformed. */
export function parseTimeout(v: string): number | undefined {
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (m === null) return undefined;
  const n = Number(m[1]);
  const unitMs = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as "H"];
  return n * unitMs;
}

/**
 * The connection-level receive window, set on every session (Node's default is
 * HTTP/2's 64 KiB; grpc-go grows its own with traffic) and set again, unchanged,
 * by flushTrailers.
 */
const SESSION_WINDOW = 1 << 20;

/**
 * Makes Node write a call's trailers now. With waitForTrailers, Node learns that
 * the stream's data is over only after its last DATA frame was written, and
 * nothing then makes the session write again: the trailers (and so the end of
 * the call, which the client waits for) stayed queued until the client's next
 * frame arrived (seen with strace: a unary answer's trailers left with the ACK
 * of grpc-go's next PING). Any call into the session that opens a native HTTP/2
 * scope schedules the pending write; setting the window it already has is one
 * that sends nothing itself.
 */
function flushTrailers(stream: http2.ServerHttp2Stream): void {
  stream.once("finish", () => {
    const session = stream.session;
    if (session === undefined || session.destroyed || session.closed) return;
    try {
      session.setLocalWindowSize(SESSION_WINDOW);
    } catch {
      // the session is going away
    }
  });
}

function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = 0;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

function encoder(schema: DescMessage): (msg: unknown) => Uint8Array {
  // Watch responses fan out to many watchers with shared parts: encode those once.
  if (schema.typeName === WatchResponseSchema.typeName) return (msg) => encodeWatchResponse(msg as WatchResponse);
  return fastEncoder(schema) ?? ((msg) => toBinary(schema, msg as never));
}

/**
 * Splits a request body into messages. `onMessage` gets each message's bytes
 * (decompressed when the call's grpc-encoding is gzip), in order; `onError`
 * gets the first failure, after which everything is ignored.
 */
class MessageReader {
  private header = Buffer.alloc(5);
  private headerHave = 0;
  private body: Buffer | undefined;
  private bodyHave = 0;
  private compressed = false;
  private failed = false;
  /** Decompressions run asynchronously; this keeps delivery in order. */
  private chain: Promise<void> = Promise.resolve();
  private inflight = 0;

  constructor(
    private readonly limit: number,
    private readonly encoding: string,
    private readonly onMessage: (bytes: Uint8Array) => void,
    private readonly onError: (s: Status) => void,
  ) {}

  /** Resolves when every message so far has been delivered. */
  settled(): Promise<void> {
    return this.chain;
  }

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.failed) {
      if (this.body === undefined) {
        // Fast path: a whole message in what is left of this chunk.
        if (this.headerHave === 0 && chunk.length - i >= 5) {
          const len = chunk.readUInt32BE(i + 1);
          if (!this.start(chunk[i]!, len)) return;
          if (chunk.length - i - 5 >= len) {
            this.deliver(chunk.subarray(i + 5, i + 5 + len));
            i += 5 + len;
            continue;
          }
          this.body = Buffer.allocUnsafe(len);
          this.bodyHave = 0;
          i += 5;
          continue;
        }
        const n = Math.min(5 - this.headerHave, chunk.length - i);
        chunk.copy(this.header, this.headerHave, i, i + n);
        this.headerHave += n;
        i += n;
        if (this.headerHave < 5) return;
        this.headerHave = 0;
        const len = this.header.readUInt32BE(1);
        if (!this.start(this.header[0]!, len)) return;
        this.body = Buffer.allocUnsafe(len);
        this.bodyHave = 0;
        if (len === 0) this.finishBody();
        continue;
      }
      const n = Math.min(this.body.length - this.bodyHave, chunk.length - i);
      chunk.copy(this.body, this.bodyHave, i, i + n);
      this.bodyHave += n;
      i += n;
      if (this.bodyHave === this.body.length) this.finishBody();
    }
  }

  private start(flag: number, len: number): boolean {
    if (len > this.limit) return this.fail(Code.ResourceExhausted, `grpc: received message larger than max (${len} vs. ${this.limit})`);
    if (flag > 1) return this.fail(Code.Internal, `grpc: received unexpected payload format ${flag}`);
    if (flag === 1 && (this.encoding === "" || this.encoding === "identity")) {
      return this.fail(Code.Internal, "grpc: compressed flag set with identity or empty encoding");
    }
    if (flag === 1 && this.encoding !== "gzip") {
      return this.fail(Code.Unimplemented, `grpc: Decompressor is not installed for grpc-encoding ${JSON.stringify(this.encoding)}`);
    }
    this.compressed = flag === 1;
    return true;
  }

  private finishBody(): void {
    const b = this.body!;
    this.body = undefined;
    this.deliver(b);
  }

  private deliver(bytes: Buffer): void {
    if (!this.compressed && this.inflight === 0) {
      this.onMessage(bytes);
      return;
    }
    const compressed = this.compressed;
    this.inflight++;
    const ready = compressed ? this.gunzip(bytes) : Promise.resolve(bytes);
    this.chain = this.chain.then(async () => {
      const out = await ready;
      this.inflight--;
      if (out !== undefined && !this.failed) this.onMessage(out);
    });
  }

  private gunzip(bytes: Buffer): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      zlib.gunzip(bytes, { maxOutputLength: Math.max(1, this.limit + 1) }, (err, out) => {
        if (err === null && out.length <= this.limit) return resolve(out);
        if (err === null || (err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
          this.fail(Code.ResourceExhausted, `grpc: received message after decompression larger than max ${this.limit}`);
        } else {
          this.fail(Code.Internal, `grpc: failed to decompress the received message: ${err.message}`);
        }
        resolve(undefined);
      });
    });
  }

  private fail(code: CodeValue, message: string): false {
    if (!this.failed) {
      this.failed = true;
      this.onError({ code, message });
    }
    return false;
  }
}

/** One call on one HTTP/2 stream: headers sent lazily, then messages, then the status. */
class Call implements CallContext {
  private headersSent = false;
  private done = false;
  private ac: AbortController | undefined;
  private ended = false;
  private md: Map<string, string> | undefined;
  private deadline: NodeJS.Timeout | undefined;

  constructor(
    readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly log: Logger,
  ) {
    stream.once("close", () => {
      this.done = true;
      this.end();
    });
  }

  /** Request metadata, keys lower-case, first value only (made on first use). */
  get metadata(): ReadonlyMap<string, string> {
    if (this.md === undefined) {
      this.md = new Map();
      for (const [k, v] of Object.entries(this.headers)) {
        if (k.startsWith(":") || NOT_METADATA.has(k) || v === undefined) continue;
        this.md.set(k, Array.isArray(v) ? v[0]! : v);
      }
    }
    return this.md;
  }

  /** Aborted once the call is over, whoever ended it (made only for handlers that ask). */
  get signal(): AbortSignal {
    if (this.ac === undefined) {
      this.ac = new AbortController();
      if (this.ended) this.ac.abort(CALL_ENDED);
    }
    return this.ac.signal;
  }

  get finished(): boolean {
    return this.done || this.stream.destroyed || this.stream.closed;
  }

  setDeadline(ms: number): void {
    this.deadline = setTimeout(() => this.fail({ code: Code.DeadlineExceeded, message: "context deadline exceeded" }), ms);
  }

  private end(): void {
    this.ended = true;
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    if (this.ac !== undefined && !this.ac.signal.aborted) this.ac.abort(CALL_ENDED);
  }

  /** Writes one message; resolves when the stream can take more. */
  send(msg: Uint8Array): Promise<void> {
    if (this.finished) return Promise.reject(new EtcdError(Code.Canceled, "stream closed"));
    if (!this.headersSent) {
      this.headersSent = true;
      this.stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    }
    if (this.stream.write(frame(msg))) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onClose = () => {
        cleanup();
        reject(new EtcdError(Code.Canceled, "stream closed"));
      };
      const cleanup = () => {
        this.stream.off("drain", onDrain);
        this.stream.off("close", onClose);
      };
      this.stream.on("drain", onDrain);
      this.stream.on("close", onClose);
    });
  }

  /** A unary answer: headers, the message and an OK status, in one go. */
  answer(msg: Uint8Array): void {
    if (this.finished) return;
    this.done = true;
    this.end();
    const s = this.stream;
    s.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers(OK_TRAILERS));
    flushTrailers(s);
    s.end(frame(msg));
  }

  /** Ends the call with OK. */
  finish(): void {
    this.close({ code: Code.OK, message: "" });
  }

  /** Ends the call with a status; a non-EtcdError is logged as a bug. */
  failWith(err: unknown): void {
    if (err instanceof CallFailed) return this.fail(err.status);
    if (!(err instanceof EtcdError)) this.log.error({ err }, "unexpected error in a handler");
    this.fail(toStatus(err));
  }

  fail(s: Status): void {
    this.close(s);
  }

  private close(s: Status): void {
    if (this.finished) return;
    this.done = true;
    this.end();
    const trailers: http2.OutgoingHttpHeaders = { "grpc-status": String(s.code) };
    if (s.message !== "") trailers["grpc-message"] = encodeGrpcMessage(s.message);
    const st = this.stream;
    if (this.headersSent) {
      st.once("wantTrailers", () => st.sendTrailers(trailers));
      flushTrailers(st);
      st.end();
    } else {
      st.respond({ ...RESPONSE_HEADERS, ...trailers }, { endStream: true });
      // Answered while the client is still sending (e.g. a request refused from its
      // length prefix): as grpc-go, reset the stream (NO_ERROR) so that it stops.
      if (!st.readableEnded) st.close(http2.constants.NGHTTP2_NO_ERROR);
    }
  }
}

/** Serves registry services (registry.ts) over HTTP/2 as gRPC. */
export class GrpcServer {
  private readonly methods = new Map<string, Method>();
  /** "/<service>/": a path under it names a registered service. */
  private readonly servicePrefixes = new Set<string>();
  private readonly h2: http2.Http2Server;
  private readonly sessions = new Set<GrpcConnection>();
  private lastSession: http2.ServerHttp2Session | undefined;
  /** A test's own port (listen()) when the transport is ours. */
  private netServer: net.Server | undefined;
  /**
   * Whether connections are handed over as raw sockets, with the bytes already read
   * (our transport); node:http2's connections first go through h2authority.ts.
   */
  readonly rawConnections: boolean;

  constructor(
    services: readonly AnyServiceImpl[],
    private readonly opts: GrpcServerOptions,
  ) {
    for (const impl of services) {
      for (const m of impl.service.methods) {
        const handler = impl.handlers[m.localName];
        // A method without a handler is not registered: its path answers "unknown method".
        if (handler === undefined) continue;
        if (m.methodKind === "client_streaming") throw new Error(`grpc: client-streaming ${m.name} is not supported`);
        this.methods.set(`/${impl.service.typeName}/${m.name}`, { kind: m.methodKind, input: m.input, encode: encoder(m.output), handler });
        this.servicePrefixes.add(`/${impl.service.typeName}/`);
      }
    }
    this.h2 = http2.createServer({
      // Node refuses new streams once a session buffers more than this (10 MB by default);
      // grpc-go has no such limit, and a few large puts in flight would reach it.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
      maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER,
      // Node destroys a session after this many invalid frames (1000 by default), and DATA
      // still in flight for a stream we reset may count; grpc-go has no such limit.
      maxSessionInvalidFrames: 2 ** 32 - 1,
      settings: opts.maxConcurrentStreams !== undefined ? { maxConcurrentStreams: opts.maxConcurrentStreams } : {},
    });
    this.rawConnections = (opts.transport ?? transportFromEnv()) === "own";
    this.h2.setTimeout(0);
    this.h2.on("session", (s: http2.ServerHttp2Session) => this.onSession(s));
    this.h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.onStream(stream, headers));
  }

  /**
   * Serves one accepted connection whose first bytes are the HTTP/2 client preface
   * (`head`: bytes already read from it; our transport only).
   */
  serveConnection(conn: Duplex, head?: Buffer): GrpcConnection {
    if (this.rawConnections) {
      const c = new H2Connection(
        conn,
        {
          ...(this.opts.maxConcurrentStreams !== undefined ? { maxConcurrentStreams: this.opts.maxConcurrentStreams } : {}),
          ...(this.opts.keepaliveTimeMs !== undefined ? { keepaliveTimeMs: this.opts.keepaliveTimeMs } : {}),
          ...(this.opts.keepaliveTimeoutMs !== undefined ? { keepaliveTimeoutMs: this.opts.keepaliveTimeoutMs } : {}),
          onError: (err) => this.opts.log.warn({ err: err.message }, "HTTP/2 connection failed; its calls end"),
        },
        // H2Stream has the part of ServerHttp2Stream's interface that Call and onStream use.
        (stream, headers) => this.onStream(stream as unknown as http2.ServerHttp2Stream, headers),
        head,
      );
      this.sessions.add(c);
      c.once("close", () => this.sessions.delete(c));
      return c;
    }
    this.lastSession = undefined;
    this.h2.emit("connection", conn);
    const s = this.lastSession as http2.ServerHttp2Session | undefined;
    if (s === undefined) throw new Error("grpc: no HTTP/2 session for the connection");
    return s;
  }

  /** Listens on its own port (tests); resolves with the address. */
  listen(port: number, host: string): Promise<AddressInfo> {
    if (this.rawConnections) {
      const srv = net.createServer({ noDelay: true }, (sock) => this.serveConnection(sock));
      this.netServer = srv;
      return new Promise((resolve, reject) => {
        srv.once("error", reject);
        srv.listen(port, host, () => {
          srv.off("error", reject);
          resolve(srv.address() as AddressInfo);
        });
      });
    }
    return new Promise((resolve, reject) => {
      this.h2.once("error", reject);
      this.h2.listen(port, host, () => {
        this.h2.off("error", reject);
        resolve(this.h2.address() as AddressInfo);
      });
    });
  }

  /** Stops listening (if it was) and ends every connection now. */
  destroy(): void {
    if (this.h2.listening) this.h2.close();
    this.netServer?.close();
    for (const s of this.sessions) s.destroy();
  }

  private onSession(s: http2.ServerHttp2Session): void {
    this.lastSession = s;
    this.sessions.add(s);
    // A session error closes the whole connection (GOAWAY), failing every call on it: say why.
    s.on("error", (err: Error) => this.opts.log.warn({ err: err.message, code: (err as NodeJS.ErrnoException).code }, "HTTP/2 connection failed; its calls end"));
    s.on("frameError", (type: number, code: number, id: number) => this.opts.log.warn({ frameType: type, code, stream: id }, "HTTP/2 frame could not be sent"));
    try {
      s.setLocalWindowSize(SESSION_WINDOW);
    } catch {
      // closed before it started
    }
    s.once("close", () => this.sessions.delete(s));
    const every = this.opts.keepaliveTimeMs ?? 0;
    if (every > 0 && every < 2 ** 31) this.keepalive(s, every, this.opts.keepaliveTimeoutMs ?? 0);
  }

  /**
   * Server keepalive (grpc-go's ServerParameters.Time/Timeout): a ping every
   * `every` ms; one not answered within `timeout` closes the connection.
   */
  private keepalive(s: http2.ServerHttp2Session, every: number, timeout: number): void {
    let waiting = false;
    const timer = setInterval(() => {
      if (s.closed || s.destroyed) return clearInterval(timer);
      if (waiting) return;
      waiting = true;
      const giveUp = timeout > 0 && timeout < 2 ** 31 ? setTimeout(() => s.destroy(), timeout) : undefined;
      giveUp?.unref();
      try {
        s.ping((err) => {
          waiting = false;
          if (err === null && giveUp !== undefined) clearTimeout(giveUp);
        });
      } catch {
        // the session is going away
      }
    }, every);
    timer.unref();
    s.once("close", () => clearInterval(timer));
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on("error", noop);
    const ct = headers["content-type"];
    if (typeof ct !== "string" || !(ct === "application/grpc" || ct.startsWith("application/grpc+") || ct.startsWith("application/grpc;"))) {
      // grpc-go: HTTP 415 with a gRPC status, and a reset if the request goes on.
      stream.respond(
        { ":status": 415, "content-type": "application/grpc", "grpc-status": String(Code.InvalidArgument), "grpc-message": encodeGrpcMessage(`invalid gRPC request content-type ${JSON.stringify(ct ?? "")}`) },
        { endStream: true },
      );
      if (!stream.readableEnded) stream.close(http2.constants.NGHTTP2_NO_ERROR);
      return;
    }
    const call = new Call(stream, headers, this.opts.log);
    const path = headers[":path"] ?? "";
    const method = this.methods.get(path);
    if (method === undefined) {
      stream.resume(); // the body is read and dropped
      call.fail(this.unknownPath(path));
      return;
    }
    const tm = headers["grpc-timeout"];
    if (typeof tm === "string") {
      const ms = parseTimeout(tm);
      if (ms === undefined) {
        stream.resume();
        call.fail({ code: Code.Internal, message: `malformed grpc-timeout: ${tm}` });
        return;
      }
      call.setDeadline(ms);
    }
    const enc = headers["grpc-encoding"];
    const encoding = typeof enc === "string" ? enc : "";
    if (this.opts.hasLeader !== undefined && headers["hasleader"] === "true" && !this.opts.hasLeader()) {
      stream.resume();
      call.failWith(Errors.NoLeader);
      return;
    }
    switch (method.kind) {
      case "unary":
      case "server_streaming":
        this.single(call, method, encoding);
        return;
      case "bidi_streaming":
        this.bidi(call, method, encoding);
        return;
    }
  }

  private unknownPath(path: string): Status {
    const slash = path.lastIndexOf("/");
    if (!path.startsWith("/") || slash <= 0) return { code: Code.Unimplemented, message: `malformed method name: ${JSON.stringify(path)}` };
    const service = path.slice(1, slash);
    if (this.servicePrefixes.has(path.slice(0, slash + 1))) {
      return { code: Code.Unimplemented, message: `unknown method ${path.slice(slash + 1)} for service ${service}` };
    }
    return { code: Code.Unimplemented, message: `unknown service ${service}` };
  }

  /** Unary and server-streaming calls: one request message, read as soon as it is whole. */
  private single(call: Call, method: Method, encoding: string): void {
    const stream = call.stream;
    let got = false;
    const reader = new MessageReader(
      this.opts.maxReceiveBytes,
      encoding,
      (bytes) => {
        if (got) return; // grpc-go reads one message; anything after it is not looked at
        got = true;
        let req: unknown;
        try {
          req = fromBinary(method.input, bytes);
        } catch (err) {
          call.fail(undecodable(err));
          return;
        }
        if (method.kind === "unary") {
          (method.handler as UnaryHandler<unknown, unknown>)(req, call).then(
            (resp) => {
              let out: Uint8Array;
              try {
                out = method.encode(resp);
              } catch (err) {
                call.failWith(err);
                return;
              }
              call.answer(out);
            },
            (err: unknown) => call.failWith(err),
          );
        } else {
          const out = { send: (msg: unknown) => call.send(method.encode(msg)) };
          (method.handler as ServerStreamHandler<unknown, unknown>)(req, out, call).then(
            () => call.finish(),
            (err: unknown) => call.failWith(err),
          );
        }
      },
      (s) => call.fail(s),
    );
    stream.on("data", (chunk: Buffer) => reader.push(chunk));
    stream.once("end", () => {
      // The client half-closed; a request still being decompressed is delivered first.
      void reader.settled().then(() => {
        if (!got) call.fail({ code: Code.Internal, message: "grpc: the client sent no request message" });
      });
    });
  }

  /** Bidi calls: client messages in order, until the client half-closes (which does not end the call). */
  private bidi(call: Call, method: Method, encoding: string): void {
    const stream = call.stream;
    const queue: unknown[] = [];
    let closed = false; // no more client messages
    let failure: Status | undefined;
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const reader = new MessageReader(
      this.opts.maxReceiveBytes,
      encoding,
      (bytes) => {
        try {
          queue.push(fromBinary(method.input, bytes));
        } catch (err) {
          failure ??= undecodable(err);
          call.fail(failure);
        }
        if (queue.length >= MAX_QUEUED) stream.pause();
        notify();
      },
      (s) => {
        failure ??= s;
        call.fail(s);
        notify();
      },
    );
    stream.on("data", (chunk: Buffer) => reader.push(chunk));
    const over = () => {
      closed = true;
      notify();
    };
    stream.once("end", () => void reader.settled().then(over));
    stream.once("close", over);

    async function* requests(): AsyncGenerator<unknown> {
      for (;;) {
        if (queue.length > 0) {
          const m = queue.shift();
          if (queue.length < MAX_QUEUED / 2 && stream.isPaused()) stream.resume();
          yield m;
          continue;
        }
        if (failure !== undefined) throw new CallFailed(failure);
        if (closed) return;
        await new Promise<void>((r) => (wake = r));
      }
    }
    const out = { send: (msg: unknown) => call.send(method.encode(msg)), requests: requests() };
    (method.handler as BidiHandler<unknown, unknown>)(out, call).then(
      () => call.finish(),
      (err: unknown) => call.failWith(err),
    );
  }
}

function undecodable(err: unknown): Status {
  return { code: Code.Internal, message: `grpc: error unmarshalling request: ${err instanceof Error ? err.message : String(err)}` };
}
