// The bytes of a log entry (etcdts.internal.InternalRequest) for a put, written
// by hand: every write proposes one entry, and protobuf-es's toBinary walks the
// descriptors of both messages and grows its writer on each call. The bytes are
// toBinary's (entry_encode.test.ts compares them on random requests); anything
// else, or a request carrying unknown fields, goes to toBinary.
//
//   InternalRequest  1 id uint64, one of: 10 put PutRequest, 12 txn TxnRequest, ...
//   PutRequest       1 key bytes, 2 value bytes, 3 lease int64, 4 prev_kv bool,
//                    5 ignore_value bool, 6 ignore_lease bool
//   TxnRequest       1 compare (repeated), 2 success, 3 failure (repeated RequestOp)
//   RequestOp        one of: 1 request_range, 2 request_put, 3 request_delete_range, 4 request_txn
// A transaction goes by hand when it has no compares and only puts (what
// etcd's benchmark txn-put sends); others go to toBinary.
// (proto3: zero values are not written.)

import { toBinary } from "@bufbuild/protobuf";
import type { PutRequest, RequestOp } from "../../gen/etcdserverpb/rpc_pb.js";
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

function writePut(b: Buffer, at: number, p: PutRequest): number {
  at = putBytes(b, at, 0x0a, p.key);
  at = putBytes(b, at, 0x12, p.value);
  if (p.lease !== 0n) {
    b[at++] = 0x18;
    at = putInt64(b, at, p.lease);
  }
  at = putBool(b, at, 0x20, p.prevKv);
  at = putBool(b, at, 0x28, p.ignoreValue);
  return putBool(b, at, 0x30, p.ignoreLease);
}

/** The puts of a transaction's ops, or undefined if one is anything else. */
function putsOf(ops: readonly RequestOp[]): PutRequest[] | undefined {
  const puts: PutRequest[] = [];
  for (const op of ops) {
    if (op.request.case !== "requestPut" || hasUnknown(op) || hasUnknown(op.request.value)) return undefined;
    puts.push(op.request.value);
  }
  return puts;
}

/** Bytes of a RequestOp field (tag, length) holding one put. */
function opFieldSize(putBody: number): number {
  const op = 1 + lenSize(putBody) + putBody;
  return 1 + lenSize(op) + op;
}

function txnBodySize(success: readonly PutRequest[], failure: readonly PutRequest[]): number {
  let n = 0;
  for (const p of success) n += opFieldSize(putBodySize(p));
  for (const p of failure) n += opFieldSize(putBodySize(p));
  return n;
}

function writeOps(b: Buffer, at: number, tag: number, puts: readonly PutRequest[]): number {
  for (const p of puts) {
    const body = putBodySize(p);
    b[at++] = tag;
    at = putVarint32(b, at, 1 + lenSize(body) + body);
    b[at++] = 0x12; // request_put
    at = putVarint32(b, at, body);
    at = writePut(b, at, p);
  }
  return at;
}

/** toBinary(InternalRequestSchema, entry), by hand for a put and a transaction of puts. */
export function encodeEntry(entry: InternalRequest): Uint8Array {
  const r = entry.request;
  if (hasUnknown(entry)) return toBinary(InternalRequestSchema, entry);
  let fieldTag: number;
  let body: number;
  let success: PutRequest[] | undefined;
  let failure: PutRequest[] | undefined;
  if (r.case === "put" && !hasUnknown(r.value)) {
    fieldTag = 0x52; // field 10, length-delimited
    body = putBodySize(r.value);
  } else if (r.case === "txn" && !hasUnknown(r.value) && r.value.compare.length === 0 && (success = putsOf(r.value.success)) !== undefined && (failure = putsOf(r.value.failure)) !== undefined) {
    fieldTag = 0x62; // field 12, length-delimited
    body = txnBodySize(success, failure);
  } else {
    return toBinary(InternalRequestSchema, entry);
  }
  const size = (entry.id !== 0n ? 1 + int64Size(entry.id) : 0) + 1 + lenSize(body) + body;
  const b = Buffer.allocUnsafe(size);
  let at = 0;
  if (entry.id !== 0n) {
    b[at++] = 0x08;
    at = putInt64(b, at, entry.id);
  }
  b[at++] = fieldTag;
  at = putVarint32(b, at, body);
  if (r.case === "put") at = writePut(b, at, r.value);
  else {
    at = writeOps(b, at, 0x12, success!);
    at = writeOps(b, at, 0x1a, failure!);
  }
  if (at !== size) throw new Error(`encodeEntry: wrote ${at} bytes, sized ${size}`);
  return b;
}

function hasUnknown(m: { $unknown?: unknown[] }): boolean {
  return m.$unknown !== undefined && m.$unknown.length > 0;
}
