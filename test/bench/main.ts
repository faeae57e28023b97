// npm run bench -- [--quick] [--out DIR] [--only SUBSTR[,SUBSTR]] [--members 1,3]
//
// Runs real etcd 3.6 and our server side by side in the same topologies and
// drives both with etcd's own `benchmark` tool; see test/bench/README.md.
// Writes progress to stderr, the table to stdout, and with --out DIR the file
// DIR/bench-results.json plus every raw tool output under DIR/raw/.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { repoRoot } from "../harness/provision.js";
import { leadFromFirst, startCluster, type Binaries, type Cluster, type Impl } from "./cluster.js";
import { parseBenchmarkOutput, percentileMs, pickReport } from "./parse.js";
import { cpuSeconds, peakRssKb, resetPeakRss } from "./procstat.js";
import {
  formatTable,
  machine,
  notMeasured,
  ratio,
  shapeProblems,
  summarize,
  type BenchResults,
  type RunMeasurement,
  type Side,
  type WorkloadResult,
} from "./results.js";
import { rounds, warmupRuns, WORKLOADS, type Mode, type Workload } from "./workloads.js";

const log = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);

// ------------------------------------------------------------- arguments

interface Options {
  mode: Mode;
  out: string | undefined;
  only: string[];
  members: number[];
}

function usage(): never {
  process.stderr.write(
    "usage: npm run bench -- [--quick] [--out DIR] [--only NAME[,NAME..]] [--members 1,3]\n" +
      "  --quick     smaller totals and 3 rounds instead of 5 (about 10 minutes)\n" +
      "  --out DIR   write DIR/bench-results.json and the raw tool outputs in DIR/raw/\n" +
      "  --only      run only the workloads whose name contains one of these strings\n" +
      "  --members   topologies to run (default 1,3)\n",
  );
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { mode: "full", out: undefined, only: [], members: [1, 3] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const eq = a.indexOf("=");
      if (eq >= 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) usage();
      return v;
    };
    if (a === "--quick") o.mode = "quick";
    else if (a === "--out" || a.startsWith("--out=")) o.out = resolve(value());
    else if (a === "--only" || a.startsWith("--only=")) o.only = value().split(",").filter(Boolean);
    else if (a === "--members" || a.startsWith("--members=")) {
      o.members = value().split(",").map(Number);
      if (o.members.some((n) => !Number.isInteger(n) || n < 1)) usage();
    } else usage();
  }
  return o;
}

// ------------------------------------------------------------- provisioning

interface Tools extends Binaries {
  readonly benchmark: string;
}

/** Real etcd 3.6 and etcd's benchmark tool, built with tools/build.sh when missing. */
function provisionTools(): Tools {
  const bin = join(repoRoot, ".tools", "bin");
  const paths = () => ({
    etcd: process.env["ETCD36_BIN"] || join(bin, "etcd"),
    benchmark: process.env["BENCHMARK_BIN"] || join(bin, "benchmark"),
  });
  let p = paths();
  const missing = () => [p.etcd, p.benchmark].filter((f) => !existsSync(f));
  if (missing().length > 0) {
    const go = spawnSync("go", ["version"], { encoding: "utf8" });
    if (go.error || go.status !== 0) {
      throw new Error(
        `missing ${missing().join(" and ")}, and Go is not installed (or not on PATH), so they cannot be built.\n` +
          "Install Go (see tools/versions.env GO_MIN_VERSION), then run: bash tools/build.sh etcd benchmark",
      );
    }
    log(`missing ${missing().join(" and ")}: building them now with \`bash tools/build.sh etcd benchmark\` (${go.stdout.trim()}; a cold build takes a few minutes, and it first waits for any other tools/build.sh run to finish)`);
    const r = spawnSync("bash", [join(repoRoot, "tools", "build.sh"), "etcd", "benchmark"], { cwd: repoRoot, stdio: ["ignore", 2, 2] });
    p = paths();
    if (r.status !== 0 || missing().length > 0) {
      throw new Error(`tools/build.sh etcd benchmark failed (exit ${r.status ?? r.signal}); still missing: ${missing().join(", ") || "nothing"}`);
    }
  }
  const oursMain = process.env["ETCDTS_MAIN"] || join(repoRoot, "dist", "node", "src", "main.js");
  if (!existsSync(oursMain)) throw new Error(`${oursMain} does not exist: build first (npm run build; npm run bench does it)`);
  return { ...p, oursMain };
}

function gitCommit(): string {
  const r = spawnSync("git", ["rev-parse", "HEAD"], { cwd: repoRoot, encoding: "utf8" });
  const h = (r.stdout ?? "").trim();
  return r.status === 0 && /^[0-9a-f]{40}$/.test(h) ? h : "unknown";
}

// ------------------------------------------------------------- one run

interface RunOutput {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Runs the tool; kills it (by its pid) on timeout or as soon as `stop()` returns a reason. */
function runTool(file: string, args: readonly string[], timeoutMs: number, stop: () => string | undefined): Promise<RunOutput> {
  return new Promise((done) => {
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    // The tool retries forever against a dead server: watch the servers too.
    const poll = setInterval(() => {
      if (stop() !== undefined) child.kill("SIGKILL");
    }, 500);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      clearInterval(poll);
      done({ code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), timedOut });
    });
  });
}

let peakResetWarned = false;

async function measureOnce(
  tools: Tools,
  cluster: Cluster,
  w: Workload,
  opts: Options,
  label: string,
): Promise<{ ok: true; m: RunMeasurement } | { ok: false; why: string }> {
  const pids = cluster.members.map((m) => m.pid);
  for (const pid of pids) {
    if (!resetPeakRss(pid) && !peakResetWarned) {
      peakResetWarned = true;
      log("WARNING: cannot reset VmHWM (/proc/<pid>/clear_refs); peak RSS is then the peak since the server started");
    }
  }
  const cpu0 = pids.reduce((s, pid) => s + cpuSeconds(pid), 0);
  const args = ["--endpoints", cluster.members.map((m) => m.endpoint).join(","), "--precise", ...w.args(opts.mode)];
  const r = await runTool(tools.benchmark, args, opts.mode === "quick" ? 180_000 : 3_600_000, () => (cluster.alive() ? undefined : "dead"));
  if (!cluster.alive()) {
    const m = cluster.members.find((x) => !existsSync(`/proc/${x.pid}`)) ?? cluster.members[0]!;
    return { ok: false, why: `${cluster.impl} member ${m.name} died during the run (log: ${m.logFile})` };
  }
  const cpu = pids.reduce((s, pid) => s + cpuSeconds(pid), 0) - cpu0;
  const rssMb = pids.reduce((s, pid) => s + peakRssKb(pid), 0) / 1024;
  if (opts.out) {
    mkdirSync(join(opts.out, "raw"), { recursive: true });
    writeFileSync(join(opts.out, "raw", `${label}.txt`), `$ benchmark ${args.join(" ")}\n${r.stdout}\n--- stderr\n${r.stderr}`);
  }
  if (r.timedOut) return { ok: false, why: "the benchmark tool did not finish in time" };
  if (r.code !== 0) return { ok: false, why: `benchmark exited ${r.signal ?? r.code}: ${r.stderr.trim().split("\n").slice(-3).join(" | ")}` };
  const reports = parseBenchmarkOutput(r.stdout);
  let qpsR, latR;
  try {
    qpsR = pickReport(reports, w.qpsFrom);
    latR = w.latencyFrom === null ? null : pickReport(reports, w.latencyFrom);
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
  if (qpsR.rps === 0) return { ok: false, why: `no request succeeded: ${qpsR.errorTexts[0] ?? "(no error text)"}` };
  return {
    ok: true,
    m: {
      qps: qpsR.rps,
      p50_ms: latR ? percentileMs(latR, "50") : null,
      p99_ms: latR ? percentileMs(latR, "99") : null,
      rss_mb: rssMb,
      cpu_s: cpu,
      errors: qpsR.errors + (latR && latR !== qpsR ? latR.errors : 0),
    },
  };
}

/** Stores key "foo" with a 256-byte value (the range workloads read it) through the JSON gateway. */
async function putFoo(c: Cluster): Promise<void> {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const res = await fetch(`${c.members[0]!.clientUrl}/v3/kv/put`, {
    method: "POST",
    body: JSON.stringify({ key: b64("foo"), value: b64("v".repeat(256)) }),
    signal: AbortSignal.timeout(10_000),
  });
  if (res.status !== 200) throw new Error(`${c.impl}: put foo answered ${res.status}: ${await res.text()}`);
}

// ------------------------------------------------------------- one workload

async function benchWorkload(tools: Tools, w: Workload, members: number, opts: Options, root: string): Promise<WorkloadResult> {
  const clusters = new Map<Impl, Cluster>();
  const failed = new Map<Impl, Side>();
  const runs = new Map<Impl, RunMeasurement[]>([
    ["etcd", []],
    ["ours", []],
  ]);
  const impls: Impl[] = ["etcd", "ours"];
  try {
    for (const impl of impls) {
      try {
        const r = await startCluster(impl, members, root, tools);
        if (r.kind === "unsupported") {
          failed.set(impl, notMeasured(`not supported: ${r.reason}`));
          continue;
        }
        clusters.set(impl, r.cluster);
        await leadFromFirst(r.cluster);
        if (w.needsFoo) await putFoo(r.cluster);
      } catch (e) {
        if (impl === "etcd") throw e;
        failed.set(impl, notMeasured(`failed: ${(e as Error).message.split("\n")[0]}`));
        log(`${impl} ${members}-member did not start: ${(e as Error).message}`);
      }
    }
    // An unmeasured warm-up, the same for both, as a server that has been up a while: ours
    // runs on a JIT (see WARMUP_REQUESTS), and both open connections, fill caches and grow
    // their logs before the rounds that count. The warm-up runs are logged, so the cold
    // numbers stay visible.
    const warmups = warmupRuns(w, opts.mode);
    for (const impl of impls) {
      const c = clusters.get(impl);
      if (!c || failed.has(impl)) continue;
      const qps: string[] = [];
      for (let k = 1; k <= warmups; k++) {
        const label = `${w.name}-n${members}-${impl}-warmup${k}`;
        const r = await measureOnce(tools, c, w, opts, label);
        if (!r.ok) {
          log(`${label}: FAILED: ${r.why}`);
          failed.set(impl, notMeasured(`failed: ${r.why}`));
          break;
        }
        qps.push(r.m.qps.toFixed(0));
      }
      if (!failed.has(impl)) log(`${w.name}-n${members}-${impl}-warmup: ${warmups} run(s), ${qps.join(", ")} qps (not counted)`);
    }
    const n = rounds(opts.mode);
    for (let i = 1; i <= n; i++) {
      // Alternate: etcd, ours, etcd, ours, ... so drift over time hits both.
      for (const impl of impls) {
        const c = clusters.get(impl);
        if (!c || failed.has(impl)) continue;
        const label = `${w.name}-n${members}-${impl}-r${i}`;
        const r = await measureOnce(tools, c, w, opts, label);
        if (!r.ok) {
          log(`${label}: FAILED: ${r.why}`);
          failed.set(impl, notMeasured(`failed: ${r.why}`));
          continue;
        }
        runs.get(impl)!.push(r.m);
        const m = r.m;
        const lat = m.p50_ms === null ? "" : ` p50 ${m.p50_ms.toFixed(2)} ms p99 ${m.p99_ms?.toFixed(2)} ms`;
        log(`${label}: ${m.qps.toFixed(0)} qps${lat} rss ${m.rss_mb.toFixed(0)} MB cpu ${m.cpu_s.toFixed(2)} s${m.errors ? ` ERRORS ${m.errors}` : ""}`);
      }
    }
  } finally {
    for (const c of clusters.values()) await c.dispose();
  }
  const side = (impl: Impl): Side => failed.get(impl) ?? summarize(runs.get(impl)!);
  const ours = side("ours");
  const etcd = side("etcd");
  return { name: w.name, members, ours, etcd, ratio: ratio(ours, etcd) };
}

// ------------------------------------------------------------- main

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const tools = provisionTools();
  const workloads = WORKLOADS.filter((w) => opts.only.length === 0 || opts.only.some((s) => w.name.includes(s)));
  if (workloads.length === 0) usage();
  const mach = machine();
  log(`${opts.mode} mode, ${rounds(opts.mode)} rounds, topologies ${opts.members.join(",")}; ${mach.cpus} cpus (${mach.model}), load ${mach.loadavg_1m}`);
  log(`etcd: ${tools.etcd}; benchmark: ${tools.benchmark}; ours: node ${tools.oursMain}`);
  // Data directories of both implementations live under one root: same filesystem.
  const root = mkdtempSync(join(tmpdir(), "etcdts-bench-"));
  process.on("exit", () => rmSync(root, { recursive: true, force: true }));
  const results: WorkloadResult[] = [];
  try {
    for (const members of opts.members) {
      for (const w of workloads) {
        log(`--- ${w.name}, ${members} member${members > 1 ? "s" : ""}: ${w.about}`);
        results.push(await benchWorkload(tools, w, members, opts, root));
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const out: BenchResults = { commit: gitCommit(), machine: mach, workloads: results };
  const problems = shapeProblems(JSON.parse(JSON.stringify(out)));
  if (problems.length > 0) throw new Error(`internal: results do not have the agreed shape: ${problems.join("; ")}`);

  process.stdout.write(`${formatTable(results)}\n\n`);
  // Why a side was not measured; the same reason once per topology (ports masked).
  const notes = new Map<string, string[]>();
  for (const w of results) {
    for (const [impl, s] of [["etcd", w.etcd], ["ours", w.ours]] as const) {
      if (s.status === undefined) continue;
      const key = `${impl}, ${w.members} member${w.members > 1 ? "s" : ""}: ${s.status.replace(/127\.0\.0\.1:[0-9]+/g, "127.0.0.1:PORT")}`;
      notes.set(key, [...(notes.get(key) ?? []), w.name]);
    }
  }
  for (const [key, names] of notes) process.stdout.write(`${key}\n  (${names.join(", ")})\n`);
  const minutes = ((Date.now() - t0) / 60_000).toFixed(1);
  process.stdout.write(
    `ratio = ours qps / etcd qps; medians of ${rounds(opts.mode)} alternating rounds; ${opts.mode} mode; took ${minutes} min; ` +
      `load average at start ${mach.loadavg_1m} on ${mach.cpus} cpus\n`,
  );
  if (opts.out) {
    mkdirSync(opts.out, { recursive: true });
    writeFileSync(join(opts.out, "bench-results.json"), `${JSON.stringify(out, null, 2)}\n`);
    log(`wrote ${join(opts.out, "bench-results.json")}`);
  }
  return results.some((w) => w.etcd.status !== undefined || (w.ours.status ?? "").startsWith("failed")) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`[bench] ERROR: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
