// etcdctl 3.6 and 3.4 against real etcd 3.6 (the judge) and against ours.
// Every command our server supports runs with the same etcdctl on both
// clusters in lockstep; stdout, stderr and the exit code must be equal after
// the normalisations listed (and justified) in etcdctl.testlib.ts.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";

import { referenceTools } from "../harness/cluster.js";
import { Duo, PROTOBUF, waitFor } from "./etcdctl.testlib.js";

const tools = referenceTools();
const FORMATS = ["simple", "json", "fields"] as const;

/** Keys in a `get -w json` answer (0 when there are none: etcd omits "kvs"). */
function keyCount(json: string): number {
  if (json.trim() === "") throw new Error("no output from get -w json");
  return (JSON.parse(json) as { kvs?: unknown[] }).kvs?.length ?? 0;
}

const versions: { name: string; bin: string }[] = tools.ok
  ? [{ name: "3.6", bin: tools.value.etcdctl36 }, { name: "3.4", bin: tools.value.etcdctl34 }]
  : [{ name: "3.6", bin: "" }, { name: "3.4", bin: "" }];

for (const v of versions) {
  describe(`etcdctl ${v.name}: real etcd 3.6 vs ours`, { skip: !tools.ok }, () => {
    let d: Duo;
    // Progress notifications every second, so `watch --progress-notify` has something to print.
    before(async () => {
      // The binary must be the version this block is named after (a harness mix-up once ran 3.6 twice).
      const ver = spawnSync(v.bin, ["version"], { encoding: "utf8" }).stdout;
      assert.match(ver, new RegExp(`^etcdctl version: ${v.name.replace(".", "\\.")}\\.`), `${v.bin} version`);
      d = await Duo.start(v.bin, ["--watch-progress-notify-interval=1s"]);
    });
    after(async () => { await d?.stop(); });

    it("endpoint hashkv on a fresh cluster", async () => {
      await d.same(["endpoint", "hashkv"], { code: 0 });
    });

    it("endpoint hashkv after writes", async () => {
      await d.same(["put", "h1", "v1"], { code: 0 });
      await d.same(["put", "h2", "v2"], { code: 0 });
      await d.same(["del", "h1"], { code: 0 });
      for (const f of FORMATS) await d.same(["endpoint", "hashkv", "-w", f], { code: 0 });
      await d.same(["endpoint", "hashkv", "--cluster"], { code: 0 });
      await d.same(["endpoint", "hashkv", "-w", "table"], { code: 0 });
    });

    it("put in every output format, with --prev-kv", async () => {
      await d.same(["put", "foo", "bar"], { code: 0 });
      for (const f of FORMATS) await d.same(["put", "foo", `bar-${f}`, "--prev-kv", "-w", f], { code: 0 });
      await d.same(["put", "foo", "bar-pb", "--prev-kv", "-w", "protobuf"], { code: 0, protobuf: PROTOBUF["put"] });
      await d.same(["put", "foo", "x", "-w", "table"]);
      await d.same(["put", "from-stdin"], { stdin: "line one\nline two\n", code: 0 });
      await d.same(["put", "foo", "--ignore-value", "-w", "json"]);
      await d.same(["put", "never-set", "--ignore-value"]);
      await d.same(["put", "k", "v", "--lease", "1234"]);
      await d.same(["put", "", "v"]);
      await d.same(["put"]);
    });

    it("get: ranges, prefixes, sorting, limits, revisions, every format", async () => {
      for (const [k, val] of [["a", "1"], ["b", "2"], ["c", ""], ["ab", "3"], ["b", "22"]] as const) await d.same(["put", k, val], { code: 0 });
      for (const f of FORMATS) {
        await d.same(["get", "a", "-w", f], { code: 0 });
        await d.same(["get", "--prefix", "", "-w", f], { code: 0 });
        await d.same(["get", "nothing-here", "-w", f], { code: 0 });
      }
      await d.same(["get", "--prefix", "a", "-w", "protobuf"], { code: 0, protobuf: PROTOBUF["get"] });
      await d.same(["get", "a", "-w", "table"]);
      await d.same(["get", "a", "c"], { code: 0 });
      await d.same(["get", "a", "--prefix", "--keys-only"], { code: 0 });
      if (v.name === "3.6") await d.same(["get", "a", "--prefix", "--count-only", "-w", "fields"], { code: 0 });
      await d.same(["get", "b", "--from-key", "--limit", "2", "-w", "json"], { code: 0 });
      await d.same(["get", "", "--from-key", "--print-value-only"], { code: 0 });
      await d.same(["get", "--prefix", "", "--sort-by", "MODIFY", "--order", "DESCEND"], { code: 0 });
      await d.same(["get", "--prefix", "", "--sort-by=value", "--order=ascend", "--limit=3", "-w", "json"], { code: 0 });
      await d.same(["get", "--prefix", "", "--sort-by", "CREATE"], { code: 0 });
      await d.same(["get", "--prefix", "", "--sort-by", "VERSION", "--order", "DESCEND", "-w", "fields"], { code: 0 });
      await d.same(["get", "b", "--rev", "3", "-w", "json"], { code: 0 });
      await d.same(["get", "b", "--consistency", "s"], { code: 0 });
      await d.same(["--hex", "get", "--prefix", "a"], { code: 0 });
      await d.same(["get", "a", "--rev", "100000"]);
      await d.same(["get", ""]);
    });

    it("del: single, range, prefix, from-key, --prev-kv, every format", async () => {
      for (const k of ["d1", "d2", "d3", "d4", "e1", "e2", "z1"]) await d.same(["put", k, `v-${k}`], { code: 0 });
      await d.same(["del", "d1"], { code: 0 });
      await d.same(["del", "d1"], { code: 0 });
      await d.same(["del", "d2", "d4", "--prev-kv"], { code: 0 });
      await d.same(["del", "e", "--prefix", "--prev-kv", "-w", "json"], { code: 0 });
      await d.same(["put", "e3", "x"], { code: 0 });
      await d.same(["del", "e3", "-w", "fields"], { code: 0 });
      await d.same(["put", "e4", "x"], { code: 0 });
      await d.same(["del", "e4", "-w", "protobuf"], { code: 0, protobuf: PROTOBUF["del"] });
      await d.same(["del", "z", "--from-key", "--prev-kv"], { code: 0 });
      await d.same(["del"]);
    });

    it("txn: from stdin and interactive, success and failure branches", async () => {
      await d.same(["put", "t1", "1"], { code: 0 });
      const body = 'value("t1") = "1"\n\nput t1 2\nget t1\n\nput t1 failed\n\n';
      await d.same(["txn"], { stdin: body, code: 0 });
      await d.same(["txn"], { stdin: body, code: 0 });
      await d.same(["txn", "-w", "json"], { stdin: 'mod("t1") > "0"\nversion("t1") = "2"\n\ndel t1 --prev-kv\n\nget t1\n\n' , code: 0 });
      await d.same(["txn", "-w", "fields"], { stdin: 'create("t1") = "0"\n\nput t2 x\n\n\n' , code: 0 });
      await d.same(["txn", "-w", "protobuf"], { stdin: 'create("t2") > "0"\n\nget t --prefix\n\n\n', code: 0, protobuf: PROTOBUF["txn"] });
      await d.same(["txn", "-i"], { stdin: 'value("t2") = "x"\n\nput t3 y\n\nput t3 n\n\n', code: 0 });
      await d.same(["txn"], { stdin: 'bogus compare\n\n\n\n' });
      await d.same(["get", "t", "--prefix", "-w", "json"], { code: 0 });
    });

    it("watch: history with --rev, --prefix, --prev-kv, and live events", async () => {
      const rev0 = await d.same(["put", "w/a", "1"], { code: 0 });
      assert.equal(rev0.judge.code, 0);
      await d.same(["put", "w/b", "2"], { code: 0 });
      await d.same(["put", "w/a", "3"], { code: 0 });
      await d.same(["del", "w/b"], { code: 0 });
      const start = JSON.parse((await d.same(["get", "w/a", "-w", "json"], { code: 0 })).judge.stdout.toString()) as { kvs: { create_revision: number }[] };
      const first = start.kvs[0]?.create_revision;
      assert.ok(first !== undefined);
      for (const args of [
        ["watch", "w/", "--prefix", "--rev", String(first)],
        ["watch", "w/", "--prefix", "--rev", String(first), "--prev-kv"],
        ["watch", "w/a", "--rev", String(first), "-w", "json"],
        ["watch", "w/", "--prefix", "--rev", String(first), "--prev-kv", "-w", "fields"],
      ]) {
        const both = d.startBoth(args);
        // The last event of the history is the DELETE of w/b; both must print it.
        const marker = args.includes("w/a") ? (args.includes("json") ? '"value":"Mw=="' : "3") : "DELETE";
        await waitFor(() => both.judge.stdout().includes(marker) && both.ours.stdout().includes(marker), 15_000, `${args.join(" ")}: history`);
        const [a, b] = await Promise.all([both.judge.stop(), both.ours.stop()]);
        assert.equal(d.text("ours", b.stdout), d.text("judge", a.stdout), `output of etcdctl ${args.join(" ")}`);
      }
      // Live: watch from the next revision (so the watcher's start-up time does not matter), then write.
      const now = JSON.parse((await d.same(["get", "live-probe", "-w", "json"], { code: 0 })).judge.stdout.toString()) as { header: { revision: number } };
      const live = d.startBoth(["watch", "live", "--prefix", "--prev-kv", "--rev", String(now.header.revision + 1)]);
      await d.same(["put", "live/1", "a"], { code: 0 });
      await d.same(["put", "live/1", "b"], { code: 0 });
      await d.same(["del", "live/1"], { code: 0 });
      await waitFor(() => live.judge.stdout().includes("DELETE") && live.ours.stdout().includes("DELETE"), 15_000, "live watch DELETE");
      const [la, lb] = await Promise.all([live.judge.stop(), live.ours.stop()]);
      assert.equal(d.text("ours", lb.stdout), d.text("judge", la.stdout), "live watch output");
      if (v.name === "3.6") {
        // An idle watch with --progress-notify prints the server's periodic progress notifications.
        const idle = d.startBoth(["watch", "idle-key", "--progress-notify"]);
        await waitFor(() => idle.judge.stdout().includes("progress notify") && idle.ours.stdout().includes("progress notify"), 15_000, "progress notification");
        const [ia, ib] = await Promise.all([idle.judge.stop(), idle.ours.stop()]);
        const firstLine = (t: string): string => t.split("\n")[0] ?? "";
        assert.equal(firstLine(d.text("ours", ib.stdout)), firstLine(d.text("judge", ia.stdout)), "first progress notification");
      }
    });

    it("lease: grant, list, timetolive, keep-alive --once, revoke", async () => {
      await d.same(["lease", "grant", "100"], { code: 0 });
      await d.same(["lease", "grant", "200", "-w", "json"], { code: 0 });
      // One key per lease: etcd lists a lease's keys in Go map order (unspecified).
      await d.same(["put", "leased", "v", "--lease", "{lease0}"], { code: 0 });
      await d.same(["put", "leased2", "v", "--lease", "{lease1}"], { code: 0 });
      await d.same(["lease", "list"], { code: 0 });
      await d.same(["lease", "list", "-w", "json"], { code: 0 });
      for (const f of FORMATS) await d.same(["lease", "timetolive", "{lease0}", "--keys", "-w", f], { code: 0, normalise: ["ttl"] });
      await d.same(["lease", "timetolive", "{lease1}", "--keys"], { code: 0, normalise: ["ttl"] });
      await d.same(["lease", "keep-alive", "--once", "{lease0}"], { code: 0 });
      await d.same(["lease", "keep-alive", "--once", "{lease1}", "-w", "json"], { code: 0 });
      await d.same(["lease", "revoke", "{lease0}"], { code: 0 });
      await d.same(["get", "leased", "--prefix"], { code: 0 });
      await d.same(["lease", "timetolive", "{lease0}"], { code: 0 });
      await d.same(["lease", "revoke", "{lease0}"]);
      await d.same(["lease", "keep-alive", "--once", "{lease0}"]);
      await d.same(["lease", "revoke", "{lease1}", "-w", "json"], { code: 0 });
      await d.same(["lease", "grant", "0"]);
      await d.same(["lease", "list"], { code: 0 });
    });

    it("lease keep-alive (streaming) until the lease is revoked", async () => {
      await d.same(["lease", "grant", "6"], { code: 0 });
      const ka = d.startBoth(["lease", "keep-alive", "{leaseLast}"]);
      await waitFor(() => ka.judge.stdout().includes("keepalived") && ka.ours.stdout().includes("keepalived"), 15_000, "first keepalive");
      // Revoking ends the stream: etcdctl prints that the lease expired or was revoked and exits.
      await d.same(["lease", "revoke", "{leaseLast}"], { code: 0 });
      const [a, b] = await Promise.all([ka.judge.done, ka.ours.done]);
      const firstAndLast = (t: string): string => { const l = t.trimEnd().split("\n"); return `${l[0]}\n...\n${l[l.length - 1]}`; };
      assert.equal(firstAndLast(d.text("ours", b.stdout)), firstAndLast(d.text("judge", a.stdout)), "keep-alive output (first and last line: the count of renewals in between depends on time)");
      assert.equal(b.code, a.code, `keep-alive exit code (ours' stderr: ${b.stderr})`);
    });

    it("lease expiry deletes attached keys", async () => {
      await d.same(["lease", "grant", "1"], { code: 0 });
      await d.same(["put", "short", "lived", "--lease", "{leaseLast}"], { code: 0 });
      await waitFor(async () => {
        const r = await d.both(["get", "short", "-w", "json"]);
        return keyCount(r.judge) === 0 && keyCount(r.ours) === 0;
      }, 20_000, "short-lived key to expire on both");
      await d.same(["get", "short", "-w", "json"], { code: 0 });
      await d.same(["lease", "timetolive", "{leaseLast}"], { code: 0 });
    });

    it("lock: command under the lock, and contention between two holders", async () => {
      await d.same(["lock", "mylock", "--", "sh", "-c", 'echo "key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV"'], { code: 0, normalise: ["session"] });
      const holder = d.startBoth(["lock", "L"]);
      await waitFor(() => holder.judge.stdout().includes("L/") && holder.ours.stdout().includes("L/"), 15_000, "first lock holder");
      const waiter = d.startBoth(["lock", "L", "--", "sh", "-c", 'echo "waiter got $ETCD_LOCK_KEY rev $ETCD_LOCK_REV"']);
      // The waiter's key appears (it queues) while the holder keeps the lock.
      await waitFor(async () => {
        const r = await d.both(["get", "L/", "--prefix", "-w", "json"]);
        return keyCount(r.judge) === 2 && keyCount(r.ours) === 2;
      }, 15_000, "waiter queued");
      assert.equal(waiter.judge.stdout(), "", "etcd: the waiter must not run before the holder releases");
      assert.equal(waiter.ours.stdout(), "", "ours: the waiter must not run before the holder releases");
      const [ha, hb] = await Promise.all([holder.judge.stop(), holder.ours.stop()]);
      assert.equal(d.text("ours", hb.stdout, { normalise: ["session"] }), d.text("judge", ha.stdout, { normalise: ["session"] }), "holder output");
      const [wa, wb] = await Promise.all([waiter.judge.done, waiter.ours.done]);
      assert.equal(wa.code, 0, `etcd waiter: ${wa.stderr}`);
      assert.equal(d.text("ours", wb.stdout, { normalise: ["session"] }), d.text("judge", wa.stdout, { normalise: ["session"] }), "waiter output");
      assert.equal(wb.code, wa.code, `waiter exit code (ours stderr: ${wb.stderr})`);
      await d.same(["get", "L/", "--prefix", "--keys-only"], { code: 0 });
    });

    it("elect: leader, observer, and a second candidate taking over", async () => {
      const leader = d.startBoth(["elect", "E", "p1"]);
      await waitFor(() => leader.judge.stdout().includes("p1") && leader.ours.stdout().includes("p1"), 15_000, "first leader");
      const observer = d.startBoth(["elect", "-l", "E"]);
      await waitFor(() => observer.judge.stdout().includes("p1") && observer.ours.stdout().includes("p1"), 15_000, "observer sees p1");
      const second = d.startBoth(["elect", "E", "p2"]);
      await waitFor(async () => {
        const r = await d.both(["get", "E/", "--prefix", "-w", "json"]);
        return keyCount(r.judge) === 2 && keyCount(r.ours) === 2;
      }, 15_000, "second candidate queued");
      const [la, lb] = await Promise.all([leader.judge.stop(), leader.ours.stop()]);
      assert.equal(d.text("ours", lb.stdout, { normalise: ["session"] }), d.text("judge", la.stdout, { normalise: ["session"] }), "first leader output");
      await waitFor(() => second.judge.stdout().includes("p2") && second.ours.stdout().includes("p2"), 15_000, "second leader");
      await waitFor(() => observer.judge.stdout().includes("p2") && observer.ours.stdout().includes("p2"), 15_000, "observer sees p2");
      const [sa, sb, oa, ob] = await Promise.all([second.judge.stop(), second.ours.stop(), observer.judge.stop(), observer.ours.stop()]);
      assert.equal(d.text("ours", sb.stdout, { normalise: ["session"] }), d.text("judge", sa.stdout, { normalise: ["session"] }), "second leader output");
      assert.equal(d.text("ours", ob.stdout, { normalise: ["session"] }), d.text("judge", oa.stdout, { normalise: ["session"] }), "observer output");
    });

    it("compaction, defrag, alarm list", async () => {
      await d.same(["put", "c/1", "a"], { code: 0 });
      await d.same(["put", "c/1", "b"], { code: 0 });
      const r = await d.same(["get", "c/1", "-w", "json"], { code: 0 });
      const rev = (JSON.parse(r.judge.stdout.toString()) as { header: { revision: number } }).header.revision;
      await d.same(["compaction", String(rev - 1)], { code: 0 });
      await d.same(["compaction", String(rev - 1)]);
      await d.same(["get", "c/1", "--rev", String(rev - 2)]);
      await d.same(["get", "c/1", "--rev", String(rev - 1)], { code: 0 });
      await d.same(["compaction", "--physical", String(rev)], { code: 0 });
      await d.same(["compaction", String(rev + 1000)]);
      await d.same(["defrag"], { code: 0, normalise: ["took"] });
      await d.same(["alarm", "list"], { code: 0 });
      await d.same(["alarm", "list", "-w", "json"], { code: 0 });
      await d.same(["alarm", "disarm"], { code: 0 });
      await d.same(["defrag", "--cluster"], { code: 0, normalise: ["took"] });
    });

    it("endpoint status in every format", async () => {
      for (const f of [...FORMATS, "table"]) await d.same(["endpoint", "status", "-w", f], { code: 0, normalise: ["dbsize", "version"] });
      await d.same(["endpoint", "status", "--cluster"], { code: 0, normalise: ["dbsize", "version"] });
    });

    it("endpoint health in every format", async () => {
      for (const f of [...FORMATS, "table"]) await d.same(["endpoint", "health", "-w", f], { code: 0, normalise: ["took"] });
      await d.same(["endpoint", "health", "--cluster"], { code: 0, normalise: ["took"] });
    });

    it("member list in every format", async () => {
      for (const f of [...FORMATS, "table"]) await d.same(["member", "list", "-w", f], { code: 0 });
    });

    it("snapshot save", async () => {
      // etcdctl refuses a snapshot from several endpoints; one is picked, as its help says.
      await d.same(["snapshot", "save", "refused.db"]);
      await d.same(["snapshot", "save", "snap.db"], { code: 0, normalise: ["dbsize"], only: [0] });
      if (v.name === "3.4") {
        // etcdctl 3.4 can still read a snapshot file offline (3.6 moved this to etcdutl).
        // KNOWN DIFFERENCE (README, "Known differences"): our snapshot is our own
        // record format, not a bbolt file, so the offline readers refuse it. The
        // step checks exactly that, so the day the format changes this fails and
        // goes back to comparing outputs.
        const [judge, ours] = await Promise.all([
          d.runOn("judge", ["snapshot", "status", "snap.db", "-w", "json"]),
          d.runOn("ours", ["snapshot", "status", "snap.db", "-w", "json"]),
        ]);
        assert.equal(judge.code, 0, judge.stderr);
        assert.match(judge.stdout.toString(), /"totalKey":\d+/);
        assert.equal(ours.code, 1);
        assert.equal(ours.stderr.trim(), "Error: invalid database");
      }
    });
  });
}
