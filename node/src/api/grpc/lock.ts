// v3lockpb.Lock: a distributed mutex served by the member itself. etcd runs
// its Go client's concurrency recipe (concurrency.Mutex over a Session) against
// the local server; this file runs the same requests, in the same order,
// through propose() and range(), and waits with internal watches on the hub.
//
// A lock named N is the set of keys under "N/". Each contender owns the key
// "N/<lease id in lower-case hex>", attached to its lease; the contender whose
// key has the smallest create revision holds the lock. A waiter watches the
// newest key created before its own until that key is deleted, then looks
// again, so every waiter watches one key and is woken once.
//
// The recipe helpers below are shared with election.ts (same key layout, same
// wait rule).
//
// Errors: etcd's recipe servers return whatever its client returned. Those
// errors carry no gRPC status, so every one of them reaches the caller with
// code Unknown and etcd's text (checked against etcd 3.4): e.g. a missing
// lease is Unknown "etcdserver: requested lease not found".

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  CompareSchema,
  DeleteRangeRequestSchema,
  RangeRequestSchema,
  RequestOpSchema,
  TxnRequestSchema,
  type DeleteRangeResponse,
  type LeaseGrantResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type TxnResponse,
  type WatchResponse,
} from "../../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType, type KeyValue } from "../../../gen/mvccpb/kv_pb.js";
import { Lock, LockResponseSchema, UnlockResponseSchema } from "../../../gen/v3lockpb/v3lock_pb.js";
import { Code, EtcdError, Errors } from "../../errors.js";
import type { EtcdServer } from "../../server/server.js";
import type { WatchStream } from "../../watch/hub.js";
import { defineService } from "../registry.js";
import { checkDelete, checkTxn, txnCost } from "../validate.js";

// ---- errors ----

/** concurrency.ErrSessionExpired: the waiter's own key vanished (its lease expired) while it waited. */
export const ErrSessionExpired = new EtcdError(Code.Unknown, "mutex: session is expired");
/** The caller went away while the recipe waited (etcd answers its context's error). */
export const ErrContextCanceled = new EtcdError(Code.Canceled, "context canceled");

/**
 * An error as etcd's recipe servers return it: the client-side error, which
 * gRPC sends with code Unknown and the same text. Unexpected (non-etcd)
 * errors pass through untouched so the transport logs them.
 */
export function recipeError(err: unknown): unknown {
  if (err instanceof EtcdError && err.code !== Code.Unknown && err !== ErrContextCanceled) return new EtcdError(Code.Unknown, err.message, { cause: err });
  return err;
}

// ---- keys and requests ----

const SLASH = Buffer.from("/");

/** Go's fmt "%x" of a lease ID: lower-case hex, no padding, "-" for negatives. */
export function leaseHex(id: bigint): string {
  return id.toString(16);
}

/** `<name>/` */
export function recipePrefix(name: Uint8Array): Buffer {
  return Buffer.concat([name, SLASH]);
}

/** `<name>/<lease hex>` */
export function recipeKey(name: Uint8Array, lease: bigint): Buffer {
  return Buffer.concat([name, SLASH, Buffer.from(leaseHex(lease))]);
}

/** The range end covering every key with this prefix (clientv3's GetPrefixRangeEnd). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return new Uint8Array([0]); // all 0xff: to the end of the key space
}

/** The oldest key under the prefix (clientv3.WithFirstCreate). */
export function firstCreated(prefix: Uint8Array): RangeRequest {
  return create(RangeRequestSchema, {
    key: prefix,
    rangeEnd: prefixEnd(prefix),
    sortTarget: RangeRequest_SortTarget.CREATE,
    sortOrder: RangeRequest_SortOrder.ASCEND,
    limit: 1n,
  });
}

/** The newest key under the prefix created at or before maxCreateRev (WithLastCreate + WithMaxCreateRev). */
function lastCreatedUpTo(prefix: Uint8Array, maxCreateRev: bigint): RangeRequest {
  return create(RangeRequestSchema, {
    key: prefix,
    rangeEnd: prefixEnd(prefix),
    sortTarget: RangeRequest_SortTarget.CREATE,
    sortOrder: RangeRequest_SortOrder.DESCEND,
    limit: 1n,
    maxCreateRevision: maxCreateRev,
  });
}

type CompareInit = MessageInitShape<typeof CompareSchema>;
type OpInit = MessageInitShape<typeof RequestOpSchema>;

export function createRevIs(key: Uint8Array, rev: bigint): CompareInit {
  return { key, target: Compare_CompareTarget.CREATE, result: Compare_CompareResult.EQUAL, targetUnion: { case: "createRevision", value: rev } };
}

export function opPut(key: Uint8Array, value: Uint8Array, lease: bigint): OpInit {
  return { request: { case: "requestPut", value: { key, value, lease } } };
}

export function opGet(req: MessageInitShape<typeof RangeRequestSchema>): OpInit {
  return { request: { case: "requestRange", value: req } };
}

export function opDelete(key: Uint8Array): OpInit {
  return { request: { case: "requestDeleteRange", value: { key } } };
}

type TxnInit = { compare: CompareInit[]; success: OpInit[]; failure?: OpInit[] };

/** A Txn exactly as the KV service runs one (checks, quota, log). */
export async function runTxn(s: EtcdServer, init: TxnInit): Promise<TxnResponse> {
  const req = create(TxnRequestSchema, init);
  checkTxn(req, s.opts.maxTxnOps);
  const readOnly = s.isReadOnlyTxn(req);
  if (!readOnly) await s.checkQuota(txnCost(req));
  return s.propose<TxnResponse>({ request: { case: "txn", value: req } }, { readOnly });
}

/** A DeleteRange of one key, as the KV service runs it. */
export async function deleteKey(s: EtcdServer, key: Uint8Array): Promise<DeleteRangeResponse> {
  const req = create(DeleteRangeRequestSchema, { key });
  checkDelete(req);
  return s.propose<DeleteRangeResponse>({ request: { case: "deleteRange", value: req } });
}

/** concurrency.NewSession's default TTL, used when the request names no lease. */
export const DEFAULT_SESSION_TTL = 60n;
const LEASE_COST = 64;

/**
 * concurrency.NewSession(WithLease(lease)) as etcd's recipe servers use it:
 * lease 0 grants a new lease of 60 s (never kept alive: the server orphans
 * the session at once); any other ID is used as given, unchecked.
 */
export async function sessionLease(s: EtcdServer, lease: bigint): Promise<bigint> {
  if (lease !== 0n) return lease;
  await s.checkQuota(LEASE_COST);
  const r = await s.propose<LeaseGrantResponse>({ request: { case: "leaseGrant", value: { ID: s.newLeaseId(), TTL: DEFAULT_SESSION_TTL } } });
  return r.ID;
}

// ---- waiting ----

/**
 * One watcher on the hub, consumed in-process. next() yields the watcher's
 * responses (not the "created" one) and undefined once the call is aborted
 * or the watch closed. Always close() it.
 */
export class InternalWatch {
  private readonly ws: WatchStream;
  private readonly onAbort = () => this.ws.close();

  constructor(
    s: EtcdServer,
    key: Uint8Array,
    rangeEnd: Uint8Array,
    startRevision: bigint,
    private readonly signal: AbortSignal,
    filters: { noPut?: boolean; noDelete?: boolean } = {},
  ) {
    this.ws = s.hub.openStream();
    s.hub.watch(
      this.ws,
      { key, rangeEnd, startRevision, prevKv: false, noPut: filters.noPut ?? false, noDelete: filters.noDelete ?? false, progressNotify: false, fragment: false },
      0n,
    );
    if (signal.aborted) this.ws.close();
    else signal.addEventListener("abort", this.onAbort, { once: true });
  }

  async next(): Promise<WatchResponse | undefined> {
    for (;;) {
      const m = await this.ws.next();
      if (m === undefined) return undefined;
      if (m.created && !m.canceled) continue;
      return m;
    }
  }

  close(): void {
    this.signal.removeEventListener("abort", this.onAbort);
    this.ws.close(); // the hub drops the watcher with its stream
  }
}

/** The error a cancelled watch carries (compaction, as etcd's client reports it). */
function watchCanceledError(m: WatchResponse): EtcdError {
  if (m.compactRevision !== 0n) return Errors.Compacted;
  return new EtcdError(Code.Unknown, m.cancelReason !== "" ? m.cancelReason : "lost watcher waiting for delete");
}

/** Resolves when `key` is deleted at or after `rev` (concurrency's waitDelete). */
async function waitDelete(s: EtcdServer, key: Uint8Array, rev: bigint, signal: AbortSignal): Promise<void> {
  const w = new InternalWatch(s, key, new Uint8Array(0), rev, signal, { noPut: true });
  try {
    for (;;) {
      const m = await w.next();
      if (m === undefined) throw signal.aborted ? ErrContextCanceled : new EtcdError(Code.Unknown, "lost watcher waiting for delete");
      if (m.canceled) throw watchCanceledError(m);
      if (m.events.some((e) => e.type === Event_EventType.DELETE)) return;
    }
  } finally {
    w.close();
  }
}

/**
 * Waits until no key under the prefix has create revision <= maxCreateRev
 * (concurrency's waitDeletes): watch the newest such key until it is
 * deleted, then look again. Returns the header of the final, empty read.
 */
export async function waitDeletes(s: EtcdServer, prefix: Uint8Array, maxCreateRev: bigint, signal: AbortSignal): Promise<ResponseHeader | undefined> {
  for (;;) {
    if (signal.aborted) throw ErrContextCanceled;
    const r: RangeResponse = await s.range(lastCreatedUpTo(prefix, maxCreateRev));
    const last: KeyValue | undefined = r.kvs[0];
    if (last === undefined) return r.header;
    await waitDelete(s, last.key, r.header?.revision ?? 0n, signal);
  }
}

// ---- the service ----

export function lockService(s: EtcdServer) {
  return defineService(Lock, {
    async lock(req, ctx) {
      const signal = ctx.signal;
      try {
        if (signal.aborted) throw ErrContextCanceled;
        const lease = await sessionLease(s, req.lease);
        const prefix = recipePrefix(req.name);
        const myKey = recipeKey(req.name, lease);
        // Join the queue (or find our key from an earlier call with this
        // lease: the lock is re-entrant per lease), and read the holder.
        const resp = await runTxn(s, {
          compare: [createRevIs(myKey, 0n)],
          success: [opPut(myKey, new Uint8Array(0), lease), opGet(firstCreated(prefix))],
          failure: [opGet({ key: myKey }), opGet(firstCreated(prefix))],
        });
        let myRev = resp.header?.revision ?? 0n;
        if (!resp.succeeded) {
          const mine = rangeKvs(resp, 0)[0];
          if (mine === undefined) throw new Error("lock: own key missing from its txn response");
          myRev = mine.createRevision;
        }
        const owner = rangeKvs(resp, 1)[0];
        if (owner === undefined || owner.createRevision === myRev) {
          return create(LockResponseSchema, { header: resp.header, key: myKey });
        }
        // Wait for every older contender to go; on any failure (including
        // the caller going away) take our key out of the queue.
        let header: ResponseHeader | undefined;
        try {
          await waitDeletes(s, prefix, myRev - 1n, signal);
          if (signal.aborted) throw ErrContextCanceled;
          // Our lease may have expired while we waited.
          const g = await s.range(create(RangeRequestSchema, { key: myKey }));
          if (g.kvs.length === 0) throw ErrSessionExpired;
          header = g.header;
        } catch (err) {
          if (err !== ErrSessionExpired) await deleteKey(s, myKey).catch(() => undefined);
          throw err;
        }
        return create(LockResponseSchema, { header, key: myKey });
      } catch (err) {
        throw recipeError(err);
      }
    },

    async unlock(req) {
      try {
        const r = await deleteKey(s, req.key);
        return create(UnlockResponseSchema, { header: r.header });
      } catch (err) {
        throw recipeError(err);
      }
    },
  });
}

/** The kvs of the i-th response of a txn, which must be a range. */
export function rangeKvs(resp: TxnResponse, i: number): KeyValue[] {
  const op = resp.responses[i]?.response;
  return op?.case === "responseRange" ? op.value.kvs : [];
}
