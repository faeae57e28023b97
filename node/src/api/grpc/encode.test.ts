import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import {
  DeleteRangeResponseSchema,
  LeaseKeepAliveResponseSchema,
  PutResponseSchema,
  RangeResponseSchema,
  ResponseHeaderSchema,
  ResponseOpSchema,
  TxnResponseSchema,
  type ResponseHeader,
  type ResponseOp,
} from "../../../gen/etcdserverpb/rpc_pb.js";
import { KeyValueSchema, type KeyValue } from "../../../gen/mvccpb/kv_pb.js";
import { SeededRand } from "../../raft/rand.js";
import { fastEncoder } from "./encode.js";

const ints = [0n, 1n, 127n, 128n, 16384n, 2n ** 28n - 1n, 2n ** 28n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 35n - 1n, 2n ** 35n, 2n ** 56n, 2n ** 63n - 1n, -1n, -(2n ** 63n)];
const uints = [0n, 1n, 127n, 128n, 2n ** 32n, 2n ** 42n + 5n, 2n ** 63n, 2n ** 64n - 1n];

test("the hand-written response encoders write exactly toBinary's bytes", () => {
  const rand = new SeededRand(11);
  const pick = (xs: bigint[]) => xs[rand.intn(xs.length)]!;
  const bytes = (len: number) => Uint8Array.from({ length: len }, () => rand.intn(256));
  const header = (): ResponseHeader | undefined =>
    rand.intn(5) === 0 ? undefined : create(ResponseHeaderSchema, { clusterId: pick(uints), memberId: pick(uints), revision: pick(ints), raftTerm: pick(uints) });
  const kv = (): KeyValue =>
    create(KeyValueSchema, { key: bytes([0, 1, 8, 200][rand.intn(4)]!), value: bytes([0, 3, 256, 20000][rand.intn(4)]!), createRevision: pick(ints), modRevision: pick(ints), version: pick(ints), lease: pick(ints) });
  const kvs = () => Array.from({ length: [0, 1, 2, 30][rand.intn(4)]! }, kv);
  // Mostly the three kinds the hand-written TxnResponse path takes; now and then a nested
  // transaction or an empty op, which it leaves to toBinary.
  let handPath = 0;
  const fewKvs = () => Array.from({ length: rand.intn(3) }, kv);
  const op = (): ResponseOp => {
    switch (rand.intn(20)) {
      case 0:
        return create(ResponseOpSchema, { response: { case: "responseTxn", value: create(TxnResponseSchema, { header: header(), succeeded: true }) } });
      case 1:
        return create(ResponseOpSchema, {});
      default:
        handPath++;
        return [
          () => create(ResponseOpSchema, { response: { case: "responseRange", value: create(RangeResponseSchema, { header: header(), kvs: fewKvs(), count: pick(ints) }) } }),
          () => create(ResponseOpSchema, { response: { case: "responsePut", value: create(PutResponseSchema, { header: header(), prevKv: rand.intn(2) === 1 ? kv() : undefined }) } }),
          () => create(ResponseOpSchema, { response: { case: "responseDeleteRange", value: create(DeleteRangeResponseSchema, { header: header(), deleted: pick(ints), prevKvs: fewKvs() }) } }),
        ][rand.intn(3)]!();
    }
  };
  const makers: [DescMessage, () => unknown][] = [
    [RangeResponseSchema, () => create(RangeResponseSchema, { header: header(), kvs: kvs(), more: rand.intn(2) === 1, count: pick(ints) })],
    [PutResponseSchema, () => create(PutResponseSchema, { header: header(), prevKv: rand.intn(2) === 1 ? kv() : undefined })],
    [DeleteRangeResponseSchema, () => create(DeleteRangeResponseSchema, { header: header(), deleted: pick(ints), prevKvs: kvs() })],
    [LeaseKeepAliveResponseSchema, () => create(LeaseKeepAliveResponseSchema, { header: header(), ID: pick(ints), TTL: pick(ints) })],
    [TxnResponseSchema, () => create(TxnResponseSchema, { header: header(), succeeded: rand.intn(2) === 1, responses: Array.from({ length: [0, 1, 2, 5][rand.intn(4)]! }, op) })],
  ];
  for (const [schema, make] of makers) {
    const enc = fastEncoder(schema);
    assert.ok(enc !== undefined, schema.typeName);
    for (let i = 0; i < 800; i++) {
      const m = make();
      const want = Buffer.from(toBinary(schema, m as never));
      const got = Buffer.from(enc(m));
      assert.ok(got.equals(want), `${schema.typeName} case ${i}: got ${got.toString("hex").slice(0, 60)} want ${want.toString("hex").slice(0, 60)}`);
    }
    // Unknown fields (on the response or its header) go through toBinary and survive.
    const base = Buffer.from(toBinary(schema, make() as never));
    const withUnknown = fromBinary(schema, Buffer.concat([base, Buffer.from([0xf8, 0x07, 0x05])]));
    assert.ok(Buffer.from(enc(withUnknown)).equals(Buffer.from(toBinary(schema, withUnknown))), `${schema.typeName} with unknown fields`);
  }
  assert.ok(handPath > 1000, `transaction ops of the kinds the hand-written path takes: ${handPath}`);
  // A transaction of puts, as txn-put sends: the hand-written path answers (a Buffer; toBinary returns a plain Uint8Array).
  const txn = create(TxnResponseSchema, { header: header(), succeeded: true, responses: [create(ResponseOpSchema, { response: { case: "responsePut", value: create(PutResponseSchema, { header: header() }) } })] });
  assert.ok(Buffer.isBuffer(fastEncoder(TxnResponseSchema)!(txn)));
});
