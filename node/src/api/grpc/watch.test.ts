// The watch service through a real in-process gRPC server: every stream a
// client opens and ends (by cancelling, or by half-closing and going away)
// releases its WatchStream and its watchers in the hub. Counts, not timings.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import pino from "pino";
import { KV, Watch, WatchRequestSchema, WatchResponseSchema, type WatchRequest, type WatchResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import { EtcdServer } from "../../server/server.js";
import { allServices } from "../../server/services.js";
import { testServerOptions } from "../../server/options.testlib.js";
import { GrpcServer } from "./server.js";
import { Client, eventually } from "./rpc.testlib.js";

const STREAMS = 12;
const WATCHERS = 10;
const PUTS = 3;
const ROUNDS = 3;

test("watch streams and watchers are released when client streams end", async () => {
  const dir = mkdtempSync(join(tmpdir(), "etcdts-watchleak-"));
  const logger = pino({ level: "silent" });
  const s = await EtcdServer.start(testServerOptions(dir, { logger }));
  const g = new GrpcServer(allServices(s), { maxReceiveBytes: 1572864 + 512 * 1024, log: logger });
  const { port } = await g.listen(0, "127.0.0.1");
  const kv = new Client(`127.0.0.1:${port}`);
  const path = `/${Watch.typeName}/${Watch.method.watch.name}`;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const calls: Array<grpc.ClientDuplexStream<WatchRequest, WatchResponse>> = [];
      const events: number[] = [];
      for (let i = 0; i < STREAMS; i++) {
        const call = kv.c.makeBidiStreamRequest(
          path,
          (x: WatchRequest) => Buffer.from(toBinary(WatchRequestSchema, x)),
          (b: Buffer) => fromBinary(WatchResponseSchema, b),
        );
        call.on("error", () => undefined);
        events.push(0);
        call.on("data", (r: WatchResponse) => (events[i] = (events[i] ?? 0) + r.events.length));
        for (let w = 0; w < WATCHERS; w++) {
          call.write(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: Buffer.from("foo") } } }));
        }
        calls.push(call);
      }
      await eventually(async () => s.hub.watcherCount === STREAMS * WATCHERS);
      assert.equal(s.hub.stats().streams, STREAMS);
      for (let p = 0; p < PUTS; p++) await kv.unary(KV.method.put, { key: Buffer.from("foo"), value: Buffer.from(`v${p}`) });
      await eventually(async () => events.every((n) => n === WATCHERS * PUTS));
      // End the streams three ways: cancel, half-close then cancel, half-close only.
      calls.forEach((c, i) => {
        if (i % 3 === 0) c.cancel();
        else if (i % 3 === 1) {
          c.end();
          c.cancel();
        } else c.end();
      });
      calls.forEach((c) => c.cancel());
      const st = await eventually(async () => {
        const x = s.hub.stats();
        return x.streams === 0 && x.synced === 0 && x.unsynced === 0 ? x : undefined;
      });
      assert.deepEqual(st, { streams: 0, synced: 0, unsynced: 0 }, `round ${round}`);
    }
  } finally {
    kv.close();
    g.destroy();
    await new Promise((r) => setTimeout(r, 20));
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a half-closed watch stream keeps delivering events until the client goes away", async () => {
  const dir = mkdtempSync(join(tmpdir(), "etcdts-watchhalf-"));
  const logger = pino({ level: "silent" });
  const s = await EtcdServer.start(testServerOptions(dir, { logger }));
  const g = new GrpcServer(allServices(s), { maxReceiveBytes: 4 * 1024 * 1024, log: logger });
  const { port } = await g.listen(0, "127.0.0.1");
  const kv = new Client(`127.0.0.1:${port}`);
  try {
    const call = kv.c.makeBidiStreamRequest(
      `/${Watch.typeName}/${Watch.method.watch.name}`,
      (x: WatchRequest) => Buffer.from(toBinary(WatchRequestSchema, x)),
      (b: Buffer) => fromBinary(WatchResponseSchema, b),
    );
    call.on("error", () => undefined);
    let created = 0;
    let events = 0;
    call.on("data", (r: WatchResponse) => {
      if (r.created) created++;
      events += r.events.length;
    });
    call.write(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: Buffer.from("foo") } } }));
    await eventually(async () => created === 1);
    call.end();
    // Give the half-close time to reach the server before the write.
    await new Promise((r) => setTimeout(r, 200));
    await kv.unary(KV.method.put, { key: Buffer.from("foo"), value: Buffer.from("after half-close") });
    await eventually(async () => events === 1);
    assert.equal(s.hub.stats().streams, 1);
    call.cancel();
    await eventually(async () => s.hub.stats().streams === 0);
  } finally {
    kv.close();
    g.destroy();
    await new Promise((r) => setTimeout(r, 20));
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
