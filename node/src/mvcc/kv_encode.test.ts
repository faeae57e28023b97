import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { KeyValueSchema } from "../../gen/mvccpb/kv_pb.js";
import { SeededRand } from "../raft/rand.js";
import { decodeKeyValue, encodeKeyValue, int64Size, putInt64 } from "./kv_encode.js";

const ints = [0n, 1n, 127n, 128n, 255n, 16383n, 16384n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 35n, 2n ** 56n, 2n ** 63n - 1n, -1n, -(2n ** 63n), -300n];

/** A KeyValue with random bytes (key lengths from the first four of `lens`) and int64s from `ints`. */
function randomKv(rand: SeededRand, lens: readonly number[]) {
  const bytes = (len: number) => Uint8Array.from({ length: len }, () => rand.intn(256));
  const pick = () => ints[rand.intn(ints.length)]!;
  return create(KeyValueSchema, {
    key: bytes(lens[rand.intn(4)]!),
    value: bytes(lens[rand.intn(lens.length)]!),
    createRevision: pick(),
    modRevision: pick(),
    version: pick(),
    lease: pick(),
  });
}

test("int64Size and putInt64 agree with protobuf-es's int64 varint at every bit length, both signs", () => {
  const values: bigint[] = [0n];
  for (let bits = 0; bits < 64; bits++) {
    const p = 1n << BigInt(bits);
    for (const v of [p - 1n, p, p + 1n, p | (p >> 1n), -p, -p - 1n, -p + 1n]) if (v >= -(1n << 63n) && v < 1n << 63n) values.push(v);
  }
  const rand = new SeededRand(9);
  for (let i = 0; i < 2000; i++) values.push(BigInt.asIntN(64, (BigInt(rand.intn(2 ** 30)) << 34n) ^ (BigInt(rand.intn(2 ** 30)) << 17n) ^ BigInt(rand.intn(2 ** 30))));
  for (const v of values) {
    const want = Buffer.from(new BinaryWriter().int64(v).finish());
    assert.equal(int64Size(v), want.length, `size of ${v}`);
    const b = Buffer.alloc(12, 0xee);
    const end = putInt64(b, 1, v);
    assert.equal(end, 1 + want.length, `end for ${v}`);
    assert.ok(b.subarray(1, end).equals(want), `bytes of ${v}: ${b.subarray(1, end).toString("hex")} vs ${want.toString("hex")}`);
    assert.equal(b[0], 0xee);
    assert.equal(b[end], 0xee, `wrote past the end for ${v}`);
  }
  assert.ok(values.length > 2300);
});

test("encodeKeyValue writes exactly toBinary's bytes, after the prefix", () => {
  const rand = new SeededRand(5);
  const lens = [0, 1, 8, 127, 128, 300, 16384, 70000];
  let n = 0;
  for (let i = 0; i < 3000; i++) {
    const kv = randomKv(rand, lens);
    const want = Buffer.from(toBinary(KeyValueSchema, kv));
    for (const prefix of [0, 1]) {
      const got = encodeKeyValue(kv, prefix);
      assert.equal(got.length, prefix + want.length);
      assert.ok(got.subarray(prefix).equals(want), `case ${i}: ${want.toString("hex").slice(0, 80)}`);
      n++;
    }
  }
  // Unknown fields survive as protobuf-es writes them.
  const withUnknown = fromBinary(KeyValueSchema, Buffer.concat([Buffer.from(toBinary(KeyValueSchema, create(KeyValueSchema, { key: Buffer.from("k"), modRevision: 5n }))), Buffer.from([0x38, 0x07])]));
  assert.ok(encodeKeyValue(withUnknown, 1).subarray(1).equals(Buffer.from(toBinary(KeyValueSchema, withUnknown))));
  assert.ok(n >= 6000);
});

test("decodeKeyValue reads what fromBinary reads, and leaves the unusual to it", () => {
  const rand = new SeededRand(17);
  const lens = [0, 1, 8, 127, 128, 300, 16384];
  for (let i = 0; i < 3000; i++) {
    const kv = randomKv(rand, lens);
    const wire = toBinary(KeyValueSchema, kv);
    const got = decodeKeyValue(wire);
    assert.deepEqual(got, fromBinary(KeyValueSchema, wire), `case ${i}`);
    assert.deepEqual(got, kv);
    if (got.value.length > 0) assert.equal(got.value.buffer, wire.buffer, "bytes are views into the record, as protobuf-es makes them");
  }
  // The hand-written path answered, not fromBinary: an absent bytes field is its own
  // shared empty array, a different object from the one protobuf-es shares.
  const noValue = toBinary(KeyValueSchema, create(KeyValueSchema, { key: Buffer.from("k"), modRevision: 3n }));
  assert.equal(decodeKeyValue(noValue).value, decodeKeyValue(noValue).value);
  assert.notEqual(decodeKeyValue(noValue).value, fromBinary(KeyValueSchema, noValue).value);
  // Every int64 bit length, both signs, in each of the four int64 fields.
  for (let bits = 0; bits < 64; bits++) {
    for (const v of [(1n << BigInt(bits)) - 1n, -(1n << BigInt(bits))]) {
      const kv = create(KeyValueSchema, { key: new Uint8Array([0x6b]), createRevision: v, modRevision: v, version: v, lease: v });
      assert.deepEqual(decodeKeyValue(toBinary(KeyValueSchema, kv)), kv, `value ${v}`);
    }
  }
  // Fields the store does not write, later duplicates and odd encodings: fromBinary's answer.
  const base = Buffer.from(toBinary(KeyValueSchema, create(KeyValueSchema, { key: Buffer.from("k"), modRevision: 5n, value: Buffer.from("v") })));
  for (const extra of [
    [0x38, 0x07], // field 7, unknown here
    [0x18, 0x09], // mod_revision again: the last one wins
    [0x0a, 0x01, 0x61], // key again
    [0x82, 0x01, 0x00], // a two-byte tag (field 16)
  ]) {
    const wire = Buffer.concat([base, Buffer.from(extra)]);
    assert.deepEqual(decodeKeyValue(wire), fromBinary(KeyValueSchema, wire), Buffer.from(extra).toString("hex"));
  }
  // Cut short: the same error as fromBinary.
  for (let cut = 1; cut < base.length; cut++) {
    const wire = base.subarray(0, cut);
    let want: unknown;
    try {
      want = fromBinary(KeyValueSchema, wire);
    } catch (e) {
      want = e;
    }
    let got: unknown;
    try {
      got = decodeKeyValue(wire);
    } catch (e) {
      got = e;
    }
    assert.deepEqual(got, want, `cut at ${cut}`);
  }
});
