// Hand-written encoders for the responses of the hottest calls: Range, Put,
// DeleteRange and LeaseKeepAlive. protobuf-es's toBinary walks each message's
// descriptor at run time and grows a writer by doubling; these size the message
// first and write it into one exact-size Buffer. The bytes are toBinary's
// (encode.test.ts compares them on random messages). A message carrying unknown
// fields, which only protobuf-es knows where to put, goes to toBinary.
//
//   ResponseHeader          1 cluster_id uint64, 2 member_id uint64, 3 revision int64, 4 raft_term uint64
//   RangeResponse           1 header, 2 kvs (repeated KeyValue), 3 more bool, 4 count int64
//   PutResponse             1 header, 2 prev_kv KeyValue
//   DeleteRangeResponse     1 header, 2 deleted int64, 3 prev_kvs (repeated KeyValue)
//   LeaseKeepAliveResponse  1 header, 2 ID int64, 3 TTL int64
//   TxnResponse             1 header, 2 succeeded bool, 3 responses (repeated ResponseOp)
//   ResponseOp              one of: 1 response_range, 2 response_put, 3 response_delete_range,
//                           4 response_txn
// (proto3: zero values and absent messages are not written.)

import { toBinary, type DescMessage } from "@bufbuild/protobuf";
import {
  DeleteRangeResponseSchema,
  LeaseKeepAliveResponseSchema,
  PutResponseSchema,
  RangeResponseSchema,
  TxnResponseSchema,
  type DeleteRangeResponse,
  type LeaseKeepAliveResponse,
  type PutResponse,
  type RangeResponse,
  type ResponseHeader,
  type TxnResponse,
} from "../../../gen/etcdserverpb/rpc_pb.js";
import type { KeyValue } from "../../../gen/mvccpb/kv_pb.js";
import { encodeKeyValue, lenSize, putScalar, putVarint32, scalarSize } from "../../mvcc/kv_encode.js";

function hasUnknown(m: { $unknown?: unknown[] } | undefined): boolean {
  return m?.$unknown !== undefined && m.$unknown.length > 0;
}

/**
 * Fields 1 and 2 of a ResponseHeader (cluster_id, member_id), encoded: a member
 * answers every call with the same two, so the last pair's bytes are kept.
 */
let idsFor: { clusterId: bigint; memberId: bigint; bytes: Buffer } | undefined;

function idFields(h: ResponseHeader): Buffer {
  const c = idsFor;
  if (c !== undefined && c.clusterId === h.clusterId && c.memberId === h.memberId) return c.bytes;
  const bytes = Buffer.allocUnsafe(scalarSize(h.clusterId) + scalarSize(h.memberId));
  putScalar(bytes, putScalar(bytes, 0, 0x08, h.clusterId), 0x10, h.memberId);
  idsFor = { clusterId: h.clusterId, memberId: h.memberId, bytes };
  return bytes;
}

function headerBodySize(h: ResponseHeader): number {
  return idFields(h).length + scalarSize(h.revision) + scalarSize(h.raftTerm);
}

/** Writes field 1 (the header) when present. */
function putHeader(b: Buffer, at: number, h: ResponseHeader | undefined, bodySize: number): number {
  if (h === undefined) return at;
  b[at++] = 0x0a;
  at = putVarint32(b, at, bodySize);
  const ids = idFields(h);
  ids.copy(b, at);
  at += ids.length;
  at = putScalar(b, at, 0x18, h.revision);
  return putScalar(b, at, 0x20, h.raftTerm);
}

function headerFieldSize(h: ResponseHeader | undefined, bodySize: number): number {
  return h === undefined ? 0 : 1 + lenSize(bodySize) + bodySize;
}

/** A length-delimited field holding bytes already encoded. */
function putBytesField(b: Buffer, at: number, tag: number, body: Uint8Array): number {
  b[at++] = tag;
  at = putVarint32(b, at, body.length);
  b.set(body, at);
  return at + body.length;
}

function bytesFieldSize(n: number): number {
  return 1 + lenSize(n) + n;
}

function finish(b: Buffer, at: number, what: string): Buffer {
  if (at !== b.length) throw new Error(`encode ${what}: wrote ${at} bytes, sized ${b.length}`);
  return b;
}

export function encodeRangeResponse(r: RangeResponse): Uint8Array {
  if (hasUnknown(r) || hasUnknown(r.header)) return toBinary(RangeResponseSchema, r);
  const hb = r.header === undefined ? 0 : headerBodySize(r.header);
  const kvs = r.kvs.map((kv: KeyValue) => encodeKeyValue(kv, 0));
  let size = headerFieldSize(r.header, hb);
  for (const kv of kvs) size += bytesFieldSize(kv.length);
  if (r.more) size += 2;
  size += scalarSize(r.count);
  const b = Buffer.allocUnsafe(size);
  let at = putHeader(b, 0, r.header, hb);
  for (const kv of kvs) at = putBytesField(b, at, 0x12, kv);
  if (r.more) {
    b[at++] = 0x18;
    b[at++] = 1;
  }
  at = putScalar(b, at, 0x20, r.count);
  return finish(b, at, "RangeResponse");
}

export function encodePutResponse(r: PutResponse): Uint8Array {
  if (hasUnknown(r) || hasUnknown(r.header)) return toBinary(PutResponseSchema, r);
  const hb = r.header === undefined ? 0 : headerBodySize(r.header);
  const prev = r.prevKv === undefined ? undefined : encodeKeyValue(r.prevKv, 0);
  const size = headerFieldSize(r.header, hb) + (prev === undefined ? 0 : bytesFieldSize(prev.length));
  const b = Buffer.allocUnsafe(size);
  let at = putHeader(b, 0, r.header, hb);
  if (prev !== undefined) at = putBytesField(b, at, 0x12, prev);
  return finish(b, at, "PutResponse");
}

export function encodeDeleteRangeResponse(r: DeleteRangeResponse): Uint8Array {
  if (hasUnknown(r) || hasUnknown(r.header)) return toBinary(DeleteRangeResponseSchema, r);
  const hb = r.header === undefined ? 0 : headerBodySize(r.header);
  const prev = r.prevKvs.map((kv: KeyValue) => encodeKeyValue(kv, 0));
  let size = headerFieldSize(r.header, hb) + scalarSize(r.deleted);
  for (const kv of prev) size += bytesFieldSize(kv.length);
  const b = Buffer.allocUnsafe(size);
  let at = putHeader(b, 0, r.header, hb);
  at = putScalar(b, at, 0x10, r.deleted);
  for (const kv of prev) at = putBytesField(b, at, 0x1a, kv);
  return finish(b, at, "DeleteRangeResponse");
}

export function encodeLeaseKeepAliveResponse(r: LeaseKeepAliveResponse): Uint8Array {
  if (hasUnknown(r) || hasUnknown(r.header)) return toBinary(LeaseKeepAliveResponseSchema, r);
  const hb = r.header === undefined ? 0 : headerBodySize(r.header);
  const size = headerFieldSize(r.header, hb) + scalarSize(r.ID) + scalarSize(r.TTL);
  const b = Buffer.allocUnsafe(size);
  let at = putHeader(b, 0, r.header, hb);
  at = putScalar(b, at, 0x10, r.ID);
  at = putScalar(b, at, 0x18, r.TTL);
  return finish(b, at, "LeaseKeepAliveResponse");
}

/**
 * A TxnResponse whose operations are ranges, puts and deletes (what a
 * transaction without nested transactions answers); anything else goes to toBinary.
 */
export function encodeTxnResponse(r: TxnResponse): Uint8Array {
  if (hasUnknown(r) || hasUnknown(r.header)) return toBinary(TxnResponseSchema, r);
  const tags: number[] = [];
  const bodies: Uint8Array[] = [];
  for (const op of r.responses) {
    if (hasUnknown(op)) return toBinary(TxnResponseSchema, r);
    const o = op.response;
    if (o.case === "responseRange") {
      tags.push(0x0a);
      bodies.push(encodeRangeResponse(o.value));
    } else if (o.case === "responsePut") {
      tags.push(0x12);
      bodies.push(encodePutResponse(o.value));
    } else if (o.case === "responseDeleteRange") {
      tags.push(0x1a);
      bodies.push(encodeDeleteRangeResponse(o.value));
    } else {
      return toBinary(TxnResponseSchema, r); // a nested transaction, or an empty op
    }
  }
  const hb = r.header === undefined ? 0 : headerBodySize(r.header);
  let size = headerFieldSize(r.header, hb) + (r.succeeded ? 2 : 0);
  for (const body of bodies) size += bytesFieldSize(bytesFieldSize(body.length));
  const b = Buffer.allocUnsafe(size);
  let at = putHeader(b, 0, r.header, hb);
  if (r.succeeded) {
    b[at++] = 0x10;
    b[at++] = 1;
  }
  for (let i = 0; i < bodies.length; i++) {
    const body = bodies[i]!;
    b[at++] = 0x1a;
    at = putVarint32(b, at, bytesFieldSize(body.length));
    at = putBytesField(b, at, tags[i]!, body);
  }
  return finish(b, at, "TxnResponse");
}

/** The hand-written encoder for `schema`, if there is one. */
export function fastEncoder(schema: DescMessage): ((msg: unknown) => Uint8Array) | undefined {
  switch (schema.typeName) {
    case RangeResponseSchema.typeName:
      return (m) => encodeRangeResponse(m as RangeResponse);
    case PutResponseSchema.typeName:
      return (m) => encodePutResponse(m as PutResponse);
    case DeleteRangeResponseSchema.typeName:
      return (m) => encodeDeleteRangeResponse(m as DeleteRangeResponse);
    case LeaseKeepAliveResponseSchema.typeName:
      return (m) => encodeLeaseKeepAliveResponse(m as LeaseKeepAliveResponse);
    case TxnResponseSchema.typeName:
      return (m) => encodeTxnResponse(m as TxnResponse);
    default:
      return undefined;
  }
}
