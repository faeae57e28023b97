// grpc-js answers these before any handler of ours runs; etcd's texts come from
// patches/@grpc+grpc-js+*.patch (applied by `npm ci`'s postinstall). A grpc-js
// installed without it (npm ci --ignore-scripts, or an upgrade that dropped it)
// fails here. The same answers are compared with real etcd in
// test/conformance/badinput.test.ts.

import * as grpc from "@grpc/grpc-js";
import { after, before, test } from "node:test";
import { CallError, Client, rejectsWith, startOurs, type Target } from "./rpc.testlib.js";
import { create, toBinary } from "@bufbuild/protobuf";
import { KV, PutRequestSchema } from "../../../gen/etcdserverpb/rpc_pb.js";

let t: Target;
let c: Client;
before(async () => {
  t = await startOurs("bind");
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
