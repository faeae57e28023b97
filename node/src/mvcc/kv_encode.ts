// A hand-written encoder for the backend's KeyValue records: one put stores one
// record, and protobuf-es's toBinary (a fresh writer growing from 128 bytes by
// doubling, then a copy, then our copy behind the flag byte) was the largest
// protobuf cost of the apply. This writes the same bytes in one exact-size
// Buffer. kv_encode.test.ts checks byte equality with toBinary.
//
// mvccpb.KeyValue (proto3, implicit presence: zero values are not written):
//   1 key bytes, 2 create_revision int64, 3 mod_revision int64,
//   4 version int64, 5 value bytes, 6 lease int64

import { toBinary } from "@bufbuild/protobuf";
import { KeyValueSchema, type KeyValue } from "../../gen/mvccpb/kv_pb.js";

/** Bytes of an int64 as a varint (negative values take ten). */
export function int64Size(v: bigint): number {
  if (v < 0n) return 10;
  if (v < 0x80n) return 1;
  let n = 1;
  for (let x = v >> 7n; x > 0n; x >>= 7n) n++;
  return n;
}

export function lenSize(n: number): number {
  let s = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}

export function putVarint32(b: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    b[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  b[at++] = n;
  return at;
}

export function putInt64(b: Buffer, at: number, v: bigint): number {
  if (v >= 0n && v < 0x100000000n) return putVarint32(b, at, Number(v));
  let x = BigInt.asUintN(64, v);
  while (x >= 0x80n) {
    b[at++] = Number(x & 0x7fn) | 0x80;
    x >>= 7n;
  }
  b[at++] = Number(x);
  return at;
}

/**
 * `prefix` bytes (left for the caller), then the KeyValue exactly as
 * toBinary(KeyValueSchema, kv) writes it.
 */
export function encodeKeyValue(kv: KeyValue, prefix: number): Buffer {
  if (kv.$unknown !== undefined && kv.$unknown.length > 0) {
    // Not ours to lay out: let protobuf-es write unknown fields where it does.
    const body = toBinary(KeyValueSchema, kv);
    const out = Buffer.allocUnsafe(prefix + body.length);
    out.set(body, prefix);
    return out;
  }
  const { key, value, createRevision, modRevision, version, lease } = kv;
  let size = prefix;
  if (key.length > 0) size += 1 + lenSize(key.length) + key.length;
  if (createRevision !== 0n) size += 1 + int64Size(createRevision);
  if (modRevision !== 0n) size += 1 + int64Size(modRevision);
  if (version !== 0n) size += 1 + int64Size(version);
  if (value.length > 0) size += 1 + lenSize(value.length) + value.length;
  if (lease !== 0n) size += 1 + int64Size(lease);
  const b = Buffer.allocUnsafe(size);
  let at = prefix;
  if (key.length > 0) {
    b[at++] = 0x0a;
    at = putVarint32(b, at, key.length);
    b.set(key, at);
    at += key.length;
  }
  if (createRevision !== 0n) {
    b[at++] = 0x10;
    at = putInt64(b, at, createRevision);
  }
  if (modRevision !== 0n) {
    b[at++] = 0x18;
    at = putInt64(b, at, modRevision);
  }
  if (version !== 0n) {
    b[at++] = 0x20;
    at = putInt64(b, at, version);
  }
  if (value.length > 0) {
    b[at++] = 0x2a;
    at = putVarint32(b, at, value.length);
    b.set(value, at);
    at += value.length;
  }
  if (lease !== 0n) {
    b[at++] = 0x30;
    at = putInt64(b, at, lease);
  }
  if (at !== size) throw new Error(`encodeKeyValue: wrote ${at} bytes, sized ${size}`);
  return b;
}
