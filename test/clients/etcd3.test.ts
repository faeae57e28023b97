// The `etcd3` npm client (microsoft/etcd3) against real etcd 3.6 and against
// ours. Each case is one body that talks to a cluster through the client and
// returns a transcript of what it saw — keys, values, revisions, versions,
// event order, error classes and texts, never IDs or times. The body runs on
// both clusters in lockstep (same requests in the same order, so revisions
// agree) and the transcripts must be equal. Checks that must hold whatever the
// server (a waiter must not hold a lock, counters add up) are asserted inside
// the body against both.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Etcd3, EtcdLockFailedError } from "etcd3";
import type { IKeyValue, Watcher } from "etcd3";

import { referenceTools, startCluster } from "../harness/cluster.js";
import type { Cluster } from "../harness/cluster.js";
import type { Impl } from "../harness/member.js";

const tools = referenceTools();

interface Side {
  readonly impl: Impl;
  readonly cluster: Cluster;
  readonly client: Etcd3;
}

type Body = (s: Side, log: (line: string) => void) => Promise<void>;

const kvText = (kv: IKeyValue): string =>
  `${kv.key.toString()}=${JSON.stringify(kv.value.toString())}(c${kv.create_revision},m${kv.mod_revision},v${kv.version})`;

/** One response of a transaction, as text. */
function opText(op: { response_range?: { kvs: IKeyValue[]; count: string }; response_put?: { prev_kv?: IKeyValue }; response_delete_range?: { deleted: string } }): string {
  if (op.response_range) return `range count=${op.response_range.count} ${op.response_range.kvs.map(kvText).join(" ")}`;
  if (op.response_put) return `put${op.response_put.prev_kv ? ` prev=${kvText(op.response_put.prev_kv)}` : ""}`;
  if (op.response_delete_range) return `delete ${op.response_delete_range.deleted}`;
  return "unknown op";
}

/** An error as class and message; numbers of 10+ digits (lease IDs: clock-derived) become <id>. */
const errText = (err: unknown): string =>
  (err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)).replace(/\d{10,}/g, "<id>");

/** Waits until cond() holds, polling; a hang is a failure. */
async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Collects a watcher's events as text until `done` says the last expected one came. */
function collect(w: Watcher, done: (kv: IKeyValue) => boolean): Promise<string[]> {
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    const on = (type: string) => (kv: IKeyValue, prev?: IKeyValue) => {
      lines.push(`${type} ${kvText(kv)}${prev ? ` prev=${JSON.stringify(prev.value.toString())}` : ""}`);
      if (done(kv)) resolve(lines);
    };
    w.on("put", on("PUT"));
    w.on("delete", on("DELETE"));
    w.on("error", reject);
    setTimeout(() => reject(new Error(`watch: only ${JSON.stringify(lines)}`)), 20_000).unref();
  });
}

describe("etcd3 npm client: real etcd 3.6 vs ours", { skip: !tools.ok }, () => {
  const sides: Side[] = [];

  before(async () => {
    for (const impl of ["etcd", "ours"] as const) {
      const cluster = await startCluster(impl);
      sides.push({ impl, cluster, client: new Etcd3({ hosts: [...cluster.endpoints] }) });
    }
  });
  after(async () => {
    for (const s of sides) {
      s.client.close();
      await s.cluster.dispose();
    }
  });

  /** Runs body on etcd, then on ours, and compares the transcripts. */
  async function same(body: Body): Promise<string[]> {
    const out: string[][] = [];
    for (const s of sides) {
      const lines: string[] = [];
      try {
        await body(s, (l) => lines.push(l));
      } catch (err) {
        lines.push(`THREW ${errText(err)}`);
      }
      out.push(lines);
    }
    const [judge, ours] = out;
    assert.ok(judge && ours);
    assert.ok(!judge.some((l) => l.startsWith("THREW")), `the case failed against real etcd:\n${judge.join("\n")}`);
    if (process.env["ETCDTS_CLIENTS_VERBOSE"]) process.stdout.write(`# transcript (etcd):\n${judge.join("\n")}\n`);
    assert.deepEqual(ours, judge, "transcript (ours, then etcd)");
    return judge;
  }

  it("KV: put, get, prefixes, sorting, limits, delete", async () => {
    await same(async ({ client }, log) => {
      for (const [k, v] of [["kv/a", "1"], ["kv/b", "2"], ["kv/c", "3"], ["kv/b", "22"], ["kv/d", ""]] as const) {
        const r = await client.put(k).value(v).getPrevious();
        log(`put ${k}=${v} rev=${r.header.revision} prev=${r.key ? kvText(r as IKeyValue) : "none"}`);
      }
      log(`get kv/b: ${await client.get("kv/b").string()}`);
      log(`get missing: ${String(await client.get("kv/none").string())}`);
      log(`get kv/b as number: ${String(await client.get("kv/b").number())}`);
      log(`getAll prefix: ${JSON.stringify(await client.getAll().prefix("kv/").strings())}`);
      log(`getAll sorted by value desc, limit 2: ${JSON.stringify(await client.getAll().prefix("kv/").sort("Value", "Descend").limit(2).keys())}`);
      log(`getAll count: ${await client.getAll().prefix("kv/").count()}`);
      const r = await client.getAll().prefix("kv/").sort("Mod", "Ascend").exec();
      log(`raw: count=${r.count} more=${r.more} rev=${r.header.revision} ${r.kvs.map(kvText).join(" ")}`);
      log(`range [kv/b, kv/d): ${JSON.stringify(await client.getAll().inRange({ start: "kv/b", end: "kv/d" }).keys())}`);
      log(`at revision ${Number(r.header.revision) - 2}: ${await client.get("kv/b").revision(Number(r.header.revision) - 2).string()}`);
      const d = await client.delete().key("kv/a").getPrevious();
      log(`delete kv/a: ${d.map(kvText).join(" ")}`);
      const dp = await client.delete().prefix("kv/").exec();
      log(`delete prefix: deleted=${dp.deleted} rev=${dp.header.revision}`);
      try {
        await client.get("kv/a").revision(100_000).string();
        log("future revision: no error");
      } catch (err) {
        log(`future revision: ${errText(err)}`);
      }
      try {
        await client.put("").value("x").exec();
        log("empty key: no error");
      } catch (err) {
        log(`empty key: ${errText(err)}`);
      }
    });
  });

  it("transactions: if / then / else", async () => {
    await same(async ({ client }, log) => {
      await client.put("t/x").value("1");
      for (const want of ["1", "1", "nope"]) {
        const r = await client
          .if("t/x", "Value", "==", want)
          .and("t/x", "Version", ">", 0)
          .then(client.put("t/x").value("2"), client.get("t/x"))
          .else(client.get("t/x"), client.delete().key("t/none"))
          .commit();
        log(`if value==${want}: succeeded=${r.succeeded} rev=${r.header.revision} responses=${r.responses.map(opText).join("; ")}`);
      }
      const r = await client.if("t/y", "Create", "==", 0).then(client.put("t/y").value("new")).commit();
      log(`create if absent: succeeded=${r.succeeded}`);
      const r2 = await client.if("t/y", "Mod", "<", 1_000).then(client.getAll().prefix("t/")).commit();
      log(`mod < 1000: succeeded=${r2.succeeded} ${(r2.responses[0]?.response_range?.kvs ?? []).map(kvText).join(" ")}`);
    });
  });

  it("watch builder: history with prev kv, prefix, live events", async () => {
    await same(async ({ client }, log) => {
      const first = await client.put("w/a").value("1").exec();
      await client.put("w/b").value("2");
      await client.put("w/a").value("3");
      const last = await client.delete().key("w/b").exec();
      const w = await client.watch().prefix("w/").withPreviousKV().startRevision(first.header.revision).create();
      const lines = await collect(w, (kv) => kv.mod_revision === last.header.revision);
      await w.cancel();
      log(`history:\n${lines.join("\n")}`);

      const live = await client.watch().key("w/live").create();
      const pending = collect(live, (kv) => kv.value.toString() === "end");
      await client.put("w/live").value("x");
      await client.delete().key("w/live");
      await client.put("w/live").value("end");
      log(`live: ${(await pending).join("; ")}`);
      await live.cancel();

      // only("delete") asks the server to filter puts out (NOPUT). (etcd3's ignore() is an alias of only().)
      const only = await client.watch().key("w/only").only("delete").create();
      const deletes = collect(only, () => true);
      await client.put("w/only").value("x");
      await client.delete().key("w/only");
      log(`deletes only: ${(await deletes).join("; ")}`);
      await only.cancel();
    });
  });

  it("lease: grant, keepalive events, revoke, expiry, loss", async () => {
    await same(async ({ client }, log) => {
      const lease = client.lease(60);
      await lease.grant();
      await lease.put("l/k1").value("v");
      const once = await lease.keepaliveOnce();
      log(`keepaliveOnce: TTL=${once.TTL}`);
      const ttl = await client.leaseClient.leaseTimeToLive({ ID: await lease.grant(), keys: true });
      log(`timetolive: granted=${ttl.grantedTTL} keys=${JSON.stringify(ttl.keys.map((k) => k.toString()))}`);
      log(`get with lease: ${JSON.stringify(await client.getAll().prefix("l/").strings())}`);
      await lease.revoke();
      log(`after revoke: ${JSON.stringify(await client.getAll().prefix("l/").strings())} revoked=${lease.revoked()}`);

      // Automatic keepalive (every TTL/3): wait for one successful round.
      const kept = client.lease(3);
      const ok = new Promise<number>((resolve) => kept.once("keepaliveSucceeded", (r) => resolve(Number(r.TTL))));
      await kept.grant();
      log(`keepaliveSucceeded: TTL=${await ok}`);
      // Revoked behind its back: the next keepalive loses it.
      const lost = new Promise<string>((resolve) => kept.once("lost", (err) => resolve(errText(err))));
      await client.leaseClient.leaseRevoke({ ID: await kept.grant() });
      log(`lost: ${await lost}`);
      kept.release();

      // Expiry without keepalive deletes the key: seen as a watch DELETE.
      const short = client.lease(1, { autoKeepAlive: false });
      await short.grant();
      const p = await short.put("l/short").value("v").exec();
      const w = await client.watch().key("l/short").startRevision(String(Number(p.header.revision) + 1)).create();
      const gone = await collect(w, () => true);
      await w.cancel();
      log(`expiry: ${gone.join("; ")}`);
      try {
        await short.keepaliveOnce();
        log("keepalive after expiry: no error");
      } catch (err) {
        log(`keepalive after expiry: ${errText(err)}`);
      }
      short.release();
    });
  });

  it("lock: exclusion, and contention between concurrent holders", async () => {
    await same(async ({ client }, log) => {
      const l1 = await client.lock("lk").ttl(10).acquire();
      log("l1 acquired");
      try {
        await client.lock("lk").ttl(10).acquire();
        log("l2 acquired while l1 holds it");
      } catch (err) {
        log(`l2: ${errText(err)}`);
      }
      await l1.release();
      const l2 = await client.lock("lk").ttl(10).acquire();
      log("l2 acquired after release");
      await l2.release();

      // 4 workers x 5 increments of a plain key, each under the lock, retrying
      // while another worker holds it: no increment may be lost.
      await client.put("lk-counter").value("0");
      await Promise.all([0, 1, 2, 3].map(async () => {
        for (let i = 0; i < 5; i++) {
          for (;;) {
            try {
              await client.lock("lk2").ttl(10).do(async () => {
                const n = Number(await client.get("lk-counter").string());
                await client.put("lk-counter").value(String(n + 1));
              });
              break;
            } catch (err) {
              if (!(err instanceof EtcdLockFailedError)) throw err;
              await new Promise((r) => setTimeout(r, 5));
            }
          }
        }
      }));
      log(`counter after 4x5 locked increments: ${await client.get("lk-counter").string()}`);
      log(`lock keys left: ${await client.getAll().prefix("lk").count()}`);
    });
  });

  it("election: campaign, observe, proclaim, resign", async () => {
    await same(async ({ client }, log) => {
      const e = client.election("el", 10);
      log(`leader before: ${String(await e.leader())}`);
      const c1 = e.campaign("v1");
      await c1.wait();
      log(`c1 elected; leader=${String(await e.leader())}`);
      const observer = await e.observe();
      log(`observer sees: ${String(observer.leader())}`);
      const changes: string[] = [];
      observer.on("change", (v) => changes.push(String(v)));
      await c1.proclaim("v1b");
      await until(() => changes.includes("v1b"), "observer to see v1b");
      log(`after proclaim: leader=${String(await e.leader())}`);

      const c2 = client.election("el", 10).campaign("v2");
      let c2Elected = false;
      c2.on("elected", () => { c2Elected = true; });
      await until(async () => (await client.getAll().prefix("el").count()) === 2, "c2 to queue");
      assert.equal(c2Elected, false, "c2 must not be elected while c1 leads");
      log("c2 waits while c1 leads");
      await c1.resign();
      await c2.wait();
      log(`c1 resigned; c2 elected; leader=${String(await e.leader())}`);
      await until(() => changes.includes("v2"), "observer to see v2");
      log(`observer changes: ${JSON.stringify(changes)}`);
      try {
        await c1.proclaim("stale");
        log("proclaim after resign: no error");
      } catch (err) {
        log(`proclaim after resign: ${errText(err)}`);
      }
      await c2.resign();
      await observer.cancel();
      log(`election keys left: ${await client.getAll().prefix("el").count()}`);
    });
  });

  it("STM: concurrent increments with retries, in each serializable isolation", async () => {
    await same(async ({ client }, log) => {
      // Isolation (a const enum in etcd3's types): 0 SerializableSnapshot, 1 Serializable, 2 RepeatableReads.
      for (const [name, isolation] of [["serializable-snapshot", 0], ["serializable", 1], ["repeatable-reads", 2]] as const) {
        const key = `stm/${name}`;
        await client.put(key).value("0");
        await Promise.all([0, 1, 2, 3].map(async () => {
          for (let i = 0; i < 5; i++) {
            await client.stm({ retries: 100, isolation }).transact(async (tx) => {
              const n = Number(await tx.get(key).string());
              await tx.put(key).value(String(n + 1));
            });
          }
        }));
        const r = await client.get(key).exec();
        const kv = r.kvs[0];
        assert.ok(kv);
        assert.equal(kv.value.toString(), "20", `${name}: counter`);
        log(`${name}: 4x5 increments -> ${kv.value.toString()} (version ${kv.version})`);
      }
    });
  });
});
