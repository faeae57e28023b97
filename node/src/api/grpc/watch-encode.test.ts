// encodeWatchResponse writes the same bytes as toBinary, whether or not the
// header and events are shared with earlier responses.
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { test } from "node:test";
import { ResponseHeaderSchema, WatchResponseSchema } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType, EventSchema, KeyValueSchema } from "../../../gen/mvccpb/kv_pb.js";
import { encodeWatchResponse } from "./watch-encode.js";

test("shared-part encoding equals toBinary for every watch id and shape", () => {
  const header = create(ResponseHeaderSchema, { clusterId: 14841639068965178418n, memberId: 10276657743932975437n, revision: 42n, raftTerm: 3n });
  const kv = create(KeyValueSchema, { key: Buffer.from("foo"), value: Buffer.alloc(256, 7), createRevision: 2n, modRevision: 42n, version: 41n });
  const prev = create(KeyValueSchema, { key: Buffer.from("foo"), value: Buffer.from("old"), createRevision: 2n, modRevision: 41n, version: 40n });
  const put = create(EventSchema, { kv });
  const putPrev = create(EventSchema, { kv, prevKv: prev });
  const del = create(EventSchema, { type: Event_EventType.DELETE, kv: create(KeyValueSchema, { key: Buffer.from("bar"), modRevision: 42n }) });
  const ids = [0n, 1n, 127n, 128n, 300n, 0xfffffffn, 0x10000000n, 2n ** 62n, -1n];
  const shapes: Array<MessageInitShape<typeof WatchResponseSchema>> = [
    { events: [put] },
    { events: [put, del] },
    { events: [putPrev] },
    { events: [put], fragment: true },
    { events: [put], created: true },
    { canceled: true, compactRevision: 5n },
    {},
  ];
  for (let pass = 0; pass < 2; pass++) {
    for (const shape of shapes) {
      for (const watchId of ids) {
        const m = create(WatchResponseSchema, { ...shape, watchId });
        m.header = header;
        assert.deepEqual(Buffer.from(encodeWatchResponse(m)), Buffer.from(toBinary(WatchResponseSchema, m)), `${JSON.stringify(Object.keys(shape))} id ${watchId}`);
      }
    }
  }
  // A different header or different events with the same first event must not reuse the cached parts.
  const other = create(WatchResponseSchema, { watchId: 5n, events: [put, del] });
  other.header = create(ResponseHeaderSchema, { revision: 43n });
  assert.deepEqual(Buffer.from(encodeWatchResponse(other)), Buffer.from(toBinary(WatchResponseSchema, other)));
  const fewer = create(WatchResponseSchema, { watchId: 5n, events: [put] });
  fewer.header = other.header;
  assert.deepEqual(Buffer.from(encodeWatchResponse(fewer)), Buffer.from(toBinary(WatchResponseSchema, fewer)));
});
