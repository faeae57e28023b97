// Encoding of watch responses for fan-out. One write watched by N watchers
// becomes N WatchResponses that differ only in watch_id: the hub hands them
// the same header and the same Event objects (watch/hub.ts notify), so the
// header and the events are encoded once and each watcher's bytes are
// header | watch_id | events, concatenated. Fields 1, 2 and 11 in that order
// are exactly what toBinary writes, so the bytes are identical to encoding
// each response on its own (watch-encode.test.ts checks this).

import { create, toBinary } from "@bufbuild/protobuf";
import { WatchResponseSchema, type ResponseHeader, type WatchResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { Event } from "../../../gen/mvccpb/kv_pb.js";

interface Encoded {
  readonly header: ResponseHeader;
  readonly events: readonly Event[];
  /** Field 1 (header), tag included. */
  readonly head: Uint8Array;
  /** Field 11 (events), tags included. */
  readonly body: Uint8Array;
}

/** Keyed by the first event; an entry is used only when header and every event are the same objects. */
const cache = new WeakMap<Event, Encoded>();

const NO_ID = new Uint8Array(0);

/** The varint of watch_id as field 2 (int64: negative ids take ten bytes), or nothing for 0. */
function watchIdField(id: bigint): Uint8Array {
  if (id === 0n) return NO_ID;
  if (id > 0n && id < 0x10000000n) {
    // Server-assigned ids are small: stay out of bigint arithmetic.
    let v = Number(id);
    const out = [0x10];
    while (v > 0x7f) {
      out.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    out.push(v);
    return Uint8Array.from(out);
  }
  let v = BigInt.asUintN(64, id);
  const out = [0x10];
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

function sameEvents(a: readonly Event[], b: readonly Event[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Encodes a WatchResponse; plain event responses reuse the encoding of their shared header and events. */
export function encodeWatchResponse(m: WatchResponse): Uint8Array {
  const first = m.events[0];
  const header = m.header;
  const control = m.created || m.canceled || m.fragment || m.compactRevision !== 0n || m.cancelReason !== "" || (m.$unknown?.length ?? 0) > 0;
  if (first === undefined || header === undefined || control) return toBinary(WatchResponseSchema, m);
  let e = cache.get(first);
  if (e === undefined || e.header !== header || !sameEvents(e.events, m.events)) {
    e = {
      header,
      events: m.events.slice(),
      head: toBinary(WatchResponseSchema, create(WatchResponseSchema, { header })),
      body: toBinary(WatchResponseSchema, create(WatchResponseSchema, { events: m.events })),
    };
    cache.set(first, e);
  }
  const id = watchIdField(m.watchId);
  const out = Buffer.allocUnsafe(e.head.length + id.length + e.body.length);
  out.set(e.head, 0);
  out.set(id, e.head.length);
  out.set(e.body, e.head.length + id.length);
  return out;
}
