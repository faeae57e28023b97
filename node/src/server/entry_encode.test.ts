import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CompareSchema, PutRequestSchema, RangeRequestSchema, RequestOpSchema, TxnRequestSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { InternalRequestSchema } from "../../gen/etcdts/internal_pb.js";
import { SeededRand } from "../raft/rand.js";
import { encodeEntry } from "./entry_encode.js";

test("encodeEntry writes exactly toBinary's bytes for puts, and hands everything else to it", () => {
  const rand = new SeededRand(21);
  const ids = [0n, 1n, 300n, 2n ** 32n + 7n, 2n ** 64n - 1n];
  const leases = [0n, 1n, 2n ** 40n, 2n ** 63n - 1n, -5n];
  const lens = [0, 1, 8, 127, 128, 256, 20000];
  const bytes = (len: number) => Uint8Array.from({ length: len }, () => rand.intn(256));
  let n = 0;
  for (let i = 0; i < 2000; i++) {
    const put = create(PutRequestSchema, {
      key: bytes(lens[rand.intn(lens.length)]!),
      value: bytes(lens[rand.intn(lens.length)]!),
      lease: leases[rand.intn(leases.length)]!,
      prevKv: rand.intn(2) === 1,
      ignoreValue: rand.intn(2) === 1,
      ignoreLease: rand.intn(2) === 1,
    });
    const entry = create(InternalRequestSchema, { id: ids[rand.intn(ids.length)]!, request: { case: "put", value: put } });
    const want = Buffer.from(toBinary(InternalRequestSchema, entry));
    const out = encodeEntry(entry);
    assert.ok(Buffer.isBuffer(out), "the hand-written path answered (toBinary returns a plain Uint8Array)");
    const got = Buffer.from(out);
    assert.ok(got.equals(want), `case ${i}: ${got.toString("hex").slice(0, 60)} vs ${want.toString("hex").slice(0, 60)}`);
    assert.deepEqual(fromBinary(InternalRequestSchema, new Uint8Array(got)), entry);
    n++;
  }
  assert.equal(n, 2000);
  // A put with a field this build does not know keeps it, where protobuf-es writes it.
  const unknownPut = fromBinary(PutRequestSchema, Buffer.concat([Buffer.from(toBinary(PutRequestSchema, create(PutRequestSchema, { key: Buffer.from("k") }))), Buffer.from([0x38, 0x01])]));
  const e1 = create(InternalRequestSchema, { id: 5n, request: { case: "put", value: unknownPut } });
  assert.ok(Buffer.from(encodeEntry(e1)).equals(Buffer.from(toBinary(InternalRequestSchema, e1))));
  // Not a put: toBinary's bytes.
  const e2 = create(InternalRequestSchema, { id: 9n, request: { case: "deleteRange", value: { key: Buffer.from("a"), rangeEnd: Buffer.from("b") } } });
  assert.ok(Buffer.from(encodeEntry(e2)).equals(Buffer.from(toBinary(InternalRequestSchema, e2))));
});

test("encodeEntry writes exactly toBinary's bytes for transactions of puts, and hands other transactions to it", () => {
  const rand = new SeededRand(23);
  const bytes = (len: number) => Uint8Array.from({ length: len }, () => rand.intn(256));
  const put = () =>
    create(PutRequestSchema, {
      key: bytes([0, 1, 8, 200][rand.intn(4)]!),
      value: bytes([0, 3, 256, 20000][rand.intn(4)]!),
      lease: [0n, 7n, 2n ** 50n, -3n][rand.intn(4)]!,
      prevKv: rand.intn(2) === 1,
      ignoreLease: rand.intn(3) === 0,
    });
  const putOp = () => create(RequestOpSchema, { request: { case: "requestPut", value: put() } });
  const ops = () => Array.from({ length: [0, 1, 2, 7][rand.intn(4)]! }, putOp);
  let hand = 0;
  for (let i = 0; i < 1000; i++) {
    const txn = create(TxnRequestSchema, { success: ops(), failure: ops() });
    // Now and then what the hand-written path does not take: a compare, or a range among the ops.
    const odd = rand.intn(6);
    if (odd === 0) txn.compare.push(create(CompareSchema, { key: bytes(3), target: 2, targetUnion: { case: "modRevision", value: 5n } }));
    if (odd === 1) txn.success.push(create(RequestOpSchema, { request: { case: "requestRange", value: create(RangeRequestSchema, { key: bytes(2) }) } }));
    const entry = create(InternalRequestSchema, { id: BigInt(rand.intn(2 ** 30)) * 4099n, request: { case: "txn", value: txn } });
    const out = encodeEntry(entry);
    if (Buffer.isBuffer(out)) hand++;
    assert.ok(Buffer.from(out).equals(Buffer.from(toBinary(InternalRequestSchema, entry))), `case ${i}`);
    assert.equal(Buffer.isBuffer(out), odd > 1, `case ${i}: the hand-written path takes exactly the compare-free transactions of puts`);
  }
  assert.ok(hand > 500, `hand-written: ${hand}`);
});
