// Small assertion helpers for test bodies (absolute expectations, so a case
// can fail even when both servers agree on a wrong answer).

import assert from "node:assert/strict";
import { ClientError } from "./client.js";
import type { ClientKind } from "./client.js";
import type { KeyValue } from "../../node/gen/mvccpb/kv_pb.js";
import type { ResponseHeader } from "../../node/gen/etcdserverpb/rpc_pb.js";
import type { WatchSession, WatchCreateReq } from "./client.js";
import type { Event } from "../../node/gen/mvccpb/kv_pb.js";
import type { WatchResponse } from "../../node/gen/etcdserverpb/rpc_pb.js";

/** Bytes of a string, one byte per char (latin1), so "\0" and "\xff" mean those bytes. */
export function b(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "latin1"));
}

/** A byte string back to text (latin1). */
export function s(u: Uint8Array | undefined): string {
  return u === undefined ? "" : Buffer.from(u).toString("latin1");
}

/** [key, value] pairs of a kvs list. */
export function pairs(kvs: readonly KeyValue[]): Array<[string, string]> {
  return kvs.map((kv) => [s(kv.key), s(kv.value)]);
}

export function keys(kvs: readonly KeyValue[]): string[] {
  return kvs.map((kv) => s(kv.key));
}

/** Revision-ish fields of one kv: [key, create, mod, version]. */
export function revs(kv: KeyValue | undefined): [string, bigint, bigint, bigint] {
  assert.ok(kv, "expected a key-value");
  return [s(kv.key), kv.createRevision, kv.modRevision, kv.version];
}

export function rev(h: ResponseHeader | undefined): bigint {
  assert.ok(h, "expected a response header");
  return h.revision;
}

/** gRPC status codes. */
export const Code = {
  OK: 0, Canceled: 1, Unknown: 2, InvalidArgument: 3, DeadlineExceeded: 4, NotFound: 5, AlreadyExists: 6,
  PermissionDenied: 7, ResourceExhausted: 8, FailedPrecondition: 9, Aborted: 10, OutOfRange: 11,
  Unimplemented: 12, Internal: 13, Unavailable: 14, DataLoss: 15, Unauthenticated: 16,
} as const;

/**
 * Awaits a call that must fail with etcd's exact error. The code is checked
 * when the client exposes one; the message exactly, except for etcdctl and
 * etcd3, which wrap some messages in their own words, where it must contain it.
 */
export async function expectError(p: Promise<unknown>, want: { code: number; message: string }): Promise<ClientError> {
  let got: unknown;
  try {
    await p;
  } catch (e) {
    got = e;
  }
  assert.ok(got !== undefined, `expected error ${JSON.stringify(want)}, but the call succeeded`);
  if (!(got instanceof ClientError)) throw got;
  if (got.kind === "etcdctl" || got.kind === "etcd3") {
    assert.ok(got.message.includes(want.message), `${got.kind} error ${JSON.stringify(got.message)} does not contain ${JSON.stringify(want.message)}`);
  } else {
    assert.equal(got.message, want.message);
  }
  if (got.code !== undefined) assert.equal(got.code, want.code, `gRPC code for ${JSON.stringify(want.message)}`);
  return got;
}

/** Whether a client kind returns full response headers (etcdctl's compaction/defrag print text only). */
export function hasHeaders(kind: ClientKind): boolean {
  return kind !== "etcdctl";
}

// ---------------------------------------------------------------------------
// Watch helpers


/**
 * Sends a create and, where the client shows it, returns the created
 * response. etcdctl prints no created response, so it returns undefined there
 * (and etcdctl is only used with a start revision, so no event can be missed).
 */
export async function createWatch(w: WatchSession, kind: ClientKind, req: WatchCreateReq): Promise<WatchResponse | undefined> {
  await w.create(req);
  if (kind === "etcdctl") return undefined;
  const r = await w.next();
  assert.equal(r.created, true, `expected a created response, got ${JSON.stringify({ created: r.created, canceled: r.canceled, events: r.events.length })}`);
  return r;
}

/**
 * Sends several creates, then reads one response per create (etcd answers
 * creates in order). With mustBeCreated, each must be a plain created response.
 */
export async function createWatches(w: WatchSession, reqs: WatchCreateReq[], mustBeCreated = true): Promise<WatchResponse[]> {
  for (const r of reqs) await w.create(r);
  const out: WatchResponse[] = [];
  for (let i = 0; i < reqs.length; i++) {
    const r = await w.next();
    assert.equal(r.created, true, `response ${i} to a create should be created`);
    if (mustBeCreated) assert.equal(r.canceled, false, `response ${i} canceled: ${r.cancelReason}`);
    out.push(r);
  }
  return out;
}

/** Reads responses until n events arrived; every response read must be an event response (of watchId, if given). */
export async function collectEvents(w: WatchSession, n: number, watchId?: bigint): Promise<Event[]> {
  const out: Event[] = [];
  while (out.length < n) {
    const r = await w.next();
    assert.ok(!r.created && !r.canceled && r.events.length > 0, `expected an event response, got created=${r.created} canceled=${r.canceled} events=${r.events.length} compact=${r.compactRevision}`);
    if (watchId !== undefined) assert.equal(r.watchId, watchId);
    out.push(...r.events);
  }
  assert.equal(out.length, n, "more events than expected in one response");
  return out;
}

/** [type, key, value, mod_revision] of events; type "PUT" | "DELETE". */
export function evs(events: readonly Event[]): Array<[string, string, string, bigint]> {
  return events.map((e) => [e.type === 1 ? "DELETE" : "PUT", s(e.kv?.key), s(e.kv?.value), e.kv?.modRevision ?? -1n]);
}
