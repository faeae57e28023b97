import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { AlarmRequest_AlarmAction, AlarmType, RangeRequestSchema, type AlarmResponse, type PutResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { Errors } from "../errors.js";
import { EtcdServer, type ServerOptions } from "./server.js";
import { testServerOptions } from "./options.testlib.js";

async function withServer(over: Partial<ServerOptions>, fn: (s: EtcdServer, dir: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), "etcdts-server-"));
  const s = await EtcdServer.start(testServerOptions(dir, { watchProgressNotifyIntervalMs: 0, ...over }));
  try {
    await fn(s, dir);
  } finally {
    await s.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const put = (s: EtcdServer, key: string, value: Buffer) => s.propose<PutResponse>({ request: { case: "put", value: { key: Buffer.from(key), value } } });

test("concurrent writes share fsyncs and get consecutive revisions", async () => {
  await withServer({}, async (s) => {
    const rs = await Promise.all(Array.from({ length: 200 }, (_, i) => put(s, `k${i}`, Buffer.from("v"))));
    const revs = rs.map((r) => r.header!.revision).sort((a, b) => (a < b ? -1 : 1));
    assert.deepEqual(revs, Array.from({ length: 200 }, (_, i) => BigInt(i + 2)));
    const fsyncs = (await s.metrics.fsync.get()).values.find((v) => v.metricName === "etcd_disk_wal_fsync_duration_seconds_count")!.value;
    assert.ok(fsyncs < 200, `group commit: ${fsyncs} fsyncs for 200 writes`);
    // The log also holds the bootstrap conf change and the new leader's empty entry.
    assert.ok(s.appliedIndex >= 202n, `applied index ${s.appliedIndex}`);
  });
});

test("NOSPACE: over the quota writes are refused and the alarm raised; reads and deletes still work", async () => {
  await withServer({ quotaBackendBytes: 256n * 1024n }, async (s) => {
    const big = Buffer.alloc(16 * 1024, 0x61);
    let refused: unknown;
    for (let i = 0; i < 5000 && refused === undefined; i++) {
      try {
        // the API layer's check (kv.ts) then the proposal, as a Put request takes
        await s.checkQuota(256 + 4 + big.length);
        await put(s, `k${i % 50}`, big);
      } catch (err) {
        refused = err;
      }
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 50)); // let the size refresh run
    }
    assert.equal(refused, Errors.NoSpace);
    assert.deepEqual(s.alarms.get().map((a) => AlarmType[a.alarm]), ["NOSPACE"]);
    // Applied writes are refused too, not only the API-level check.
    await assert.rejects(put(s, "k0", Buffer.from("x")), (e) => e === Errors.NoSpace);
    await assert.rejects(s.propose({ request: { case: "leaseGrant", value: { ID: 5n, TTL: 10n } } }), (e) => e === Errors.NoSpace);
    const r = await s.range(create(RangeRequestSchema, { key: Buffer.from("k0") }));
    assert.equal(r.kvs.length, 1);
    await s.propose({ request: { case: "deleteRange", value: { key: Buffer.from("k0") } } });
    // Disarming lifts the refusal (until the quota is hit again).
    const off = await s.propose<AlarmResponse>({
      request: { case: "alarm", value: { action: AlarmRequest_AlarmAction.DEACTIVATE, memberID: s.memberId, alarm: AlarmType.NOSPACE } },
    });
    assert.equal(off.alarms.length, 1);
    await put(s, "k0", Buffer.from("x"));
  });
});

test("a revoked or expired lease deletes its keys in one revision", async () => {
  let now = 0;
  await withServer({ clock: { now: () => now } }, async (s) => {
    await s.propose({ request: { case: "leaseGrant", value: { ID: 7n, TTL: 1n } } });
    assert.equal(s.lessor.lookup(7n)!.ttl, 2n, "TTL raised to the minimum (1.5 election timeouts, rounded up)");
    for (const k of ["b", "a", "c"]) await s.propose({ request: { case: "put", value: { key: Buffer.from(k), lease: 7n } } });
    const before = s.store.durableRev;
    now = 2500; // past the deadline: the server's expiry check proposes the revoke
    for (let i = 0; i < 200 && s.lessor.lookup(7n) !== undefined; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.lessor.lookup(7n), undefined);
    assert.equal(s.store.durableRev, before + 1n, "all three keys deleted in one revision");
    const r = await s.range(create(RangeRequestSchema, { key: Buffer.from("\0"), rangeEnd: Buffer.from("\0") }));
    assert.equal(r.kvs.length, 0);
  });
});

test("restart: revisions, leases, alarms and the applied index survive", async () => {
  const dir = await mkdtemp(join(tmpdir(), "etcdts-restart-"));
  try {
    await withServer({ dataDir: dir }, async (s) => {
      await s.propose({ request: { case: "leaseGrant", value: { ID: 9n, TTL: 100n } } });
      await s.propose({ request: { case: "put", value: { key: Buffer.from("a"), value: Buffer.from("1"), lease: 9n } } });
      await s.propose({ request: { case: "alarm", value: { action: AlarmRequest_AlarmAction.ACTIVATE, memberID: s.memberId, alarm: AlarmType.NOSPACE } } });
    });
    await withServer({ dataDir: dir }, async (s) => {
      // Nothing applied twice: the restart re-applies only what the backend lacks.
      assert.equal(s.store.durableRev, 2n);
      assert.ok(s.appliedIndex >= 6n, `applied index ${s.appliedIndex}`);
      for (let i = 0; i < 500 && s.leader === 0n; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(s.leader, s.memberId);
      assert.equal(s.term, 3n, "every start is a new term");
      assert.deepEqual([...s.lessor.lookup(9n)!.keys], ["a"]);
      assert.deepEqual(s.alarms.get().map((a) => AlarmType[a.alarm]), ["NOSPACE"]);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a snapshot body is whole 512-byte blocks plus its sha256, reads back every backend record, and a cut or altered body is refused", async () => {
  const { snapshotStream, SnapshotParser } = await import("./snapshot.js");
  await withServer({}, async (s) => {
    for (let i = 0; i < 50; i++) await put(s, `snap${i}`, Buffer.alloc(100, i));
    const { total, chunks } = await snapshotStream(s.backend, { withSize: true });
    const parts: Buffer[] = [];
    for await (const c of chunks) parts.push(c);
    const file = Buffer.concat(parts);
    assert.equal(BigInt(file.length - 32), total, "the counted size is the body's (the RPC sends the sha256 on its own)");
    assert.equal((file.length - 32) % 512, 0, "etcdctl 3.6 looks for the sha256 after whole 512-byte blocks");
    const want: string[] = [];
    for await (const [k, v] of s.backend.range(Buffer.from([0x00]), Buffer.from([0xff]))) want.push(`${k.toString("hex")}=${v.toString("hex")}`);
    const got: string[] = [];
    const p = new SnapshotParser("test", (k, v) => got.push(`${k.toString("hex")}=${v.toString("hex")}`));
    // In odd-sized pieces, as a socket delivers them.
    for (let off = 0; off < file.length; off += 777) p.push(file.subarray(off, off + 777));
    p.end();
    assert.deepEqual(got, want);
    // Cut before the end marker: refused, never a partial restore.
    const end = file.lastIndexOf(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    const cut = new SnapshotParser("cut");
    cut.push(file.subarray(0, end - 3));
    assert.throws(() => cut.end(), /cut short/);
    // One byte changed in a value: the sha256 says so.
    const bad = Buffer.from(file);
    bad[file.indexOf(Buffer.alloc(100, 7)) + 50]! ^= 1;
    assert.throws(() => new SnapshotParser("bad").push(bad), /sha256 mismatch/);
  });
});
