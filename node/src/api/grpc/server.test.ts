// GrpcServer (server.ts) answers these before any handler runs, with grpc-go's
// texts; the same answers are compared with real etcd in
// test/conformance/badinput.test.ts.

import * as grpc from "@grpc/grpc-js";
import { after, before, describe, test } from "node:test";
import { CallError, Client, rejectsWith, startOurs, type Target } from "./rpc.testlib.js";
import { create, toBinary } from "@bufbuild/protobuf";
import { KV, PutRequestSchema, RangeRequestSchema, RangeResponseSchema, Watch, WatchRequestSchema, WatchResponseSchema } from "../../../gen/etcdserverpb/rpc_pb.js";
import http2 from "node:http2";
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import pino from "pino";
import { EtcdError, Code } from "../../errors.js";
import { defineService } from "../registry.js";
import { GrpcServer, encodeGrpcMessage, parseTimeout } from "./server.js";

let t: Target;
let c: Client;
before(async () => {
  t = await startOurs("grpcserver");
  c = new Client(t.addr);
});
after(async () => {
  c.close();
  await t.stop();
});

function raw(path: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    c.c.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      (err, res) => (err ? reject(new CallError(err.code, err.details)) : resolve(res ?? Buffer.alloc(0))),
    );
  });
}

test("a path with no handler: grpc-go's Unimplemented texts", async () => {
  await rejectsWith(raw("/etcdserverpb.KV/RangeStream", Buffer.alloc(0)), grpc.status.UNIMPLEMENTED, "unknown method RangeStream for service etcdserverpb.KV");
  await rejectsWith(raw("/no.such.Service/Method", Buffer.alloc(0)), grpc.status.UNIMPLEMENTED, "unknown service no.such.Service");
  await rejectsWith(raw("/etcdserverpb.KV", Buffer.alloc(0)), grpc.status.UNIMPLEMENTED, 'malformed method name: "/etcdserverpb.KV"');
  // A method of our protos without a handler is not registered, and gets the same answer.
  await rejectsWith(raw("/etcdserverpb.Maintenance/Downgrade", Buffer.alloc(0)), grpc.status.UNIMPLEMENTED, "unknown method Downgrade for service etcdserverpb.Maintenance");
});

test("a request over the receive limit, by a little or by far: grpc-go's ResourceExhausted text", async () => {
  const limit = 1572864 + 512 * 1024;
  for (const size of [limit + 1, 20 * limit]) {
    await rejectsWith(raw(`/${KV.typeName}/${KV.method.put.name}`, Buffer.alloc(size)), grpc.status.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${size} vs. ${limit})`);
  }
  // Exactly at the limit it gets through to the server, which finds it over --max-request-bytes.
  let put = Buffer.alloc(0);
  for (let n = limit; put.length !== limit; n--) put = Buffer.from(toBinary(PutRequestSchema, create(PutRequestSchema, { key: Buffer.from("k"), value: new Uint8Array(n) })));
  await rejectsWith(raw(`/${KV.typeName}/${KV.method.put.name}`, put), grpc.status.INVALID_ARGUMENT, "etcdserver: request is too large");
});

// ---- The protocol itself, on a small service and a raw HTTP/2 client ----


interface RawReply {
  status: number | undefined;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
  messages: Buffer[];
}

/** One call over a fresh HTTP/2 session: sends `body` (already framed) and collects the reply. */
function call(port: number, path: string, body: Buffer, headers: http2.OutgoingHttpHeaders = {}): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const st = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    const out: RawReply = { status: undefined, grpcStatus: undefined, grpcMessage: undefined, messages: [] };
    const chunks: Buffer[] = [];
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h[":status"] !== undefined) out.status = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) out.grpcStatus = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) out.grpcMessage = String(h["grpc-message"]);
    };
    st.on("response", take);
    st.on("trailers", take);
    st.on("data", (d: Buffer) => chunks.push(d));
    st.on("error", () => undefined);
    st.on("close", () => {
      let all = Buffer.concat(chunks);
      while (all.length >= 5) {
        const n = all.readUInt32BE(1);
        out.messages.push(all.subarray(5, 5 + n));
        all = all.subarray(5 + n);
      }
      session.close();
      resolve(out);
    });
    st.end(body);
  });
}

function framed(msg: Uint8Array, flag = 0): Buffer {
  const b = Buffer.alloc(5 + msg.length);
  b[0] = flag;
  b.writeUInt32BE(msg.length, 1);
  b.set(msg, 5);
  return b;
}

describe("GrpcServer, the protocol", () => {
  let g: GrpcServer;
  let port: number;
  let seen: ReadonlyMap<string, string> | undefined;
  let leader = true;
  before(async () => {
    const kv = defineService(KV, {
      range: async (req, ctx) => {
        seen = ctx.metadata;
        const key = Buffer.from(req.key).toString();
        if (key === "fail") throw new EtcdError(Code.FailedPrecondition, "ünïcode 100% failed");
        if (key === "slow") await new Promise((r) => setTimeout(r, 2000));
        return create(RangeResponseSchema, { count: BigInt(req.key.length) });
      },
    });
    const watch = defineService(Watch, {
      // Echoes each request's watch id back until the client half-closes, then sends one more.
      watch: async (stream) => {
        let n = 0;
        for await (const r of stream.requests) {
          n++;
          await stream.send(create(WatchResponseSchema, { watchId: r.requestUnion.case === "cancelRequest" ? r.requestUnion.value.watchId : 0n }));
        }
        await stream.send(create(WatchResponseSchema, { watchId: BigInt(1000 + n) }));
      },
    });
    g = new GrpcServer([kv, watch], { maxReceiveBytes: 1000, hasLeader: () => leader, log: pino({ level: "silent" }) });
    port = (await g.listen(0, "127.0.0.1")).port;
  });
  after(() => g.destroy());

  const range = (key: string) => framed(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: Buffer.from(key) })));

  test("a unary call: headers, one message, grpc-status 0; metadata reaches the handler without transport headers", async () => {
    const r = await call(port, "/etcdserverpb.KV/Range", range("abc"), { token: "t1", "grpc-timeout": "5S" });
    assert.equal(r.status, 200);
    assert.equal(r.grpcStatus, "0");
    assert.equal(r.messages.length, 1);
    assert.equal(fromBinary(RangeResponseSchema, r.messages[0]!).count, 3n);
    assert.equal(seen?.get("token"), "t1");
    assert.equal(seen?.has("grpc-timeout"), false);
    assert.equal(seen?.has("content-type"), false);
  });

  test("an error's text is percent-encoded in grpc-message (gRPC's rule), in a trailers-only answer", async () => {
    const r = await call(port, "/etcdserverpb.KV/Range", range("fail"));
    assert.equal(r.grpcStatus, String(Code.FailedPrecondition));
    assert.equal(r.grpcMessage, "%C3%BCn%C3%AFcode 100%25 failed");
    assert.equal(decodeURIComponent(r.grpcMessage!), "ünïcode 100% failed");
    assert.equal(r.messages.length, 0);
  });

  test("gzip requests are decompressed; over the limit once decompressed, and unknown encodings, fail as in grpc-go", async () => {
    const ok = await call(port, "/etcdserverpb.KV/Range", framed(gzipSync(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: Buffer.from("zipped") }))), 1), { "grpc-encoding": "gzip" });
    assert.equal(ok.grpcStatus, "0");
    assert.equal(fromBinary(RangeResponseSchema, ok.messages[0]!).count, 6n);
    const big = await call(port, "/etcdserverpb.KV/Range", framed(gzipSync(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: Buffer.alloc(5000) }))), 1), { "grpc-encoding": "gzip" });
    assert.equal(big.grpcStatus, String(Code.ResourceExhausted));
    assert.equal(big.grpcMessage, "grpc: received message after decompression larger than max 1000");
    const identity = await call(port, "/etcdserverpb.KV/Range", framed(Buffer.from([10, 1, 97]), 1));
    assert.equal(identity.grpcStatus, String(Code.Internal));
    assert.equal(identity.grpcMessage, "grpc: compressed flag set with identity or empty encoding");
    const snappy = await call(port, "/etcdserverpb.KV/Range", framed(Buffer.from([10, 1, 97]), 1), { "grpc-encoding": "snappy" });
    assert.equal(snappy.grpcStatus, String(Code.Unimplemented));
    assert.equal(snappy.grpcMessage, 'grpc: Decompressor is not installed for grpc-encoding "snappy"');
  });

  test("refused before any handler: over the limit, a bad content type, a malformed timeout, no leader", async () => {
    const over = await call(port, "/etcdserverpb.KV/Range", framed(Buffer.alloc(1001)));
    assert.equal(over.grpcMessage, "grpc: received message larger than max (1001 vs. 1000)");
    const html = await call(port, "/etcdserverpb.KV/Range", range("a"), { "content-type": "text/html" });
    assert.equal(html.status, 415);
    assert.equal(html.grpcStatus, String(Code.InvalidArgument));
    assert.equal(decodeURIComponent(html.grpcMessage!), 'invalid gRPC request content-type "text/html"');
    const tm = await call(port, "/etcdserverpb.KV/Range", range("a"), { "grpc-timeout": "soon" });
    assert.equal(tm.grpcStatus, String(Code.Internal));
    leader = false;
    try {
      const nl = await call(port, "/etcdserverpb.KV/Range", range("a"), { hasleader: "true" });
      assert.equal(nl.grpcMessage, "etcdserver: no leader");
      const without = await call(port, "/etcdserverpb.KV/Range", range("a"));
      assert.equal(without.grpcStatus, "0");
    } finally {
      leader = true;
    }
  });

  test("a deadline that passes ends the call with DeadlineExceeded", async () => {
    const r = await call(port, "/etcdserverpb.KV/Range", range("slow"), { "grpc-timeout": "100m" });
    assert.equal(r.grpcStatus, String(Code.DeadlineExceeded));
  });

  test("a request split across DATA frames at every byte is read whole", async () => {
    const body = Buffer.concat([range("split-me"), range("ignored second message")]);
    const r = await new Promise<RawReply>((resolve, reject) => {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on("error", reject);
      const st = session.request({ ":method": "POST", ":path": "/etcdserverpb.KV/Range", "content-type": "application/grpc" });
      const chunks: Buffer[] = [];
      let status: string | undefined;
      st.on("trailers", (h) => (status = String(h["grpc-status"])));
      st.on("data", (d: Buffer) => chunks.push(d));
      st.on("close", () => {
        session.close();
        resolve({ status: 200, grpcStatus: status, grpcMessage: undefined, messages: [Buffer.concat(chunks).subarray(5)] });
      });
      let i = 0;
      const next = () => (i < body.length ? st.write(body.subarray(i, ++i), next) : st.end());
      next();
    });
    assert.equal(r.grpcStatus, "0");
    assert.equal(fromBinary(RangeResponseSchema, r.messages[0]!).count, 8n);
  });

  test("a bidi stream: messages in order, and the handler may still send after the client half-closes", async () => {
    const reqs = [1n, 2n, 3n].map((id) => framed(toBinary(WatchRequestSchema, create(WatchRequestSchema, { requestUnion: { case: "cancelRequest", value: { watchId: id } } }))));
    const r = await call(port, "/etcdserverpb.Watch/Watch", Buffer.concat(reqs));
    assert.equal(r.grpcStatus, "0");
    assert.deepEqual(
      r.messages.map((m) => fromBinary(WatchResponseSchema, m).watchId),
      [1n, 2n, 3n, 1003n],
    );
    const bad = await call(port, "/etcdserverpb.Watch/Watch", Buffer.concat([reqs[0]!, framed(Buffer.from([0xff]))]));
    assert.equal(bad.grpcStatus, String(Code.Internal));
    assert.match(bad.grpcMessage ?? "", /^grpc: error unmarshalling request: /);
  });

  test("encodeGrpcMessage and parseTimeout", () => {
    assert.equal(encodeGrpcMessage("plain text: ok"), "plain text: ok");
    assert.equal(encodeGrpcMessage("a\nb"), "a%0Ab");
    assert.equal(parseTimeout("5S"), 5000);
    assert.equal(parseTimeout("250m"), 250);
    assert.equal(parseTimeout("2H"), 7_200_000);
    assert.equal(parseTimeout("123456789S"), undefined);
    assert.equal(parseTimeout("5s"), undefined);
  });
});
