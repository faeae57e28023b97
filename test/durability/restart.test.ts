// Durability across crashes: every acknowledged write, the revision counter,
// the compaction state and the leases survive kill -9 and a restart on the
// same data directory. Runs against our server, and against real etcd as the
// reference (the same assertions must hold there).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { startMember } from "../harness/member.js";
import type { Impl, Member } from "../harness/member.js";
import { conformanceTargets } from "../harness/targets.js";
import { isCI } from "../harness/provision.js";
import { GrpcConn, GrpcCallError } from "../harness/grpc.js";
import { KV, Lease, Maintenance } from "../../node/gen/etcdserverpb/rpc_pb.js";
import { eventually as pollUntil } from "../harness/launch.js";

const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const dec = (u: Uint8Array) => Buffer.from(u).toString("latin1");
const CAP_MS = 30_000;

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const f of cleanups.splice(0).reverse()) await f().catch(() => undefined);
});

async function withMember(impl: Impl, fn: (m: Member, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `etcdts-dur-${impl}-`));
  const dataDir = join(dir, "data");
  const m = await startMember({ impl, dataDir, name: "durable" });
  const cleanup = async () => {
    await m.dispose();
    rmSync(dir, { recursive: true, force: true });
  };
  cleanups.push(cleanup);
  try {
    await fn(m, dataDir);
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n--- ${impl} log tail:\n${m.logTail(30)}`);
  } finally {
    await cleanup();
  }
}

const eventually = <T>(what: string, f: () => Promise<T | undefined>): Promise<T> => pollUntil(what, f, CAP_MS, 100);

const targets = conformanceTargets();
test("durability targets are available", (t) => {
  for (const m of targets.filter((x) => !x.available)) {
    if (isCI) throw new Error(`target ${m.impl} unavailable under CI=true: ${m.reason ?? ""}`);
    t.diagnostic(`TARGET ${m.impl} ${m.reason ?? "unavailable"}: not tested`);
  }
});

for (const target of targets) {
  const skip = target.available ? false : `${target.impl} unavailable: ${target.reason ?? ""}`;

  test(`[${target.impl}] acknowledged writes, revisions and compaction survive kill -9`, { skip, timeout: 180_000 }, async () => {
    await withMember(target.impl, async (m) => {
      let conn = new GrpcConn(m.grpcTarget, { deadlineMs: 10_000 });
      // A history with overwrites, deletes, a txn and a compaction.
      const acked = new Map<string, { value: string; rev: bigint }>();
      for (let i = 0; i < 20; i++) {
        const k = `base/${String(i).padStart(3, "0")}`;
        const r = await conn.unary(KV.method.put, { key: enc(k), value: enc(`v${i}`) });
        acked.set(k, { value: `v${i}`, rev: r.header!.revision });
      }
      const ow = await conn.unary(KV.method.put, { key: enc("base/000"), value: enc("overwritten") });
      acked.set("base/000", { value: "overwritten", rev: ow.header!.revision });
      const del = await conn.unary(KV.method.deleteRange, { key: enc("base/001") });
      acked.delete("base/001");
      const txn = await conn.unary(KV.method.txn, {
        success: [
          { request: { case: "requestPut", value: { key: enc("txn/a"), value: enc("A") } } },
          { request: { case: "requestPut", value: { key: enc("txn/b"), value: enc("B") } } },
        ],
      });
      acked.set("txn/a", { value: "A", rev: txn.header!.revision });
      acked.set("txn/b", { value: "B", rev: txn.header!.revision });
      const compactRev = del.header!.revision;
      await conn.unary(KV.method.compact, { revision: compactRev, physical: true });

      // Many concurrent writes, and a crash while some are still in flight.
      const inflight: Array<Promise<void>> = [];
      let ackCount = 0;
      for (let i = 0; i < 400; i++) {
        const k = `burst/${String(i).padStart(4, "0")}`;
        inflight.push(
          conn.unary(KV.method.put, { key: enc(k), value: enc(`b${i}`) }).then(
            (r) => {
              acked.set(k, { value: `b${i}`, rev: r.header!.revision });
              ackCount++;
            },
            () => undefined,
          ),
        );
      }
      await eventually("some burst writes acknowledged", async () => (ackCount >= 50 ? true : undefined));
      await m.kill9();
      await Promise.all(inflight);
      conn.close();
      const maxAcked = [...acked.values()].reduce((a, v) => (v.rev > a ? v.rev : a), 0n);

      await m.restart();
      conn = new GrpcConn(m.grpcTarget, { deadlineMs: 10_000 });
      try {
        const all = await conn.unary(KV.method.range, { key: enc("\0"), rangeEnd: enc("\0") });
        assert.ok(all.header!.revision >= maxAcked, `revision went back: ${all.header!.revision} < acknowledged ${maxAcked}`);
        const byKey = new Map(all.kvs.map((kv) => [dec(kv.key), kv]));
        for (const [k, want] of acked) {
          const got = byKey.get(k);
          assert.ok(got, `acknowledged write lost: ${k}`);
          assert.equal(dec(got.value), want.value, `value of ${k}`);
          assert.equal(got.modRevision, want.rev, `mod revision of ${k}`);
        }
        assert.equal(byKey.has("base/001"), false, "acknowledged delete lost");
        // Unacknowledged burst writes may or may not have landed; those that did are whole.
        for (const [k, kv] of byKey) {
          if (acked.has(k)) continue;
          assert.ok(k.startsWith("burst/"), `unexpected key ${k}`);
          assert.equal(dec(kv.value), `b${Number(k.slice(6))}`);
        }
        // Compaction state.
        await assert.rejects(conn.unary(KV.method.range, { key: enc("base/000"), revision: compactRev - 1n }), (e: unknown) => {
          assert.ok(e instanceof GrpcCallError);
          assert.equal(e.details, "etcdserver: mvcc: required revision has been compacted");
          return true;
        });
        const atCompact = await conn.unary(KV.method.range, { key: enc("base/002"), revision: compactRev });
        assert.equal(atCompact.kvs.length, 1, "history at the compact revision is readable");
        const h = await conn.unary(Maintenance.method.hashKV, { revision: 0n });
        assert.equal(h.compactRevision, compactRev);
        // New writes continue after the highest revision: no revision is reused.
        const next = await conn.unary(KV.method.put, { key: enc("after"), value: enc("x") });
        assert.equal(next.header!.revision, all.header!.revision + 1n);
        // History (above the compaction) written before the crash is still there.
        const old = await conn.unary(KV.method.range, { key: enc("base/"), rangeEnd: enc("base0"), revision: txn.header!.revision });
        assert.equal(old.kvs.length, 19);
        assert.equal(dec(old.kvs[0]!.value), "overwritten");
      } finally {
        conn.close();
      }
    });
  });

  test(`[${target.impl}] leases survive kill -9: keys, granted TTL, and the TTL is refreshed on restart`, { skip, timeout: 180_000 }, async () => {
    await withMember(target.impl, async (m) => {
      let conn = new GrpcConn(m.grpcTarget, { deadlineMs: 10_000 });
      const long = await conn.unary(Lease.method.leaseGrant, { TTL: 600n });
      const chosen = await conn.unary(Lease.method.leaseGrant, { TTL: 600n, ID: 4242n });
      const short = await conn.unary(Lease.method.leaseGrant, { TTL: 10n });
      const gone = await conn.unary(Lease.method.leaseGrant, { TTL: 600n });
      await conn.unary(KV.method.put, { key: enc("lease/a"), value: enc("1"), lease: long.ID });
      await conn.unary(KV.method.put, { key: enc("lease/b"), value: enc("2"), lease: long.ID });
      await conn.unary(KV.method.put, { key: enc("lease/c"), value: enc("3"), lease: chosen.ID });
      await conn.unary(KV.method.put, { key: enc("lease/d"), value: enc("4"), lease: gone.ID });
      await conn.unary(Lease.method.leaseRevoke, { ID: gone.ID });
      // Let the short lease run down a little (a poll, not a timing assertion).
      const before = await eventually("the 10 s lease to run down to <= 7 s", async () => {
        const t = await conn.unary(Lease.method.leaseTimeToLive, { ID: short.ID });
        return t.TTL > 0n && t.TTL <= 7n ? t.TTL : undefined;
      });
      await m.kill9();
      conn.close();
      await m.restart();
      conn = new GrpcConn(m.grpcTarget, { deadlineMs: 10_000 });
      try {
        const ttl = async (id: bigint) => conn.unary(Lease.method.leaseTimeToLive, { ID: id, keys: true });
        const l = await ttl(long.ID);
        assert.equal(l.grantedTTL, 600n);
        assert.ok(l.TTL > 0n, "long lease alive");
        assert.deepEqual(l.keys.map(dec).sort(), ["lease/a", "lease/b"]);
        const c = await ttl(4242n);
        assert.equal(c.grantedTTL, 600n);
        assert.deepEqual(c.keys.map(dec), ["lease/c"]);
        const s = await ttl(short.ID);
        assert.equal(s.grantedTTL, 10n);
        assert.ok(s.TTL > before, `etcd refreshes lease expiry when the member becomes leader: remaining ${s.TTL} should exceed the pre-crash ${before}`);
        const g = await ttl(gone.ID);
        assert.equal(g.TTL, -1n, "a revoked lease stays revoked");
        const leases = await conn.unary(Lease.method.leaseLeases, {});
        assert.deepEqual(leases.leases.map((x) => x.ID).sort(), [long.ID, chosen.ID, short.ID].sort());
        const keysNow = await conn.unary(KV.method.range, { key: enc("lease/"), rangeEnd: enc("lease0") });
        assert.deepEqual(keysNow.kvs.map((kv) => [dec(kv.key), kv.lease]), [["lease/a", long.ID], ["lease/b", long.ID], ["lease/c", 4242n]]);
        // The restored lease still works: keepalive-free revoke deletes its keys.
        await conn.unary(Lease.method.leaseRevoke, { ID: long.ID });
        const after = await conn.unary(KV.method.range, { key: enc("lease/"), rangeEnd: enc("lease0") });
        assert.deepEqual(after.kvs.map((kv) => dec(kv.key)), ["lease/c"]);
        // A lease that expires while the member is up still deletes its keys after a restart.
        await conn.unary(KV.method.put, { key: enc("lease/short"), value: enc("x"), lease: short.ID });
        await eventually("the short lease to expire after restart", async () => {
          const r = await conn.unary(KV.method.range, { key: enc("lease/short") });
          return r.kvs.length === 0 ? true : undefined;
        });
      } finally {
        conn.close();
      }
    });
  });

  test(`[${target.impl}] graceful stop and restart keeps everything too`, { skip, timeout: 120_000 }, async () => {
    await withMember(target.impl, async (m) => {
      let conn = new GrpcConn(m.grpcTarget);
      for (let i = 0; i < 10; i++) await conn.unary(KV.method.put, { key: enc(`g/${i}`), value: enc(`${i}`) });
      const last = await conn.unary(KV.method.put, { key: enc("g/last"), value: enc("L") });
      conn.close();
      await m.stop();
      await m.restart();
      conn = new GrpcConn(m.grpcTarget);
      try {
        const r = await conn.unary(KV.method.range, { key: enc("g/"), rangeEnd: enc("g0") });
        assert.equal(r.kvs.length, 11);
        assert.equal(r.header!.revision, last.header!.revision);
        // Twice in a row (state written by the restarted process is durable as well).
        const more = await conn.unary(KV.method.put, { key: enc("g/more"), value: enc("M") });
        conn.close();
        await m.kill9();
        await m.restart();
        conn = new GrpcConn(m.grpcTarget);
        const r2 = await conn.unary(KV.method.range, { key: enc("g/more") });
        assert.equal(r2.kvs[0]?.modRevision, more.header!.revision);
      } finally {
        conn.close();
      }
    });
  });
}
