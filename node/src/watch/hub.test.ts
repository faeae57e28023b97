import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { ResponseHeaderSchema, type WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { Backend, type BatchOp } from "../mvcc/backend.js";
import { MvccStore } from "../mvcc/store.js";
import { WatchHub, type WatcherSpec, type WatchStream } from "./hub.js";

const headers = { header: (rev: bigint) => create(ResponseHeaderSchema, { revision: rev }) };
const spec = (over: Partial<WatcherSpec> = {}): WatcherSpec => ({
  key: Buffer.from("k"),
  rangeEnd: Buffer.from("l"),
  startRevision: 0n,
  prevKv: false,
  noPut: false,
  noDelete: false,
  progressNotify: false,
  fragment: false,
  ...over,
});

async function withHub(fn: (s: MvccStore, hub: WatchHub, write: (k: string, v: string | null) => Promise<bigint>) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), "etcdts-hub-"));
  const be = await Backend.open(dir);
  const s = await MvccStore.open(be);
  const hub = new WatchHub(s, headers, 1.5 * 1024 * 1024, 0);
  // Writes as the apply loop does: apply, make durable, notify.
  const write = async (k: string, v: string | null) => {
    const ops: BatchOp[] = [];
    const w = s.beginWrite(ops);
    if (v === null) w.deleteRange(Buffer.from(k), new Uint8Array(0));
    else w.put(Buffer.from(k), Buffer.from(v), 0n);
    w.end();
    await be.write(ops, true);
    for (const p of s.markDurable(s.currentRev)) hub.notify(p.rev, p.changes);
    return s.currentRev;
  };
  try {
    await fn(s, hub, write);
  } finally {
    hub.stop();
    await be.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function drain(st: WatchStream, until: (all: WatchResponse[]) => boolean): Promise<WatchResponse[]> {
  const out: WatchResponse[] = [];
  while (!until(out)) {
    const m = await st.next();
    if (m === undefined) break;
    out.push(m);
  }
  return out;
}

const revsOf = (msgs: WatchResponse[]) => msgs.flatMap((m) => m.events.map((e) => e.kv!.modRevision));

test("created response comes first, then events in revision order", async () => {
  await withHub(async (_s, hub, write) => {
    const st = hub.openStream();
    hub.watch(st, spec(), 0n);
    await write("k1", "a");
    await write("x", "ignored");
    await write("k1", null);
    const msgs = await drain(st, (all) => revsOf(all).length >= 2);
    assert.equal(msgs[0]!.created, true);
    assert.equal(msgs[0]!.watchId, 0n);
    assert.deepEqual(revsOf(msgs), [2n, 4n]);
    assert.equal(msgs[2]!.events[0]!.type, 1, "the second event is a DELETE");
  });
});

test("a slow stream's memory stays bounded, and it still gets every event once, in order", async () => {
  await withHub(async (_s, hub, write) => {
    const st = hub.openStream();
    hub.watch(st, spec(), 0n);
    const value = "v".repeat(64 * 1024);
    const N = 300; // 300 x 64 KiB = ~19 MiB of events, far over the 4 MiB stream budget
    for (let i = 0; i < N; i++) await write(`k${i % 7}`, value);
    assert.ok(st.overBudget, "the stream is over budget: pushes have stopped");
    const queued = (st as unknown as { queue: unknown[] }).queue.length;
    assert.ok(queued < N / 2, `queued responses are bounded by the budget, not by the writes (${queued} of ${N})`);
    const msgs = await drain(st, (all) => revsOf(all).length >= N);
    const revs = revsOf(msgs);
    assert.equal(revs.length, N);
    assert.deepEqual(revs, Array.from({ length: N }, (_, i) => BigInt(i + 2)), "no gap, no duplicate, in order");
  });
});

test("a watcher starting in the past catches up from history; compacted start is cancelled", async () => {
  await withHub(async (s, hub, write) => {
    for (let i = 0; i < 5; i++) await write("k", String(i)); // revs 2..6
    const st = hub.openStream();
    hub.watch(st, spec({ startRevision: 3n, prevKv: true }), 0n);
    const msgs = await drain(st, (all) => revsOf(all).length >= 4);
    assert.deepEqual(revsOf(msgs), [3n, 4n, 5n, 6n]);
    const ev = msgs.flatMap((m) => m.events)[0]!;
    assert.equal(Buffer.from(ev.prevKv!.value).toString(), "0", "prev_kv read from history");
    const ops: BatchOp[] = [];
    s.scheduleCompaction(5n, ops);
    await s.backend.write(ops, true);
    await s.startPhysicalCompaction(5n);
    const st2 = hub.openStream();
    hub.watch(st2, spec({ startRevision: 4n }), 0n);
    const m2 = await drain(st2, (all) => all.some((m) => m.canceled));
    const cancel = m2.find((m) => m.canceled)!;
    assert.equal(cancel.compactRevision, 5n);
  });
});

test("errors: empty range, duplicate id; progress request answers -1 once synced", async () => {
  await withHub(async (_s, hub, write) => {
    await write("k", "1");
    const st = hub.openStream();
    hub.watch(st, spec({ key: Buffer.from("b"), rangeEnd: Buffer.from("a") }), 0n);
    hub.watch(st, spec(), 7n);
    hub.watch(st, spec(), 7n);
    hub.requestProgress(st);
    const msgs = await drain(st, (all) => all.length >= 4);
    assert.deepEqual(
      msgs.map((m) => [m.watchId, m.created, m.canceled, m.cancelReason]),
      [
        [-1n, true, true, "mvcc: watcher range is empty"],
        [7n, true, false, ""],
        [-1n, true, true, "mvcc: duplicate watch ID provided on the WatchStream"],
        [-1n, false, false, ""],
      ],
    );
    assert.equal(msgs[3]!.header!.revision, 2n);
  });
});

test("a future start_revision: no events before it, then every event from it", async () => {
  await withHub(async (_s, hub, write) => {
    const st = hub.openStream();
    hub.watch(st, spec({ startRevision: 4n }), 0n); // current revision is 1
    await write("k1", "a"); // 2
    await write("k1", "b"); // 3
    await write("k1", "c"); // 4
    await write("k2", "d"); // 5
    const msgs = await drain(st, (all) => revsOf(all).length >= 2);
    assert.equal(msgs[0]!.created, true);
    assert.deepEqual(revsOf(msgs), [4n, 5n]);
  });
});
