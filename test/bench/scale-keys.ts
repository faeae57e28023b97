// On demand, not part of `npm test`: N keys on one member, ours beside etcd
// 3.6. Each implementation in turn gets one fresh member (startCluster from
// cluster.ts: same flags, same filesystem, fsync on), and then:
//
//   1. load: etcd's `benchmark put` writes N distinct keys (8-byte
//      sequential keys, 256-byte values) over 100 connections / 1000 clients;
//      the tool's wall time and requests/s, and the server's CPU over it;
//   2. memory: VmRSS once the load is over, and VmHWM (peak) over the load;
//   3. a range of 10,000 keys: `etcdctl get --prefix "" --limit 10000
//      --consistency s -w json`, once untimed to check it really returns
//      10,000 keys, then timed 5 times (median, wall time of the etcdctl
//      process); the same command with --limit 1 beside it: etcdctl's start
//      plus the server counting every key in the range (a range with a limit
//      still answers the total count), so the difference is the 10,000 keys;
//   4. restart after kill -9: SIGKILL, then the same command line on the same
//      data dir; seconds from the spawn until /health says true, and until a
//      serializable get of the last loaded key (JSON gateway) returns it;
//   5. `etcdctl compact REV --physical` to the current revision, then
//      `etcdctl defrag`, each timed; db size (endpoint status) before the
//      compaction and after the defrag.
//
//   npm run build && node dist/test/bench/scale-keys.js [--keys 1000000] [--impl etcd,ours] [--out DIR]
//
// Prints one row per implementation and a row of ours/etcd ratios (above 1:
// ours took longer or used more); with --out DIR also writes
// DIR/scale-keys.json.

import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { startCluster, type Cluster, type Impl } from "./cluster.js";
import { parseBenchmarkOutput, pickReport } from "./parse.js";
import { TOOLS, argImpls, argNum, argValue, benchmarkKey, healthy, lastLine, run, table as commonTable, writeJson as commonWriteJson, type Col as CommonCol, type Ran } from "./scale-common.js";
import { cpuSeconds, peakRssKb, resetPeakRss, statusFieldKb } from "./procstat.js";

interface Row {
  impl: Impl;
  keys: number;
  loadS: number | null;
  loadKeysPerS: number | null;
  loadCpuS: number | null;
  rssMb: number | null;
  peakMb: number | null;
  range10kMs: number | null;
  get1Ms: number | null;
  restartHealthS: number | null;
  restartGetS: number | null;
  rssRestartMb: number | null;
  compactS: number | null;
  defragS: number | null;
  dbMbBefore: number | null;
  dbMbAfter: number | null;
  note: string;
}

const log = (msg: string): void => void process.stderr.write(`[scale-keys] ${msg}\n`);

// ------------------------------------------------------------- arguments

// ------------------------------------------------------------- tools


/** Runs a tool to completion; `ms` is the wall time from spawn to exit. */

/** etcdctl against one endpoint, with a command timeout long enough for a defrag of a big db. */
async function etcdctl(endpoint: string, args: readonly string[]): Promise<Ran> {
  const r = await run(TOOLS.etcdctl, ["--endpoints", endpoint, "--command-timeout=600s", ...args], 900_000);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(" ")}: exit ${r.code}: ${lastLine(r.stderr)}`);
  return r;
}

// ------------------------------------------------------------- measurements

const rssMb = (pid: number): number => (statusFieldKb(readFileSync(`/proc/${pid}/status`, "utf8"), "VmRSS") ?? 0) / 1024;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The key `benchmark put --sequential-keys --key-size=8` writes for index i: Go's binary.PutVarint (zig-zag), zero-padded. */
interface Status {
  revision: number;
  dbSize: number;
}

async function endpointStatus(endpoint: string): Promise<Status> {
  const r = await etcdctl(endpoint, ["endpoint", "status", "-w", "json"]);
  const s = (JSON.parse(r.stdout) as Array<{ Status?: { header?: { revision?: unknown }; dbSize?: unknown } }>)[0]?.Status;
  const revision = Number(s?.header?.revision);
  if (!Number.isFinite(revision) || revision <= 0) throw new Error(`endpoint status without a revision: ${r.stdout.slice(0, 200)}`);
  return { revision, dbSize: Number(s?.dbSize ?? NaN) };
}

/** 1. Writes N distinct keys with etcd's benchmark tool; checks the count afterwards. */
async function load(endpoint: string, pid: number, keys: number, row: Row): Promise<void> {
  resetPeakRss(pid);
  const cpu0 = cpuSeconds(pid);
  const args = [
    "--endpoints", endpoint, "--conns", "100", "--clients", "1000", "--precise",
    "put", "--key-size=8", "--val-size=256", "--sequential-keys", `--key-space-size=${keys}`, `--total=${keys}`,
  ];
  const out = await run(TOOLS.benchmark, args, 1_800_000);
  row.loadCpuS = cpuSeconds(pid) - cpu0;
  if (out.code !== 0) throw new Error(`benchmark put exited ${out.code}: ${lastLine(out.stderr)}`);
  const r = pickReport(parseBenchmarkOutput(out.stdout), "");
  row.loadS = r.totalS;
  row.loadKeysPerS = r.rps;
  if (r.errors > 0) row.note += `load: ${r.errors} errors (${r.errorTexts[0] ?? ""}); `;
  const counted = await etcdctl(endpoint, ["get", "--prefix", "", "--count-only", "-w", "fields"]);
  const count = Number(/"Count"\s*:\s*([0-9]+)/.exec(counted.stdout)?.[1] ?? 0);
  if (count !== keys) row.note += `${count} keys stored, not ${keys}; `;
}

/** 2. Memory once the load is over (VmRSS) and during it (VmHWM). */
async function memory(pid: number, row: Row): Promise<void> {
  await sleep(1000);
  row.rssMb = rssMb(pid);
  row.peakMb = peakRssKb(pid) / 1024;
}

/** 3. A serializable range of 10,000 keys through etcdctl: checked once, then timed 5 times; the same with limit 1 as the baseline. */
async function range10k(endpoint: string, keys: number, row: Row): Promise<void> {
  const get = (limit: number) => etcdctl(endpoint, ["get", "--prefix", "", "--limit", String(limit), "--consistency", "s", "-w", "json"]);
  const want = Math.min(10_000, keys);
  const first = await get(10_000);
  const kvs = (JSON.parse(first.stdout) as { kvs?: unknown[] }).kvs ?? [];
  if (kvs.length !== want) row.note += `range returned ${kvs.length} keys, not ${want}; `;
  const big: number[] = [];
  const small: number[] = [];
  for (let i = 0; i < 5; i++) {
    big.push((await get(10_000)).ms);
    small.push((await get(1)).ms);
  }
  row.range10kMs = median(big);
  row.get1Ms = median(small);
}

/** A serializable get of one key through the JSON gateway; true when it returns that key. */
async function getsKey(clientUrl: string, key: Buffer): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl}/v3/kv/range`, {
      method: "POST",
      body: JSON.stringify({ key: key.toString("base64"), serializable: true }),
      signal: AbortSignal.timeout(5000),
    });
    if (res.status !== 200) return false;
    const body = (await res.json()) as { kvs?: Array<{ key?: string }> };
    return body.kvs?.[0]?.key === key.toString("base64");
  } catch {
    return false;
  }
}

/** 4. SIGKILL, restart with the same command line, time to healthy and to a served get of a loaded key. */
async function restart(c: Cluster, keys: number, row: Row): Promise<void> {
  const key = benchmarkKey(keys - 1);
  if (!(await getsKey(c.members[0]!.clientUrl, key))) throw new Error(`key ${key.toString("hex")} is not served before the restart`);
  const m = await c.restartMember(0, "SIGKILL");
  const t0 = performance.now();
  const deadline = t0 + 600_000;
  while (!(await healthy(m.clientUrl))) {
    if (!c.alive()) throw new Error(`restarted member exited; log: ${m.logFile}`);
    if (performance.now() > deadline) throw new Error("restarted member not healthy after 600 s");
    await sleep(50);
  }
  row.restartHealthS = (performance.now() - t0) / 1000;
  while (!(await getsKey(m.clientUrl, key))) {
    if (performance.now() > deadline) throw new Error("restarted member does not serve the loaded key after 600 s");
    await sleep(50);
  }
  row.restartGetS = (performance.now() - t0) / 1000;
  row.rssRestartMb = rssMb(m.pid);
}

/** 5. Compaction to the current revision (physical), then defrag; db size before and after. */
async function compactAndDefrag(endpoint: string, row: Row): Promise<void> {
  const before = await endpointStatus(endpoint);
  row.dbMbBefore = before.dbSize / 2 ** 20;
  row.compactS = (await etcdctl(endpoint, ["compact", String(before.revision), "--physical"])).ms / 1000;
  row.defragS = (await etcdctl(endpoint, ["defrag"])).ms / 1000;
  row.dbMbAfter = (await endpointStatus(endpoint)).dbSize / 2 ** 20;
}

// ------------------------------------------------------------- one implementation

function emptyRow(impl: Impl, keys: number): Row {
  return {
    impl, keys, loadS: null, loadKeysPerS: null, loadCpuS: null, rssMb: null, peakMb: null,
    range10kMs: null, get1Ms: null, restartHealthS: null, restartGetS: null, rssRestartMb: null,
    compactS: null, defragS: null, dbMbBefore: null, dbMbAfter: null, note: "",
  };
}

/** Runs steps 1-5 on a fresh member; a failing step ends the run, and its error goes in the note. */
async function runOnce(impl: Impl, keys: number): Promise<Row> {
  const row = emptyRow(impl, keys);
  const root = mkdtempSync(join(tmpdir(), "scale-keys-"));
  try {
    const started = await startCluster(impl, 1, root, TOOLS);
    if (started.kind !== "ok") {
      row.note = `not supported: ${started.reason}`;
      return row;
    }
    const c = started.cluster;
    try {
      const m = c.members[0]!;
      const step = (s: string) => log(`${impl}: ${s}`);
      step(`loading ${keys} keys`);
      await load(m.endpoint, m.pid, keys, row);
      await memory(m.pid, row);
      step(`loaded in ${row.loadS?.toFixed(1)} s; ranges of 10,000 keys`);
      await range10k(m.endpoint, keys, row);
      step("kill -9 and restart");
      await restart(c, keys, row);
      step(`healthy after ${row.restartHealthS?.toFixed(2)} s; compaction and defrag`);
      await compactAndDefrag(m.endpoint, row);
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
  ["load cpu s", (r) => r.loadCpuS, 1, true],
  ["rss MB", (r) => r.rssMb, 0, true],
  ["peak rss MB", (r) => r.peakMb, 0, true],
  ["range 10k ms", (r) => r.range10kMs, 0, true],
  ["get 1 ms", (r) => r.get1Ms, 0, false],
  ["restart: health s", (r) => r.restartHealthS, 2, true],
  ["restart: get s", (r) => r.restartGetS, 2, true],
  ["rss restarted MB", (r) => r.rssRestartMb, 0, true],
  ["compact s", (r) => r.compactS, 2, true],
  ["defrag s", (r) => r.defragS, 2, true],
  ["db MB before", (r) => r.dbMbBefore, 1, false],
  ["db MB after", (r) => r.dbMbAfter, 1, false],
];

async function main(): Promise<void> {
  const keys = argNum("keys", 1_000_000);
  const impls = argImpls();
  const out = argValue("out");
  for (const f of [TOOLS.etcd, TOOLS.oursMain, TOOLS.benchmark, TOOLS.etcdctl]) {
    if (!existsSync(f)) throw new Error(`${f} is missing (npm run tools; npm run build)`);
  }
  const t0 = Date.now();
  const rows: Row[] = [];
  for (const impl of impls) rows.push(await runOnce(impl, keys));
  process.stdout.write(commonTable(rows, COLS));
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (out !== undefined) log(`wrote ${commonWriteJson(resolve(out), "scale-keys.json", { keys }, rows)}`);
  if (rows.some((r) => r.note.includes("failed"))) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`[scale-keys] ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
