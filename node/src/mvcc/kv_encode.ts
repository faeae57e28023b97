// A hand-written encoder for the backend's KeyValue records: one put stores one
// record, and protobuf-es's toBinary (a fresh writer growing from 128 bytes by
// doubling, then a copy, then our copy behind the flag byte) was the largest
// protobuf cost of the apply. This writes the same bytes in one exact-size
// Buffer. kv_encode.test.ts checks byte equality with toBinary.
//
// mvccpb.KeyValue (proto3, implicit presence: zero values are not written):
//   1 key bytes, 2 create_revision int64, 3 mod_revision int64,
//   4 version int64, 5 value bytes, 6 lease int64

import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { KeyValueSchema, type KeyValue } from "../../gen/mvccpb/kv_pb.js";
import { ONE } from "./revision.js";

const TWO_32 = 0x100000000n;

/** Bytes of a varint holding `bits` significant bits (no bits still takes one byte). */
function varintBytes(bits: number): number {
  return Math.ceil(bits / 7) || 1;
}

/**
 * Bytes of an int64 as a varint (negative values take ten). BigInt arithmetic
 * allocates, and this runs for every revision and id of every response, so
 * the value is looked at as at most two 32-bit halves, one shift.
 */
export function int64Size(v: bigint): number {
  if (v < 0n) return 10;
  if (v < TWO_32) return varintBytes(32 - Math.clz32(Number(v)));
  return varintBytes(64 - Math.clz32(Number(v >> 32n)));
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
  if (v >= 0n && v < TWO_32) return putVarint32(b, at, Number(v));
  // Two's complement for negatives, as int64 on the wire; then the low and high halves.
  const u = v < 0n ? BigInt.asUintN(64, v) : v;
  return putVarint64(b, at, Number(u & 0xffffffffn), Number(u >> 32n));
}

/** Bytes of an int64/uint64 field: tag byte and varint; nothing when the value is zero (proto3). */
export function scalarSize(v: bigint): number {
  return v === 0n ? 0 : 1 + int64Size(v);
}

/** Writes an int64/uint64 field (tag byte and varint) unless the value is zero; returns the new offset. */
export function putScalar(b: Buffer, at: number, tag: number, v: bigint): number {
  if (v === 0n) return at;
  b[at++] = tag;
  return putInt64(b, at, v);
}

/** The varint of hi * 2^32 + lo (both unsigned 32-bit numbers), seven bits a byte, low first. */
function putVarint64(b: Buffer, at: number, lo: number, hi: number): number {
  // Bits 0..27 come from lo alone: four bytes, each followed by more (hi is not zero
  // when we get here with lo < 2^28, or lo has more bits).
  for (let shift = 0; shift < 28; shift += 7) {
    const rest = lo >>> shift;
    if (rest < 0x80 && hi === 0) {
      b[at++] = rest;
      return at;
    }
    b[at++] = (rest & 0x7f) | 0x80;
  }
  // Bits 28..34: lo's top four and hi's low three.
  const mid = (lo >>> 28) | ((hi & 0x07) << 4);
  if (hi >>> 3 === 0) {
    b[at++] = mid;
    return at;
  }
  b[at++] = mid | 0x80;
  // Bits 35..63: the rest of hi.
  let rest = hi >>> 3;
  while (rest >= 0x80) {
    b[at++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  b[at++] = rest;
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

/**
 * fromBinary(KeyValueSchema, b), by hand: the same object (bytes fields are views
 * into `b`, as protobuf-es makes them). A member reads every stored record this
 * way when it starts or restores a snapshot. Anything but the six known fields
 * with their wire types (unknown fields, a packed or group encoding) goes to
 * fromBinary, which knows what to keep; so does a truncated record, for its error.
 */
export function decodeKeyValue(b: Uint8Array): KeyValue {
  let key: Uint8Array = EMPTY;
  let value: Uint8Array = EMPTY;
  let createRevision = 0n;
  let modRevision = 0n;
  let version = 0n;
  let lease = 0n;
  let at = 0;
  const n = b.length;
  while (at < n) {
    const tag = b[at++]!;
    if (tag === 0x0a || tag === 0x2a) {
      // key (1) or value (5): a length, then the bytes
      let len = 0;
      let shift = 0;
      let byte: number;
      do {
        if (at >= n || shift > 28) return fromBinary(KeyValueSchema, b);
        byte = b[at++]!;
        len += (byte & 0x7f) * 2 ** shift;
        shift += 7;
      } while (byte >= 0x80);
      if (at + len > n) return fromBinary(KeyValueSchema, b);
      const v = b.subarray(at, at + len);
      at += len;
      if (tag === 0x0a) key = v;
      else value = v;
    } else if (tag === 0x10 || tag === 0x18 || tag === 0x20 || tag === 0x30) {
      // an int64: read it as two 32-bit halves
      let lo = 0;
      let hi = 0;
      let i = 0;
      let byte: number;
      do {
        if (at >= n || i >= 10) return fromBinary(KeyValueSchema, b);
        byte = b[at++]!;
        const bits = byte & 0x7f;
        const pos = 7 * i;
        if (pos < 28) lo |= bits << pos;
        else if (pos === 28) {
          lo |= (bits & 0x0f) << 28;
          hi |= bits >>> 4;
        } else hi |= bits << (pos - 32);
        i++;
      } while (byte >= 0x80);
      lo >>>= 0;
      hi >>>= 0;
      const v = hi === 0 ? BigInt(lo) : BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
      if (tag === 0x10) createRevision = v;
      else if (tag === 0x18) modRevision = v;
      else if (tag === 0x20) version = v;
      else lease = v;
    } else {
      return fromBinary(KeyValueSchema, b);
    }
  }
  // Share equal BigInts (a key written once has create == mod revision, version 1).
  if (createRevision === modRevision) createRevision = modRevision;
  if (version === 1n) version = ONE;
  return { $typeName: "mvccpb.KeyValue", key, createRevision, modRevision, version, value, lease };
}

const EMPTY = new Uint8Array(0);
