// Our CLI against etcdctl 3.4: the same commands on two identical servers in
// lockstep must print the same stdout and stderr and exit with the same code.
// See testing.ts for the servers (ETCDTS_CTL_SERVER) and the normalisations.

import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { Pair, runCli, startCli, toolsAvailable, waitFor } from "./testing.js";
import type { CliResult, RunningCli, StepOpts, StepResult } from "./testing.js";

const available = toolsAvailable();

interface SameOpts extends StepOpts {
  /** The exit code both must have (checked on etcdctl too, to keep the test honest). */
  readonly code?: number;
}

/** Runs args on both sides and asserts identical (normalised) results. */
async function same(p: Pair, args: string[], opts: SameOpts = {}): Promise<StepResult> {
  const r = await p.run(args, opts);
  const what = `\`${args.join(" ")}\``;
  assert.equal(r.b.stdout, r.a.stdout, `stdout of ${what}`);
  if (opts.compareStderr !== false) assert.equal(r.b.stderr, r.a.stderr, `stderr of ${what}`);
  assert.equal(r.ours.code, r.etcdctl.code, `exit code of ${what} (etcdctl stderr: ${r.etcdctl.stderr})`);
  if (opts.code !== undefined) assert.equal(r.etcdctl.code, opts.code, `etcdctl's exit code of ${what}`);
  return r;
}

/** Both sides of a long-running command (watch, keep-alive). */
function startBoth(p: Pair, args: string[], opts: StepOpts = {}): { a: RunningCli; b: RunningCli } {
  return {
    a: startCli("etcdctl", p.a.server.endpoint, p.expand(p.a, args), { cwd: p.a.cwd, ...opts }),
    b: startCli("ours", p.b.server.endpoint, p.expand(p.b, args), { cwd: p.b.cwd, ...opts }),
  };
}

/** Waits until etcdctl's output contains marker and ours has caught up, then stops both and compares. */
async function settleAndCompare(p: Pair, both: { a: RunningCli; b: RunningCli }, marker: string | Buffer, what: string): Promise<string> {
  await waitFor(() => both.a.stdout().includes(marker), 10_000, `etcdctl ${what} output`);
  await waitFor(() => both.b.stdout().length >= both.a.stdout().length, 10_000, `our ${what} output`).catch(() => {});
  await new Promise((r) => setTimeout(r, 200));
  const [ra, rb] = await Promise.all([both.a.stop(), both.b.stop()]);
  const a = p.normalise(p.a, ra.stdout.toString("latin1"), {});
  const b = p.normalise(p.b, rb.stdout.toString("latin1"), {});
  assert.equal(b, a, `output of ${what}`);
  return a;
}

const FORMATS = ["simple", "json", "fields", "protobuf"] as const;

/** Adds leases granted without a printed ID to each side's list (same order on both sides). */
async function captureUnlistedLeases(p: Pair): Promise<void> {
  for (const side of [p.a, p.b]) {
    const r = await runCli("etcdctl", side.server.endpoint, ["lease", "list"]);
    for (const id of r.stdout.toString().split("\n").slice(1)) if (id && !side.leases.includes(id)) side.leases.push(id);
  }
}

describe("ctl vs etcdctl: key-value commands", { skip: !available }, () => {
  let p: Pair;
  before(async () => { p = await Pair.start(); });
  after(async () => { await p?.stop(); });

  it("put in every output format, with --prev-kv", async () => {
    await same(p, ["put", "foo", "bar"], { code: 0 });
    for (const f of FORMATS) await same(p, ["put", "foo", `bar-${f}`, "--prev-kv", "-w", f], { code: 0 });
    await same(p, ["put", "foo", "x", "-w", "table"], { code: 4 });
    await same(p, ["-w", "xml", "put", "foo", "y"], { code: 4 });
  });

  it("put: value from stdin, --ignore-value, --ignore-lease, '--', argument errors", async () => {
    await same(p, ["put", "from-stdin"], { stdin: "line one\nline two\n", code: 0 });
    await same(p, ["get", "from-stdin", "-w", "json"], { code: 0 });
    await same(p, ["put", "empty-stdin"], { stdin: "", code: 128 });
    await same(p, ["put", "foo", "--ignore-value", "-w", "json"], { code: 0 });
    await same(p, ["put", "never-set", "--ignore-value"], { code: 1 });
    await same(p, ["put", "foo", "v", "--ignore-value"], { code: 128 });
    await same(p, ["put", "foo", "v2", "--ignore-lease"], { code: 0 });
    await same(p, ["put", "--", "dash", "-v"], { code: 0 });
    await same(p, ["put", "dash2", "--", "-v"], { code: 0 });
    await same(p, ["get", "dash"], { code: 0 });
    await same(p, ["put"], { code: 128 });
    await same(p, ["put", "a", "b", "extra-args-are-ignored"], { code: 0 });
    await same(p, ["put", "k", "v", "--lease", "zz"], { code: 128 });
    await same(p, ["put", "k", "v", "--lease", "1234"], { code: 1 });
    await same(p, ["put", "", "v"], { code: 1 });
  });

  it("get: ranges, prefixes, sorting, limits, revisions, formats", async () => {
    for (const [k, v] of [["a", "1"], ["b", "2"], ["c", ""], ["ab", "3"], ["b", "22"]]) await same(p, ["put", k as string, v as string]);
    for (const f of FORMATS) {
      await same(p, ["get", "a", "-w", f], { code: 0 });
      await same(p, ["get", "--prefix", "", "-w", f], { code: 0 });
      await same(p, ["get", "nothing-here", "-w", f], { code: 0 });
    }
    await same(p, ["get", "a", "c"], { code: 0 });
    await same(p, ["get", "a", "--prefix", "--keys-only"], { code: 0 });
    await same(p, ["get", "a", "--prefix", "--keys-only", "-w", "json"], { code: 0 });
    await same(p, ["get", "b", "--from-key", "--limit", "2", "-w", "json"], { code: 0 });
    await same(p, ["get", "", "--from-key", "--print-value-only"], { code: 0 });
    await same(p, ["get", "--prefix", "", "--sort-by", "MODIFY", "--order", "DESCEND"], { code: 0 });
    await same(p, ["get", "--prefix", "", "--sort-by=value", "--order=ascend", "--limit=3", "-w", "json"], { code: 0 });
    await same(p, ["get", "--prefix", "", "--sort-by", "CREATE"], { code: 0 });
    await same(p, ["get", "--prefix", "", "--sort-by", "VERSION", "--order", "DESCEND", "-w", "fields"], { code: 0 });
    await same(p, ["get", "--prefix", "", "--order", "DESCEND"], { code: 0 });
    await same(p, ["get", "b", "--rev", "3", "-w", "json"], { code: 0 });
    await same(p, ["get", "b", "--consistency", "s"], { code: 0 });
    await same(p, ["--hex", "get", "--prefix", "a"], { code: 0 });
    await same(p, ["get", "a", "--print-value-only", "-w", "json"], { code: 128 });
    await same(p, ["get", "a", "-w", "table"], { code: 4 });
  });

  it("get: argument and server errors", async () => {
    await same(p, ["get"], { code: 128 });
    await same(p, ["get", ""], { code: 1 });
    await same(p, ["get", "a", "--rev", "100000"], { code: 1 });
    await same(p, ["get", "a", "--sort-by", "bogus"], { code: 4 });
    await same(p, ["get", "a", "--order", "bogus"], { code: 4 });
    await same(p, ["get", "a", "--consistency", "x"], { code: 4 });
    await same(p, ["get", "a", "--prefix", "--from-key"], { code: 128 });
    await same(p, ["get", "a", "b", "--prefix"], { code: 128 });
  });

  it("keys and values that are not plain text", async () => {
    const key = 'k<>&"\\ é';
    const value = "v\u0001\t\n\u2028日本";
    await same(p, ["put", key, value], { code: 0 });
    for (const f of FORMATS) await same(p, ["get", key, "-w", f], { code: 0 });
    await same(p, ["--hex", "get", key], { code: 0 });
  });

  it("del: single keys, ranges, prefixes, --prev-kv, formats, errors", async () => {
    for (const k of ["d1", "d2", "d3", "e1"]) await same(p, ["put", k, `v-${k}`]);
    await same(p, ["del", "nothing"], { code: 0 });
    await same(p, ["del", "nothing", "-w", "json"], { code: 0 });
    await same(p, ["del", "d1", "--prev-kv"], { code: 0 });
    await same(p, ["del", "d2", "d4", "--prev-kv", "-w", "fields"], { code: 0 });
    await same(p, ["put", "d1", "again"]);
    await same(p, ["del", "d", "--prefix", "--prev-kv", "-w", "json"], { code: 0 });
    await same(p, ["del", "e", "--from-key", "-w", "protobuf"], { code: 0 });
    await same(p, ["del"], { code: 128 });
    await same(p, ["del", "a", "b", "c"], { code: 128 });
    await same(p, ["del", "a", "--prefix", "--from-key"], { code: 128 });
    await same(p, ["del", "a", "z", "--prefix"], { code: 128 });
  });

  it("txn: from stdin and interactive, every format", async () => {
    await same(p, ["put", "t1", "one"]);
    const txn = 'mod("t1") > "0"\nvalue("t1") = "one"\n\nput t2 "hello world"\nget t1\ndel t3 --prev-kv\n\nput t4 x\n\n';
    for (const f of FORMATS) await same(p, ["txn", "-w", f], { stdin: txn, code: 0 });
    await same(p, ["txn", "-i"], { stdin: txn, code: 0 });
    await same(p, ["txn"], { stdin: 'version("t1") = "1000"\ncreate("t1") != "0"\nc("t1") < "5"\n\nput x 1\n\nget t --prefix --keys-only\nput t5 "a\\tb \\"q\\""\n\n', code: 0 });
    await same(p, ["txn", "-w", "json"], { stdin: 'val("t1") != "x"\nver("t1") < "100"\nm("t1") > "1"\n\nget t1 --print-value-only\n\n\n', code: 0 });
    await same(p, ["txn"], { stdin: '\n\n\n', code: 0 });
    await same(p, ["txn"], { stdin: 'mod( "t1") > "0"\n\n\n\n', code: 0 });
  });

  it("txn: grammar errors", async () => {
    const cases: [string, number][] = [
      ["bogus\n", 3],
      ['mod("a") > "0"\n\nbogus x\n', 3],
      ['mod("a") > "0"\n', 3],
      ["", 3],
      ['version("a") = "x"\n\n\n', 3],
      ['foo("a") = "x"\n\n\n', 3],
      ['mod("a")>"0"\n\n\n\n', 3],
      ['mod("a") > 0\n\n\n\n', 3],
      ['mod("a" > "0"\n\n\n\n', 3],
      ["\nput k\n\n\n", 128],
      ["\nput k v --lease zz\n\n\n", 128],
      ["\nget\n\n\n", 3],
      ['c("a") = "0"\n\n\n', 3],
    ];
    for (const [stdin, code] of cases) await same(p, ["txn"], { stdin, code });
    await same(p, ["txn", "extra"], { code: 128 });
  });

  it("compaction", async () => {
    for (let i = 0; i < 5; i++) await same(p, ["put", "a", `c${i}`]);
    const rev = await p.revision();
    await same(p, ["compaction", String(rev - 2n)], { code: 0 });
    await same(p, ["compaction", String(rev - 2n)], { code: 1 });
    await same(p, ["compaction", "100000"], { code: 1 });
    await same(p, ["compaction", "--physical", String(rev - 1n), "-w", "json"], { code: 0 });
    await same(p, ["get", "a", "--rev", "2"], { code: 1 });
    await same(p, ["compaction"], { code: 128 });
    await same(p, ["compaction", "x"], { code: 1 });
    for (const f of FORMATS) await same(p, ["watch", "a", "--rev", "2", "-w", f], { code: 5 });
  });

  it("extensions beyond etcdctl 3.4: --count-only (3.5 semantics) and revision filters", async () => {
    const ours = (args: string[]): Promise<CliResult> => runCli("ours", p.b.server.endpoint, args);
    await same(p, ["put", "f1", "1"]);
    const rev = await p.revision();
    await same(p, ["put", "f2", "2"]);
    const counted = await ours(["get", "f", "--prefix", "--count-only", "-w", "fields"]);
    assert.equal(counted.code, 0);
    assert.match(counted.stdout.toString(), /"Count" : 2\n/);
    assert.doesNotMatch(counted.stdout.toString(), /"Key"/);
    const simple = await ours(["get", "f", "--prefix", "--count-only"]);
    assert.equal(simple.code, 128);
    assert.equal(simple.stderr, "Error: --count-only is only for `--write-out=fields`\n");
    const newer = await ours(["get", "f", "--prefix", "--min-mod-rev", String(rev + 1n)]);
    assert.equal(newer.stdout.toString(), "f2\n2\n");
    const older = await ours(["get", "f", "--prefix", "--max-create-rev", String(rev)]);
    assert.equal(older.stdout.toString(), "f1\n1\n");
  });
});

describe("ctl vs etcdctl: watch", { skip: !available }, () => {
  let p: Pair;
  before(async () => { p = await Pair.start(); });
  after(async () => { await p?.stop(); });

  it("streams events in every format (--prefix, --prev-kv, --rev)", async () => {
    const start = (await p.revision()) + 1n;
    const watchers = FORMATS.map((f) => startBoth(p, ["watch", "w", "--prefix", "--prev-kv", "--rev", String(start), "-w", f]));
    await same(p, ["put", "w1", "a"]);
    await same(p, ["put", "w1", "b"]);
    await same(p, ["del", "w1"]);
    await same(p, ["put", "w2", "x y"]);
    for (const [i, w] of watchers.entries()) {
      await settleAndCompare(p, w, FORMATS[i] === "json" ? "eCB5" : "x y", `watch -w ${FORMATS[i]}`);
    }
  });

  it("a range watch, and a command run per event", async () => {
    const start = (await p.revision()) + 1n;
    const range = startBoth(p, ["watch", "r1", "r3", "--rev", String(start)]);
    const exec = startBoth(p, ["watch", "r2", "--rev", String(start), "--", "sh", "-c",
      'echo "$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"']);
    await same(p, ["put", "r1", "one"]);
    await same(p, ["put", "r2", "two"]);
    await same(p, ["put", "r3", "three"]);
    await same(p, ["del", "r2"]);
    await settleAndCompare(p, range, "two", "range watch");
    await settleAndCompare(p, exec, '"DELETE"', "watch with exec");
  });

  it("interactive: watch lines, progress, invalid lines", async () => {
    const start = (await p.revision()) + 1n;
    await same(p, ["put", "i1", "v1"]);
    const both = startBoth(p, ["watch", "-i"], { keepStdinOpen: true });
    const send = (line: string): void => { both.a.proc.stdin?.write(line); both.b.proc.stdin?.write(line); };
    send(`watch i1 --rev ${start}\nbogus\nwatch\n\nwatch a b --prefix\n`);
    await waitFor(() => both.a.stdout().includes("v1") && both.b.stdout().includes("v1"), 10_000, "interactive watch events");
    send("progress\n");
    await waitFor(() => both.a.stdout().includes("progress notify") && both.b.stdout().includes("progress notify"), 10_000, "progress");
    both.a.proc.stdin?.end();
    both.b.proc.stdin?.end();
    const [ra, rb] = await Promise.all([both.a.done, both.b.done]);
    assert.equal(rb.stdout.toString(), ra.stdout.toString());
    assert.equal(rb.stderr, ra.stderr.split("\n").filter((l) => !l.startsWith('{"level"')).join("\n"));
    assert.equal(rb.code, ra.code);
  });

  it("argument errors", async () => {
    await same(p, ["watch"], { code: 128 });
    await same(p, ["watch", "a", "b", "--prefix"], { code: 128 });
    await same(p, ["watch", "a", "--"], { code: 128 });
    await same(p, ["watch", "a"], { env: { ETCDCTL_WATCH_RANGE_END: "z" }, code: 128 });
    await same(p, ["watch", "a"], { env: { ETCDCTL_WATCH_KEY: "k" }, code: 128 });
    await same(p, ["watch", "-i"], { stdin: "", code: 3 });
    await same(p, ["watch", "-i"], { stdin: "watch --bogus x\n", code: 128 });
    await same(p, ["put", "wt", "1"]);
    await same(p, ["watch", "wt", "--rev", "1", "-w", "table"], { code: 4 });
  });
});

describe("ctl vs etcdctl: leases", { skip: !available }, () => {
  let p: Pair;
  before(async () => { p = await Pair.start(); });
  after(async () => { await p?.stop(); });

  it("grant, attach, timetolive, list, keep-alive --once, revoke", async () => {
    await same(p, ["lease", "grant", "100"], { code: 0 }); // lease0
    for (const f of ["json", "fields"]) await same(p, ["lease", "grant", "100", "-w", f], { code: 0 }); // lease1, lease2
    await same(p, ["lease", "grant", "100", "-w", "protobuf"], { code: 0 });
    await captureUnlistedLeases(p); // lease3: protobuf output carries no ID
    await same(p, ["put", "lk1", "v", "--lease", "{lease0}"], { code: 0 });
    await same(p, ["get", "lk1", "-w", "json"], { code: 0 });
    for (const f of ["simple", "json", "fields"]) {
      await same(p, ["lease", "timetolive", "{lease0}", "--keys", "-w", f], { code: 0, normalise: ["ttl"] });
    }
    await same(p, ["lease", "timetolive", "{lease0}"], { code: 0, normalise: ["ttl"] });
    await same(p, ["lease", "timetolive", "1234"], { code: 0 });
    await same(p, ["lease", "timetolive", "1234", "-w", "json"], { code: 0 });
    await same(p, ["lease", "timetolive", "{lease0}", "-w", "table"], { code: 4 });
    await same(p, ["lease", "keep-alive", "--once", "{lease0}"], { code: 0 });
    await same(p, ["lease", "keep-alive", "--once", "{lease1}", "-w", "json"], { code: 0 });
    await same(p, ["lease", "keep-alive", "--once", "{lease2}", "-w", "fields"], { code: 0 });
    await same(p, ["lease", "keep-alive", "--once", "1234"], { code: 2 });
    await same(p, ["lease", "revoke", "{lease1}"], { code: 0 });
    await same(p, ["lease", "revoke", "{lease2}", "-w", "json"], { code: 0 });
    await same(p, ["lease", "revoke", "{lease2}"], { code: 1 });
    await same(p, ["put", "lk2", "v", "--lease", "{lease1}"], { code: 1 });
    await same(p, ["put", "lk1", "v2", "--ignore-lease", "-w", "json"], { code: 0 });
  });

  it("list shows the live leases", async () => {
    await same(p, ["lease", "grant", "50"]);
    const r = await same(p, ["lease", "list"], { code: 0 });
    assert.match(r.a.stdout, /^found \d+ leases\n/);
    await same(p, ["lease", "list", "-w", "fields"], { code: 0 });
  });

  it("keep-alive until the lease is revoked", async () => {
    await same(p, ["lease", "grant", "3"]);
    const idx = p.a.leases.length - 1;
    const both = startBoth(p, ["lease", "keep-alive", `{lease${idx}}`]);
    await waitFor(() => both.a.stdout().includes("keepalived") && both.b.stdout().includes("keepalived"), 10_000, "first keep-alive");
    await same(p, ["lease", "revoke", `{lease${idx}}`], { code: 0 });
    const [ra, rb] = await Promise.all([both.a.done, both.b.done]);
    for (const [side, r] of [[p.a, ra], [p.b, rb]] as const) {
      const out = p.normalise(side, r.stdout.toString(), {});
      assert.match(out, new RegExp(`^(lease <lease${idx}> keepalived with TTL\\(3\\)\\n)+lease <lease${idx}> expired or revoked\\.\\n$`), `${side.cli}: ${out}`);
      assert.equal(r.code, 0);
    }
  });

  it("argument and server errors", async () => {
    await same(p, ["lease", "grant"], { code: 128 });
    await same(p, ["lease", "grant", "x"], { code: 128 });
    await same(p, ["lease", "grant", "99999999999"], { code: 1 });
    await same(p, ["lease", "revoke"], { code: 128 });
    await same(p, ["lease", "timetolive"], { code: 128 });
    await same(p, ["lease", "timetolive", "zz"], { code: 128 });
    await same(p, ["lease", "keep-alive"], { code: 128 });
    await same(p, ["lease", "keep-alive", "--once", "zz"], { code: 128 });
    await same(p, ["lease", "keep-alive", "1234"], { code: 0 });
    await same(p, ["lease", "list", "-w", "table"], { code: 4 });
  });
});

describe("ctl vs etcdctl: cluster and maintenance", { skip: !available }, () => {
  let p: Pair;
  before(async () => { p = await Pair.start(); });
  after(async () => { await p?.stop(); });

  it("member list in every format", async () => {
    for (const f of [...FORMATS, "table"]) await same(p, ["member", "list", "-w", f], { code: 0 });
  });

  it("endpoint status and health", async () => {
    // Both sides talk to the same real etcd, whose bbolt file may grow between the two calls.
    for (const f of ["simple", "json", "fields", "table"]) await same(p, ["endpoint", "status", "-w", f], { code: 0, normalise: ["dbsize"] });
    await same(p, ["endpoint", "status", "--cluster", "-w", "table"], { code: 0, normalise: ["dbsize"] });
    await same(p, ["endpoint", "status", "-w", "protobuf"], { code: 4 });
    for (const f of ["simple", "json", "fields", "table"]) {
      await same(p, ["endpoint", "health", "-w", f], { code: 0, normalise: ["took"] });
    }
    await same(p, ["endpoint", "health", "--cluster"], { code: 0, normalise: ["took"] });
    await same(p, ["endpoint", "health", "-w", "protobuf"], { code: 4 });
  });

  it("defrag, alarms, version", async () => {
    await same(p, ["defrag"], { code: 0 });
    await same(p, ["defrag", "--cluster"], { code: 0 });
    await same(p, ["alarm", "list"], { code: 0 });
    for (const f of ["simple", "json", "protobuf"]) await same(p, ["alarm", "list", "-w", f], { code: 0 });
    await same(p, ["alarm", "disarm", "-w", "json"], { code: 0 });
    await same(p, ["alarm", "list", "x"], { code: 128 });
    await same(p, ["alarm", "disarm", "x"], { code: 128 });
    await same(p, ["version"], { code: 0 });
  });

  it("snapshot save", async () => {
    await same(p, ["put", "snap", "shot"]);
    await same(p, ["snapshot", "save", "snap.db"], { code: 0 });
    for (const side of [p.a, p.b]) {
      const file = join(side.cwd, "snap.db");
      assert.ok(existsSync(file), `${side.cli} wrote ${file}`);
      assert.ok(statSync(file).size > 0);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.ok(!existsSync(file + ".part"));
    }
    const status = await Promise.all([p.a, p.b].map((side) =>
      runCli("etcdctl", side.server.endpoint, ["snapshot", "status", join(side.cwd, "snap.db"), "-w", "json"])));
    const keys = status.map((r) => /"totalKey":(\d+)/.exec(r.stdout.toString())?.[1]);
    assert.ok(keys[0] !== undefined);
    assert.equal(keys[1], keys[0], "both snapshots hold the same number of keys");
    await same(p, ["snapshot", "save"], { code: 128 });
    await same(p, ["snapshot", "save", "/nonexistent-dir/x.db"], { code: 5 });
    await same(p, ["--endpoints", "{ep}", "snapshot", "save", "two.db"], { code: 5 });
  });

  it("help, unknown commands and flags", async () => {
    for (const args of [["put", "--help"], ["lease"], ["lease", "--help"], ["lease", "bogus"], ["endpoint", "status", "--help"],
      ["help", "del"], ["snapshot", "save", "-h"], ["alarm"]]) {
      await same(p, args, { code: 0 });
    }
    await same(p, ["bogus"], { code: 1 });
    await same(p, ["put", "--bogus"], { code: 1 });
    await same(p, ["put", "a", "-w"], { code: 1 });
    await same(p, ["lease", "grant", "-5"], { code: 1 });
    await same(p, ["--dial-timeout=x", "put", "a", "b"], { code: 1 });
  });

  it("environment variables", async () => {
    await same(p, ["get", "snap"], { env: { ETCDCTL_WRITE_OUT: "json", ETCDCTL_HEX: "true" }, code: 0 });
    await same(p, ["get", "snap"], { env: { ETCDCTL_COMMAND_TIMEOUT: "not-a-duration" }, code: 0 });
    await same(p, ["get", "snap"], { env: { ETCDCTL_FOO: "1" }, code: 0 });
    await same(p, ["get", "snap"], { env: { ETCDCTL_ENDPOINTS: "127.0.0.1:1" }, code: 1 });
  });
});

describe("ctl vs etcdctl: unreachable endpoints", { skip: !available }, () => {
  it("report context deadline exceeded after --command-timeout", async () => {
    const dead = "127.0.0.1:9"; // discard port: nothing listens there
    for (const args of [["get", "a"], ["put", "a", "b"], ["endpoint", "health"], ["endpoint", "status"], ["defrag"], ["member", "list"]]) {
      const full = ["--command-timeout", "1s", ...args];
      const [a, b] = await Promise.all([runCli("etcdctl", dead, full), runCli("ours", dead, full)]);
      const errA = a.stderr.split("\n").filter((l) => !l.startsWith('{"level"')).join("\n");
      assert.equal(b.stdout.toString(), a.stdout.toString(), `stdout of ${args.join(" ")}`);
      assert.equal(b.stderr.replace(/took = \S+/, ""), errA.replace(/took = \S+/, ""), `stderr of ${args.join(" ")}`);
      assert.equal(b.code, a.code, `exit code of ${args.join(" ")}`);
    }
  });
});

describe("ctl vs etcdctl: NOSPACE alarm", { skip: !available }, () => {
  let p: Pair;
  before(async () => { p = await Pair.start(["--quota-backend-bytes", "300000"]); });
  after(async () => { await p?.stop(); });

  it("alarm list/disarm and endpoint status show the alarm", async () => {
    const big = "x".repeat(50_000);
    for (let i = 0; i < 20; i++) {
      const r = await same(p, ["put", `big${i}`, big]);
      if (r.etcdctl.code !== 0) break;
    }
    for (const f of ["simple", "json", "protobuf"]) await same(p, ["alarm", "list", "-w", f], { code: 0 });
    for (const f of ["simple", "table", "json", "fields"]) await same(p, ["endpoint", "status", "-w", f], { code: 0, normalise: ["dbsize"] });
    await same(p, ["put", "more", "x"], { code: 1 });
    await same(p, ["alarm", "disarm"], { code: 0 });
  });
});

describe("ctl vs etcdctl: authentication", { skip: !available }, () => {
  let p: Pair;
  before(async () => {
    p = await Pair.start();
    for (const side of [p.a, p.b]) {
      for (const args of [["user", "add", "root:pw"], ["auth", "enable"]]) {
        const r = await runCli("etcdctl", side.server.endpoint, args);
        assert.equal(r.code, 0, r.stderr);
      }
    }
  });
  after(async () => { await p?.stop(); });

  it("--user and --password", async () => {
    await same(p, ["get", "a"], { code: 1 });
    await same(p, ["--user", "root:pw", "put", "a", "b"], { code: 0 });
    await same(p, ["--user", "root:pw", "get", "a"], { code: 0 });
    await same(p, ["--user", "root", "--password", "pw", "get", "a"], { code: 0 });
    await same(p, ["--user", "root:bad", "get", "a"], { code: 2 });
    await same(p, ["--user", "root:pw", "--password", "pw", "get", "a"], { code: 2 });
    await same(p, ["--password", "pw", "get", "a"], { code: 1 });
    await same(p, ["--user", "root:bad", "endpoint", "status"], { code: 2 });
  });
});
