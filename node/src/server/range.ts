// Range semantics shared by top-level reads and ranges inside a txn:
// limit with `more`, count unaffected by limit and filters, sort target/order
// (with etcd's defaulting rules), min/max mod/create revision filters,
// keys_only and count_only.

import { create } from "@bufbuild/protobuf";
import {
  RangeRequest_SortOrder as Order,
  RangeRequest_SortTarget as Target,
  RangeResponseSchema,
  type RangeRequest,
  type RangeResponse,
} from "../../gen/etcdserverpb/rpc_pb.js";
import type { KeyValue } from "../../gen/mvccpb/kv_pb.js";
import type { RangeOptions, RangeResult } from "../mvcc/store.js";

export type RangeFn = (key: Uint8Array, end: Uint8Array, opts: RangeOptions) => Promise<RangeResult>;

function cmpBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

function cmpBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const sorters: Record<number, (a: KeyValue, b: KeyValue) => number> = {
  [Target.KEY]: (a, b) => cmpBytes(a.key, b.key),
  [Target.VERSION]: (a, b) => cmpBig(a.version, b.version),
  [Target.CREATE]: (a, b) => cmpBig(a.createRevision, b.createRevision),
  [Target.MOD]: (a, b) => cmpBig(a.modRevision, b.modRevision),
  [Target.VALUE]: (a, b) => cmpBytes(a.value, b.value),
};

/** Executes a RangeRequest over `range`; header.revision is the revision read at (cluster fields are the API edge's). */
export async function executeRange(req: RangeRequest, range: RangeFn): Promise<RangeResponse> {
  const filtered =
    req.minModRevision !== 0n || req.maxModRevision !== 0n || req.minCreateRevision !== 0n || req.maxCreateRevision !== 0n;
  let order = req.sortOrder;
  if (req.sortTarget !== Target.KEY && order === Order.NONE) order = Order.ASCEND;
  else if (req.sortTarget === Target.KEY && order === Order.ASCEND) order = Order.NONE; // already in key order
  const limit = req.limit > 0n ? Number(req.limit) : 0;
  // With sorting or filters every key must be fetched first; otherwise one
  // extra key tells whether there are more.
  const fetchLimit = order !== Order.NONE || filtered || limit === 0 ? 0 : limit + 1;
  const rr = await range(req.key, req.rangeEnd, { rev: req.revision, limit: fetchLimit, countOnly: req.countOnly });
  let kvs = rr.kvs;
  if (filtered) {
    kvs = kvs.filter(
      (kv) =>
        (req.minModRevision === 0n || kv.modRevision >= req.minModRevision) &&
        (req.maxModRevision === 0n || kv.modRevision <= req.maxModRevision) &&
        (req.minCreateRevision === 0n || kv.createRevision >= req.minCreateRevision) &&
        (req.maxCreateRevision === 0n || kv.createRevision <= req.maxCreateRevision),
    );
  }
  if (order !== Order.NONE) {
    const by = sorters[req.sortTarget] ?? sorters[Target.KEY]!;
    // Stable sort over key order, as etcd's sort.Stable.
    kvs = [...kvs].sort(order === Order.DESCEND ? (a, b) => by(b, a) : by);
  }
  let more = false;
  if (limit > 0 && kvs.length > limit) {
    kvs = kvs.slice(0, limit);
    more = true;
  }
  if (req.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: new Uint8Array(0) }));
  return create(RangeResponseSchema, { header: { revision: rr.rev }, kvs, more, count: BigInt(rr.count) });
}
