// The bytes of a log entry (etcdts.internal.InternalRequest) for a put, written
// by hand: every write proposes one entry, and protobuf-es's toBinary walks the
// descriptors of both messages and grows its writer on each call. The bytes are
// toBinary's (entry_encode.test.ts compares them on random requests); anything
// else, or a request carrying unknown fields, goes to toBinary.
//
//   InternalRequest  1 id uint64, 10 put PutRequest (one of a oneof)
//   PutRequest       1 key bytes, 2 value bytes, 3 lease int64, 4 prev_kv bool,
//                    5 ignore_value bool, 6 ignore_lease bool
// (proto3: zero values are not written.)

import { toBinary } from "@bufbuild/protobuf";
import type { PutRequest } from "../../gen/etcdserverpb/rpc_pb.js";
import { InternalRequestSchema, type InternalRequest } from "../../gen/etcdts/internal_pb.js";
import { int64Size, lenSize, putInt64, putVarint32 } from "../mvcc/kv_encode.js";

function putBodySize(p: PutRequest): number {
  let n = 0;
  if (p.key.length > 0) n += 1 + lenSize(p.key.length) + p.key.length;
  if (p.value.length > 0) n += 1 + lenSize(p.value.length) + p.value.length;
  if (p.lease !== 0n) n += 1 + int64Size(p.lease);
  if (p.prevKv) n += 2;
  if (p.ignoreValue) n += 2;
  if (p.ignoreLease) n += 2;
  return n;
}

function putBytes(b: Buffer, at: number, tag: number, v: Uint8Array): number {
  if (v.length === 0) return at;
  b[at++] = tag;
  at = putVarint32(b, at, v.length);
  b.set(v, at);
  return at + v.length;
}

function putBool(b: Buffer, at: number, tag: number, v: boolean): number {
  if (!v) return at;
  b[at++] = tag;
  b[at++] = 1;
  return at;
}

/** toBinary(InternalRequestSchema, entry), by hand for a put. */
export function encodeEntry(entry: InternalRequest): Uint8Array {
  const r = entry.request;
  if (r.case !== "put" || hasUnknown(entry) || hasUnknown(r.value)) return toBinary(InternalRequestSchema, entry);
  const p = r.value;
  const body = putBodySize(p);
  const size = (entry.id !== 0n ? 1 + int64Size(entry.id) : 0) + 1 + lenSize(body) + body;
  const b = Buffer.allocUnsafe(size);
  let at = 0;
  if (entry.id !== 0n) {
    b[at++] = 0x08;
    at = putInt64(b, at, entry.id);
  }
  b[at++] = 0x52; // field 10, length-delimited
  at = putVarint32(b, at, body);
  at = putBytes(b, at, 0x0a, p.key);
  at = putBytes(b, at, 0x12, p.value);
  if (p.lease !== 0n) {
    b[at++] = 0x18;
    at = putInt64(b, at, p.lease);
  }
  at = putBool(b, at, 0x20, p.prevKv);
  at = putBool(b, at, 0x28, p.ignoreValue);
  at = putBool(b, at, 0x30, p.ignoreLease);
  if (at !== size) throw new Error(`encodeEntry: wrote ${at} bytes, sized ${size}`);
  return b;
}

function hasUnknown(m: { $unknown?: unknown[] }): boolean {
  return m.$unknown !== undefined && m.$unknown.length > 0;
}
