// On demand, not part of `npm test`: a member catching up by snapshot, ours
// beside etcd 3.6. Each implementation in turn gets a fresh 3-member cluster
// (startCluster from cluster.ts: same flags for both, fsync on, plus a small
// --snapshot-count so the leader compacts its raft log), and then:
//
//   1. one follower is stopped with SIGKILL;
//   2. etcd's `benchmark put` writes N distinct keys (8-byte sequential keys,
//      256-byte values, 100 connections / 1000 clients) through the other two
//      members: N raft entries, far more than the leader keeps after a
//      snapshot (--snapshot-catchup-entries, 5000 by default in both), so the
//      stopped member can only catch up from a snapshot of the leader's
//      database;
//   3. the stopped member is started again with its command line, on its old
//      data dir, and timed from the spawn: seconds until its /health says
//      true, and seconds until it has caught up (its own revision, from
//      /v3/maintenance/status on that member, equals the leader's after the
//      load); then a serializable get of the last loaded key on that member
//      must return it. Its peak RSS (VmHWM: the new process's whole life, so
//      all of the catch-up) and CPU time, and the leader's peak RSS and CPU
//      over the same time (VmHWM reset before the restart), are read once it
//      has caught up.
//
// Whether a snapshot was really sent is read from the logs written after the
// restart: the leader's "sent database snapshot" and the member's "applied
// snapshot" for etcd; the leader's "sent snapshot" and the member's "restored
// the backend from a leader snapshot" for ours. A row without both says so in
// its note: it did not measure a snapshot catch-up. "applied at s" is the
// time of the member's (first) applied-snapshot line, from the same spawn: the
// catch-up before it is the process start, its own log replay and the
// transfer; after it, the entries the leader still had.
//
//   npm run build && node dist/test/bench/scale-snapshot.js [--keys 100000] [--snapshot-count 1000] [--impl etcd,ours] [--out DIR]
//
// Prints one row per implementation and a row of ours/etcd ratios (above 1:
// ours took longer or used more); with --out DIR also writes
// DIR/scale-snapshot.json.

import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { leaderIndex, post, startCluster, status, type Cluster, type Impl } from "./cluster.js";
import { parseBenchmarkOutput, pickReport } from "./parse.js";
import { TOOLS, argImpls, argNum, argValue, benchmarkKey, healthy, lastLine, run, table as commonTable, writeJson as commonWriteJson, type Col as CommonCol } from "./scale-common.js";
import { cpuSeconds, peakRssKb, resetPeakRss } from "./procstat.js";

interface Row {
  impl: Impl;
  keys: number;
  snapshotCount: number;
  loadS: number | null;
  loadKeysPerS: number | null;
  /** The leader's db size (maintenance status dbSize) after the load. */
  dbMb: number | null;
  healthS: number | null;
  caughtUpS: number | null;
  memberPeakMb: number | null;
  memberCpuS: number | null;
  leaderPeakMb: number | null;
  leaderCpuS: number | null;
  /** Log lines after the restart: snapshots the leader sent, and the member applied. */
  snapshotsSent: number | null;
  snapshotsApplied: number | null;
  /** Seconds from the spawn to the member's log line saying it applied the (first) snapshot. */
  appliedAtS: number | null;
  note: string;
}

const log = (msg: string): void => void process.stderr.write(`[scale-snapshot] ${msg}\n`);

// ------------------------------------------------------------- arguments

// ------------------------------------------------------------- tools



// ------------------------------------------------------------- member queries (JSON gateway)

/** A serializable get of one key on that member; true when it returns that key. */
async function getsKey(clientUrl: string, key: Buffer): Promise<boolean> {
  try {
    const body = (await post(clientUrl, "/v3/kv/range", { key: key.toString("base64"), serializable: true })) as { kvs?: Array<{ key?: string }> };
    return body.kvs?.[0]?.key === key.toString("base64");
  } catch {
    return false;
  }
}

/** The key `benchmark put --sequential-keys --key-size=8` writes for index i: Go's binary.PutVarint (zig-zag), zero-padded. */
// ------------------------------------------------------------- snapshot evidence in the logs

/** What each implementation logs when a leader sends a snapshot and when a member applies one. */
const SNAPSHOT_LINES: Record<Impl, { sent: RegExp; applied: RegExp }> = {
  etcd: { sent: /"msg":"sent database snapshot"/, applied: /"msg":"applied snapshot"/ },
  ours: { sent: /"msg":"sent snapshot"/, applied: /"msg":"restored the backend from a leader snapshot"/ },
};

const sizeOf = (file: string): number => (existsSync(file) ? statSync(file).size : 0);

/** The wall-clock time of a log line, in ms since the epoch: etcd's "ts" (ISO 8601) or pino's "time". */
function logTimeMs(line: string): number | null {
  const iso = /"ts":"([^"]+)"/.exec(line)?.[1];
  if (iso !== undefined) return Date.parse(iso);
  const ms = /"time":([0-9]+)/.exec(line)?.[1];
  return ms !== undefined ? Number(ms) : null;
}

/** The lines of `file` from byte `from` on that match `re`. */
function linesSince(file: string, from: number, re: RegExp): string[] {
  const text = readFileSync(file).subarray(from).toString("utf8");
  return text.split("\n").filter((l) => re.test(l));
}

// ------------------------------------------------------------- the steps

/** 2. Writes N distinct keys with etcd's benchmark tool through `endpoints`. */
async function load(endpoints: readonly string[], keys: number, row: Row): Promise<void> {
  const args = [
    "--endpoints", endpoints.join(","), "--conns", "100", "--clients", "1000", "--precise",
    "put", "--key-size=8", "--val-size=256", "--sequential-keys", `--key-space-size=${keys}`, `--total=${keys}`,
  ];
  const out = await run(TOOLS.benchmark, args, 1_800_000);
  if (out.code !== 0) throw new Error(`benchmark put exited ${out.code}: ${lastLine(out.stderr)}`);
  const r = pickReport(parseBenchmarkOutput(out.stdout), "");
  row.loadS = r.totalS;
  row.loadKeysPerS = r.rps;
  if (r.errors > 0) row.note += `load: ${r.errors} errors (${r.errorTexts[0] ?? ""}); `;
}

/** 3. Starts the stopped member again and times its catch-up to `revision`. */
async function catchUp(c: Cluster, index: number, leader: number, revision: bigint, key: Buffer, row: Row): Promise<number> {
  const l = c.members[leader]!;
  resetPeakRss(l.pid);
  const leaderCpu0 = cpuSeconds(l.pid);
  const m = await c.startMember(index);
  const t0 = performance.now();
  const spawnedAt = Date.now();
  const deadline = t0 + 900_000;
  let done = false;
  const seconds = () => (performance.now() - t0) / 1000;
  const poll = async (what: string, ok: () => Promise<boolean>): Promise<number> => {
    for (;;) {
      if (await ok()) return seconds();
      if (done) return NaN;
      if (!c.alive()) throw new Error(`a member exited while ${what}; log: ${m.logFile}`);
      if (performance.now() > deadline) throw new Error(`restarted member not ${what} after 900 s`);
      await sleep(50);
    }
  };
  const caughtUp = async () => {
    try {
      return (await status(m.clientUrl)).revision >= revision;
    } catch {
      return false;
    }
  };
  // Both are polled side by side; a failure of the health poll is seen when it is awaited.
  const health = poll("healthy", () => healthy(m.clientUrl)).then(
    (s) => ({ s }),
    (err: unknown) => ({ err: err as Error }),
  );
  try {
    row.caughtUpS = await poll("caught up", caughtUp);
    // Read at once: the member's VmHWM covers its whole life, the catch-up.
    row.memberPeakMb = peakRssKb(m.pid) / 1024;
    row.memberCpuS = cpuSeconds(m.pid);
    row.leaderPeakMb = peakRssKb(l.pid) / 1024;
    row.leaderCpuS = cpuSeconds(l.pid) - leaderCpu0;
    const h = await Promise.race([health, sleep(60_000, undefined, { ref: false }).then(() => undefined)]);
    if (h === undefined) row.note += "not healthy 60 s after catching up; ";
    else if ("err" in h) throw h.err;
    else row.healthS = h.s;
  } finally {
    done = true;
    await health;
  }
  if (!(await getsKey(m.clientUrl, key))) row.note += `caught up but a serializable get of ${key.toString("hex")} does not return it; `;
  return spawnedAt;
}

// ------------------------------------------------------------- one implementation

function emptyRow(impl: Impl, keys: number, snapshotCount: number): Row {
  return {
    impl, keys, snapshotCount, loadS: null, loadKeysPerS: null, dbMb: null, healthS: null, caughtUpS: null,
    memberPeakMb: null, memberCpuS: null, leaderPeakMb: null, leaderCpuS: null, snapshotsSent: null, snapshotsApplied: null, appliedAtS: null, note: "",
  };
}

async function runOnce(impl: Impl, keys: number, snapshotCount: number): Promise<Row> {
  const row = emptyRow(impl, keys, snapshotCount);
  const root = mkdtempSync(join(tmpdir(), "scale-snapshot-"));
  try {
    const started = await startCluster(impl, 3, root, TOOLS, 90_000, ["--snapshot-count", String(snapshotCount)]);
    if (started.kind !== "ok") {
      row.note = `not supported: ${started.reason}`;
      return row;
    }
    const c = started.cluster;
    const step = (s: string) => log(`${impl}: ${s}`);
    try {
      const leader = await leaderIndex(c.members);
      const stopped = leader === 0 ? 1 : 0;
      const others = c.members.filter((_, i) => i !== stopped);
      step(`leader ${c.members[leader]!.name}; kill -9 ${c.members[stopped]!.name}, then load ${keys} keys through the other two`);
      await c.stopMember(stopped, "SIGKILL");
      await load(others.map((m) => m.endpoint), keys, row);
      // Leadership may have moved during the load; the leader now is the one that must send the snapshot.
      const leaderNow = await leaderIndex(others);
      const li = c.members.indexOf(others[leaderNow]!);
      const st = await status(c.members[li]!.clientUrl);
      row.dbMb = Number(st.dbSize) / 2 ** 20;
      step(`loaded in ${row.loadS?.toFixed(1)} s, revision ${st.revision}; restarting ${c.members[stopped]!.name}`);
      const offsets = c.members.map((m) => sizeOf(m.logFile));
      const spawnedAt = await catchUp(c, stopped, li, st.revision, benchmarkKey(keys - 1), row);
      step(`healthy after ${row.healthS?.toFixed(2)} s, caught up after ${row.caughtUpS?.toFixed(2)} s`);
      const re = SNAPSHOT_LINES[impl];
      const sent = c.members.flatMap((m, i) => (i === stopped ? [] : linesSince(m.logFile, offsets[i]!, re.sent)));
      const applied = linesSince(c.members[stopped]!.logFile, offsets[stopped]!, re.applied);
      row.snapshotsSent = sent.length;
      row.snapshotsApplied = applied.length;
      const at = applied[0] === undefined ? null : logTimeMs(applied[0]);
      row.appliedAtS = at === null ? null : (at - spawnedAt) / 1000;
      for (const l of [...sent, ...applied]) step(`log: ${l.slice(0, 400)}`);
      if (sent.length === 0 || applied.length === 0) row.note += "NO SNAPSHOT seen in the logs: this is not a snapshot catch-up; ";
    } catch (err) {
      row.note += `failed: ${(err as Error).message}`;
    } finally {
      await c.dispose();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return row;
}

// ------------------------------------------------------------- output

type Col = CommonCol<Row>;

const COLS: Col[] = [
  ["load s", (r) => r.loadS, 1, true],
  ["keys/s", (r) => r.loadKeysPerS, 0, false],
  ["db MB", (r) => r.dbMb, 1, true],
  ["health s", (r) => r.healthS, 2, true],
  ["caught up s", (r) => r.caughtUpS, 2, true],
  ["member peak rss MB", (r) => r.memberPeakMb, 0, true],
  ["member cpu s", (r) => r.memberCpuS, 1, true],
  ["leader peak rss MB", (r) => r.leaderPeakMb, 0, true],
  ["leader cpu s", (r) => r.leaderCpuS, 1, true],
  ["snap sent", (r) => r.snapshotsSent, 0, false],
  ["snap applied", (r) => r.snapshotsApplied, 0, false],
  ["applied at s", (r) => r.appliedAtS, 2, true],
];

async function main(): Promise<void> {
  const keys = argNum("keys", 100_000);
  const snapshotCount = argNum("snapshot-count", 1000);
  const impls = argImpls();
  const out = argValue("out");
  for (const f of [TOOLS.etcd, TOOLS.oursMain, TOOLS.benchmark]) {
    if (!existsSync(f)) throw new Error(`${f} is missing (npm run tools; npm run build)`);
  }
  const t0 = Date.now();
  const rows: Row[] = [];
  for (const impl of impls) rows.push(await runOnce(impl, keys, snapshotCount));
  process.stdout.write(commonTable(rows, COLS));
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (out !== undefined) log(`wrote ${commonWriteJson(resolve(out), "scale-snapshot.json", { keys, snapshotCount }, rows)}`);
  if (rows.some((r) => r.note.includes("failed"))) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`[scale-snapshot] ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
