// One port, two protocols: gRPC (HTTP/2 prior knowledge) and HTTP/1.x.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { KV, RangeRequestSchema, RangeResponseSchema, ResponseHeaderSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import type { RangeRequest, RangeResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { classify, serveClientPort } from "./listener.js";
import type { ClientPort } from "./listener.js";
import { createHttpHandler } from "./http/index.js";
import { request } from "./http/httpclient.testlib.js";
import { GrpcServer } from "./grpc/server.js";
import { defineService } from "./registry.js";
import pino from "pino";

function rangeServer(count: (req: RangeRequest) => bigint): GrpcServer {
  const kv = defineService(KV, {
    range: async (req) => create(RangeResponseSchema, { header: create(ResponseHeaderSchema, { revision: 42n }), count: count(req) }),
  });
  return new GrpcServer([kv], { maxReceiveBytes: 1 << 20, log: pino({ level: "silent" }) });
}

const rangeMethod = {
  path: "/etcdserverpb.KV/Range",
  requestStream: false,
  responseStream: false,
  requestSerialize: (m: RangeRequest) => Buffer.from(toBinary(RangeRequestSchema, m)),
  requestDeserialize: (b: Buffer) => fromBinary(RangeRequestSchema, b),
  responseSerialize: (m: RangeResponse) => Buffer.from(toBinary(RangeResponseSchema, m)),
  responseDeserialize: (b: Buffer) => fromBinary(RangeResponseSchema, b),
};

function grpcRange(client: grpc.Client, key: string): Promise<RangeResponse> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      rangeMethod.path,
      rangeMethod.requestSerialize,
      rangeMethod.responseDeserialize,
      create(RangeRequestSchema, { key: new TextEncoder().encode(key) }),
      (err, res) => (err ? reject(err) : resolve(res!)),
    );
  });
}

/** Sends raw bytes (in pieces, with pauses) and collects everything until close or timeout. */
function raw(port: number, pieces: (string | Buffer)[], waitMs = 400): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let closed = false;
    const s = net.connect(port, "127.0.0.1", async () => {
      for (const p of pieces) {
        s.write(p);
        await new Promise((r) => setTimeout(r, 30));
      }
    });
    s.on("data", (d) => chunks.push(d));
    s.on("error", () => {});
    s.on("close", () => {
      closed = true;
    });
    setTimeout(() => {
      s.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    }, waitMs);
  });
}

describe("client port listener", () => {
  let grpcServer: GrpcServer;
  let port: ClientPort;
  let client: grpc.Client;

  before(async () => {
    grpcServer = rangeServer((req) => BigInt(req.key.length));
    port = await serveClientPort({
      host: "127.0.0.1",
      port: 0,
      grpcServer,
      http: createHttpHandler({
        services: [],
        health: { alarms: () => [], hasLeader: () => true, serializableRead: async () => {}, linearizableRead: async () => {} },
        versions: () => ({ etcdserver: "3.6.0", etcdcluster: "3.6.0", storage: "3.6.0" }),
      }),
    });
    client = new grpc.Client(`127.0.0.1:${port.port}`, grpc.credentials.createInsecure());
  });

  after(async () => {
    client.close();
    await port.close();
    grpcServer.destroy();
  });

  test("classify", () => {
    assert.equal(classify(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")), "grpc");
    assert.equal(classify(Buffer.from("PRI * HTTP/2.0\r\n")), "wait");
    assert.equal(classify(Buffer.from("PO")), "wait");
    assert.equal(classify(Buffer.from("POST /v3/kv/range HTTP/1.1\r\n")), "http");
    assert.equal(classify(Buffer.from("GET / HTTP/1.0\n")), "http");
    assert.equal(classify(Buffer.from("GET /version\r\n")), "reject");
    assert.equal(classify(Buffer.from("GET / HTTP/2.0\r\n")), "reject");
    assert.equal(classify(Buffer.from("garbage\r\n")), "reject");
    assert.equal(classify(Buffer.alloc(5000, 0x41)), "reject");
    assert.equal(classify(Buffer.from("PRX")), "wait");
  });

  test("gRPC and HTTP on the same port, concurrently", async () => {
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      work.push(
        grpcRange(client, "k".repeat(i)).then((r) => {
          assert.equal(r.header?.revision, 42n);
          assert.equal(r.count, BigInt(i));
        }),
      );
      work.push(
        request(port.port, "/version", { method: "GET" }).then((r) => {
          assert.equal(r.status, 200);
          assert.equal(r.body, '{"etcdserver":"3.6.0","etcdcluster":"3.6.0","storage":"3.6.0"}');
        }),
      );
    }
    await Promise.all(work);
  });

  test("first bytes split across reads still classify", async () => {
    const r = await raw(port.port, ["G", "ET /ver", "sion HTTP/1.1\r\nHost: x\r\n", "Connection: close\r\n\r\n"]);
    assert.match(r.data.toString(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n\{"etcdserver":"3\.6\.0"/);
    // The HTTP/2 preface in pieces: the server answers with its SETTINGS frame.
    const h2 = await raw(port.port, ["PRI * HT", "TP/2.0\r\n\r\nS", Buffer.concat([Buffer.from("M\r\n\r\n"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])]);
    assert.ok(h2.data.length >= 9, "got an HTTP/2 frame");
    assert.equal(h2.data[3], 4, "first frame is SETTINGS");
  });

  test("garbage, early close and non-HTTP/1 lines are dropped; the port keeps serving", async () => {
    const g = await raw(port.port, ["garbage\r\n\r\n"]);
    assert.equal(g.data.length, 0);
    assert.ok(g.closed);
    const junk = await raw(port.port, [Buffer.from([0, 1, 2, 3, 0xff, 0xfe, 0x0a])]);
    assert.equal(junk.data.length, 0);
    assert.ok(junk.closed);
    const h09 = await raw(port.port, ["GET /version\r\n\r\n"]);
    assert.equal(h09.data.length, 0);
    await raw(port.port, [], 50); // connect and close without a byte
    await raw(port.port, ["PRI * HTTP/2"], 50); // close halfway through the preface
    const bad = await raw(port.port, ["GET /version HTTP/1.1\r\nHost: x\r\nBad header\r\n\r\n"]);
    assert.match(bad.data.toString(), /^HTTP\/1\.1 400 Bad Request\r\n/);
    // A malformed HTTP/2 session after a valid preface.
    await raw(port.port, ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Buffer.alloc(64, 0xff)]);
    const ok = await request(port.port, "/version", { method: "GET" });
    assert.equal(ok.status, 200);
    const r = await grpcRange(client, "abc");
    assert.equal(r.count, 3n);
  });

  test("close() stops the listener and ends open connections", async () => {
    const g = rangeServer(() => 0n);
    const p = await serveClientPort({ host: "127.0.0.1", port: 0, grpcServer: g, http: (_req, res) => res.end("x") });
    const c = new grpc.Client(`127.0.0.1:${p.port}`, grpc.credentials.createInsecure());
    await grpcRange(c, "a");
    const idle = net.connect(p.port, "127.0.0.1");
    await new Promise((r) => idle.once("connect", r));
    const idleClosed = new Promise((r) => idle.once("close", r));
    idle.on("error", () => {});
    await p.close();
    await idleClosed;
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = net.connect(p.port, "127.0.0.1", () => resolve(s));
        s.on("error", reject);
      }),
    );
    c.close();
    g.destroy();
  });
});
