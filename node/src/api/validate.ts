// Request checks made before a request is proposed (etcd's v3rpc/key.go):
// they answer bad input with etcd's exact errors and never touch state.

import {
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  type DeleteRangeRequest,
  type PutRequest,
  type RangeRequest,
  type RequestOp,
  type TxnRequest,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { Errors } from "../errors.js";
import { keyStr } from "../mvcc/key_index.js";

export function checkRange(r: RangeRequest): void {
  if (r.key.length === 0) throw Errors.EmptyKey;
  if (RangeRequest_SortOrder[r.sortOrder] === undefined) throw Errors.InvalidSortOption;
  if (RangeRequest_SortTarget[r.sortTarget] === undefined) throw Errors.InvalidSortOption;
}

export function checkPut(r: PutRequest): void {
  if (r.key.length === 0) throw Errors.EmptyKey;
  if (r.ignoreValue && r.value.length !== 0) throw Errors.ValueProvided;
  if (r.ignoreLease && r.lease !== 0n) throw Errors.LeaseProvided;
}

export function checkDelete(r: DeleteRangeRequest): void {
  if (r.key.length === 0) throw Errors.EmptyKey;
}

function checkOp(op: RequestOp, maxTxnOps: number): void {
  const r = op.request;
  switch (r.case) {
    case "requestRange": return checkRange(r.value);
    case "requestPut": return checkPut(r.value);
    case "requestDeleteRange": return checkDelete(r.value);
    case "requestTxn": return checkTxnShape(r.value, maxTxnOps);
    default: throw Errors.KeyNotFound; // an empty RequestOp, as etcd answers it
  }
}

function checkTxnShape(t: TxnRequest, maxTxnOps: number): void {
  const opc = Math.max(t.compare.length, t.success.length, t.failure.length);
  if (opc > maxTxnOps) throw Errors.TooManyOps;
  for (const c of t.compare) if (c.key.length === 0) throw Errors.EmptyKey;
  for (const op of t.success) checkOp(op, maxTxnOps - opc);
  for (const op of t.failure) checkOp(op, maxTxnOps - opc);
}

/** A half-open key interval; end "" = unbounded; end undefined = the single key start. */
interface Interval {
  start: string;
  end: string | undefined;
}

function covers(dels: Interval[], k: string): boolean {
  return dels.some((d) => (d.end === undefined ? d.start === k : k >= d.start && (d.end === "" || k < d.end)));
}

/**
 * etcd forbids changing one key twice in a txn branch: two puts of a key, or a
 * put inside a deleted range, anywhere in the branch including nested txns.
 * The then/else branches of a nested txn exclude each other, so the same key
 * may be put in both. Returns the branch's puts and deletes.
 */
function checkIntervals(ops: RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of ops) {
    if (op.request.case !== "requestDeleteRange") continue;
    const d = op.request.value;
    const end = d.rangeEnd.length === 0 ? undefined : d.rangeEnd.length === 1 && d.rangeEnd[0] === 0 ? "" : keyStr(d.rangeEnd);
    dels.push({ start: keyStr(d.key), end });
  }
  const puts = new Set<string>();
  for (const op of ops) {
    if (op.request.case !== "requestTxn") continue;
    const then = checkIntervals(op.request.value.success);
    const els = checkIntervals(op.request.value.failure);
    for (const k of then.puts) {
      if (puts.has(k) || covers(dels, k)) throw Errors.DuplicateKey;
      puts.add(k);
    }
    for (const k of els.puts) {
      if ((puts.has(k) && !then.puts.has(k)) || covers(dels, k)) throw Errors.DuplicateKey;
      puts.add(k);
    }
    dels.push(...then.dels, ...els.dels);
  }
  for (const op of ops) {
    if (op.request.case !== "requestPut") continue;
    const k = keyStr(op.request.value.key);
    if (puts.has(k) || covers(dels, k)) throw Errors.DuplicateKey;
    puts.add(k);
  }
  return { puts, dels };
}

export function checkTxn(t: TxnRequest, maxTxnOps: number): void {
  checkTxnShape(t, maxTxnOps);
  // after the shape check, so the interval check's cost stays bounded
  checkIntervals(t.success);
  checkIntervals(t.failure);
}

/** etcd's quota cost of a write: 256 bytes of overhead plus key and value; a txn costs its larger branch. */
export function putCost(p: PutRequest): number {
  return 256 + p.key.length + p.value.length;
}

export function txnCost(t: TxnRequest): number {
  const branch = (ops: RequestOp[]): number =>
    ops.reduce((n, op) => n + (op.request.case === "requestPut" ? putCost(op.request.value) : op.request.case === "requestTxn" ? txnCost(op.request.value) : 0), 0);
  return Math.max(branch(t.success), branch(t.failure));
}
