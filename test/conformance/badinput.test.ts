// Bad input on the wire: malformed protobuf, oversized requests, unknown
// methods, streams cut mid-request. The server answers with an error (or
// drops the stream) and keeps serving everyone else.
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { conformance } from "./framework.js";
import { b, keys, Code } from "./expect.js";
import { GrpcCallError, GrpcConn } from "../harness/grpc.js";
import { KV, PutRequestSchema, Watch, WatchRequestSchema } from "../../node/gen/etcdserverpb/rpc_pb.js";

async function rawCode(conn: GrpcConn, path: string, body: Buffer): Promise<{ code: number; message: string }> {
  try {
    await conn.rawUnary(path, body);
    return { code: 0, message: "" };
  } catch (e) {
    assert.ok(e instanceof GrpcCallError);
    return { code: e.code, message: e.details };
  }
}

async function stillServes(conn: GrpcConn, key = "alive"): Promise<void> {
  await conn.unary(KV.method.put, { key: b(key), value: b("yes") });
  const r = await conn.unary(KV.method.range, { key: b(key) });
  assert.deepEqual(keys(r.kvs), [key]);
}

conformance("malformed protobuf bytes: Internal error, and the server keeps serving", async ({ raw, note }) => {
  for (const [label, bytes] of [
    ["truncated length-delimited field", Buffer.from([0x0a, 0x05, 0x61, 0x62])],
    ["invalid wire type", Buffer.from([0x0f])],
    ["truncated varint", Buffer.from([0x18, 0xff, 0xff])],
  ] as const) {
    const r = await rawCode(raw, "/etcdserverpb.KV/Range", bytes);
    assert.equal(r.code, Code.Internal, `${label}: ${r.message}`);
    // The text is the gRPC library's decoder error (Go's in etcd); only the code is a contract.
    note(label, { code: r.code });
  }
  const empty = await rawCode(raw, "/etcdserverpb.KV/Range", Buffer.alloc(0));
  assert.deepEqual(empty, { code: Code.InvalidArgument, message: "etcdserver: key is not provided" }, "an empty body is a valid empty RangeRequest");
  note("empty body", empty);
  await stillServes(raw);
}, { clients: ["grpc"] });

conformance("unknown method and unknown service: Unimplemented with grpc-go's texts", async ({ raw, note }) => {
  // KV.RangeStream is etcd 3.7's: etcd 3.6 registers KV without it.
  const m = await rawCode(raw, "/etcdserverpb.KV/RangeStream", Buffer.alloc(0));
  assert.deepEqual(m, { code: Code.Unimplemented, message: "unknown method RangeStream for service etcdserverpb.KV" });
  const s = await rawCode(raw, "/no.such.Service/Method", Buffer.alloc(0));
  assert.deepEqual(s, { code: Code.Unimplemented, message: "unknown service no.such.Service" });
  const malformed = await rawCode(raw, "/etcdserverpb.KV", Buffer.alloc(0));
  assert.deepEqual(malformed, { code: Code.Unimplemented, message: 'malformed method name: "/etcdserverpb.KV"' });
  // The path is refused before the body is read: an oversized body changes nothing.
  const big = await rawCode(raw, "/etcdserverpb.KV/RangeStream", Buffer.alloc(3 * 1024 * 1024));
  assert.deepEqual(big, m);
  note("unimplemented", { method: m, service: s, malformed, big });
  await stillServes(raw);
}, { clients: ["grpc"] });

function putSize(valueLen: number): number {
  return toBinary(PutRequestSchema, create(PutRequestSchema, { key: b("big"), value: new Uint8Array(valueLen) })).length;
}

conformance("oversized requests: over --max-request-bytes (default 1.5 MiB) and over the gRPC limit (+512 KiB), by any amount", async ({ raw, c, member, note }) => {
  const MiB = 1024 * 1024;
  const ok = await c.put({ key: b("big"), value: new Uint8Array(MiB) });
  assert.equal(ok.header?.revision, 2n, "1 MiB is fine");
  let e1: unknown;
  try {
    await c.put({ key: b("big"), value: new Uint8Array(1.5 * MiB + 1024) });
  } catch (e) {
    e1 = e;
  }
  assert.ok(e1 instanceof Error && "code" in e1);
  assert.equal((e1 as { code: number }).code, Code.InvalidArgument);
  assert.equal(e1.message, "etcdserver: request is too large");
  const len = 2 * MiB + 1024;
  let e2: unknown;
  try {
    await c.put({ key: b("big"), value: new Uint8Array(len) });
  } catch (e) {
    e2 = e;
  }
  assert.ok(e2 instanceof Error && "code" in e2);
  assert.equal((e2 as { code: number }).code, Code.ResourceExhausted);
  assert.equal(e2.message, `grpc: received message larger than max (${putSize(len)} vs. ${2 * MiB})`);
  // Far over the limit: the same answer (grpc-go and grpc-js both refuse from the length prefix).
  const huge = 12 * MiB;
  let e3: unknown;
  try {
    await c.put({ key: b("big"), value: new Uint8Array(huge) });
  } catch (e) {
    e3 = e;
  }
  assert.ok(e3 instanceof Error && "code" in e3);
  assert.equal((e3 as { code: number }).code, Code.ResourceExhausted);
  assert.equal(e3.message, `grpc: received message larger than max (${putSize(huge)} vs. ${2 * MiB})`);
  // A frame that announces 4 GiB - 1 and sends nothing more: answered from its 5-byte prefix alone.
  const announced = rawStream(member.clientUrl, "/etcdserverpb.KV/Put");
  announced.stream.write(Buffer.from([0, 0xff, 0xff, 0xff, 0xff]));
  const st = await announced.done;
  announced.session.destroy();
  assert.deepEqual(st, { status: String(Code.ResourceExhausted), message: `grpc: received message larger than max (${2 ** 32 - 1} vs. ${2 * MiB})` });
  // Compressed under the limit, over it once decompressed.
  const zipped = rawStream(member.clientUrl, "/etcdserverpb.KV/Put", { "grpc-encoding": "gzip" });
  const body = gzipSync(toBinary(PutRequestSchema, create(PutRequestSchema, { key: b("big"), value: new Uint8Array(3 * MiB) })));
  const frame = Buffer.alloc(5);
  frame[0] = 1;
  frame.writeUInt32BE(body.length, 1);
  zipped.stream.end(Buffer.concat([frame, body]));
  const zst = await zipped.done;
  zipped.session.destroy();
  assert.deepEqual(zst, { status: String(Code.ResourceExhausted), message: `grpc: received message after decompression larger than max ${2 * MiB}` });
  note("sizes", { limit: 2 * MiB, huge: e3.message, announced: st, zipped: zst });
  await stillServes(raw);
  const r = await raw.unary(KV.method.range, { key: b("big") });
  assert.equal(r.kvs[0]?.value.length, MiB, "the rejected puts changed nothing");
}, { clients: ["grpc"] });

conformance("--max-request-bytes 1024: writes over it are too large, the gRPC limit moves with it, reads are not limited", async ({ raw, c }) => {
  let e1: unknown;
  try {
    await c.put({ key: b("k"), value: new Uint8Array(2000) });
  } catch (e) {
    e1 = e;
  }
  assert.ok(e1 instanceof Error);
  assert.equal(e1.message, "etcdserver: request is too large");
  let e2: unknown;
  try {
    await c.put({ key: b("k"), value: new Uint8Array(600_000) });
  } catch (e) {
    e2 = e;
  }
  assert.ok(e2 instanceof Error && "code" in e2);
  assert.equal((e2 as { code: number }).code, Code.ResourceExhausted);
  assert.equal(e2.message, `grpc: received message larger than max (${toBinary(PutRequestSchema, create(PutRequestSchema, { key: b("k"), value: new Uint8Array(600_000) })).length} vs. ${1024 + 512 * 1024})`);
  let e3: unknown;
  try {
    await c.put({ key: b("k"), value: new Uint8Array(6_000_000) });
  } catch (e) {
    e3 = e;
  }
  assert.ok(e3 instanceof Error && "code" in e3);
  assert.equal((e3 as { code: number }).code, Code.ResourceExhausted);
  assert.equal(e3.message, `grpc: received message larger than max (${toBinary(PutRequestSchema, create(PutRequestSchema, { key: b("k"), value: new Uint8Array(6_000_000) })).length} vs. ${1024 + 512 * 1024})`);
  const big = await c.range({ key: new Uint8Array(2000).fill(97) });
  assert.equal(big.count, 0n);
  await stillServes(raw);
}, { clients: ["grpc"], flags: ["--max-request-bytes", "1024"] });

interface RawEnd {
  /** The final grpc-status, or "reset". */
  readonly status: string;
  /** The grpc-message, percent-decoded, if any. */
  readonly message?: string;
}

/**
 * Opens a raw HTTP/2 gRPC stream and returns it with a promise of how it ended:
 * its grpc-status once it arrives (grpc-go then resets a stream the client has not
 * ended, grpc-js leaves it half-open), or "reset" if it closed without one.
 */
function rawStream(url: string, path: string, headers: http2.OutgoingHttpHeaders = {}): { session: http2.ClientHttp2Session; stream: http2.ClientHttp2Stream; done: Promise<RawEnd> } {
  const session = http2.connect(url);
  session.on("error", () => undefined);
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
  const done = new Promise<RawEnd>((resolve) => {
    let end: RawEnd | undefined;
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] === undefined) return;
      const m = h["grpc-message"];
      end = { status: String(h["grpc-status"]), ...(m === undefined ? {} : { message: decodeURIComponent(String(m)) }) };
      resolve(end);
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("data", () => undefined);
    stream.on("error", () => undefined);
    stream.on("close", () => resolve(end ?? { status: "reset" }));
  });
  return { session, stream, done };
}

conformance("a stream cut mid-request (truncated frame, then end or reset) does not hurt the server", async ({ raw, member }) => {
  // A gRPC frame header announcing 100 bytes, followed by 3.
  const partial = Buffer.concat([Buffer.from([0, 0, 0, 0, 100]), Buffer.from([0x0a, 0x01, 0x61])]);
  const ended = rawStream(member.clientUrl, "/etcdserverpb.KV/Range");
  ended.stream.end(partial);
  const endedStatus = (await ended.done).status;
  assert.notEqual(endedStatus, "0", "a truncated request must not succeed");
  ended.session.close();

  const reset = rawStream(member.clientUrl, "/etcdserverpb.KV/Put");
  reset.stream.write(partial);
  reset.stream.close(http2.constants.NGHTTP2_CANCEL);
  await reset.done;
  reset.session.destroy();

  // A watch stream cut in the middle of a message.
  const w = rawStream(member.clientUrl, "/etcdserverpb.Watch/Watch");
  w.stream.write(partial);
  w.session.destroy();
  await w.done;

  // A TCP connection that stops half-way through the HTTP/2 preface and frames.
  await new Promise<void>((resolve) => {
    const sock = net.connect(Number(new URL(member.clientUrl).port), "127.0.0.1", () => {
      sock.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      sock.write(Buffer.from([0, 0, 18, 4, 0, 0, 0, 0, 0, 0, 3])); // SETTINGS frame header + part of its payload
      sock.destroy();
      resolve();
    });
    sock.on("error", () => resolve());
  });
  await stillServes(raw);
}, { clients: ["grpc"] });

conformance("a client that cancels its watch stream does not disturb other streams", async ({ raw, c }) => {
  const doomed = raw.bidi(Watch.method.watch);
  doomed.on("error", () => undefined);
  doomed.write(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: b("k") } } }));
  const w = await c.watch();
  try {
    await w.create({ key: b("k") });
    const created = await w.next();
    assert.equal(created.created, true);
    doomed.cancel();
    await c.put({ key: b("k"), value: b("v") });
    const ev = await w.next();
    assert.equal(ev.events.length, 1);
  } finally {
    await w.close();
  }
  await stillServes(raw);
}, { clients: ["grpc"] });
