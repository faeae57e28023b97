// Unit tests for the bench's reading of etcd's `benchmark` output and for the
// shape of bench-results.json. The inputs in testdata/ are real outputs of
// the benchmark tool (v3.6.8) captured on this project's machines; nothing
// here measures or asserts performance.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../harness/provision.js";
import { parseBenchmarkOutput, percentileMs, pickReport } from "./parse.js";
import { cpuSecondsFromStat, statusFieldKb } from "./procstat.js";
import { formatTable, machine, median, notMeasured, ratio, shapeProblems, summarize, type BenchResults } from "./results.js";
import { WARMUP_REQUESTS, warmupRuns, WORKLOADS } from "./workloads.js";

const fixture = (name: string): string => readFileSync(join(repoRoot, "test", "bench", "testdata", name), "utf8");

test("put output (--precise): one untitled report with QPS and percentiles", () => {
  const reports = parseBenchmarkOutput(fixture("put-precise.txt"));
  assert.equal(reports.length, 1);
  const r = pickReport(reports, "");
  assert.equal(r.rps, 318.4488595524741);
  assert.equal(r.totalS, 1.57011082);
  assert.equal(r.percentiles.get("50"), 0.001315364);
  assert.equal(r.percentiles.get("99"), 0.019679282);
  assert.equal(r.percentiles.get("99.9"), undefined); // the tool omits it for small runs
  assert.equal(r.errors, 0);
  assert.ok(Math.abs((percentileMs(r, "50") ?? 0) - 1.315364) < 1e-9);
});

test("watch-latency output: the put report and the watch events report, by title", () => {
  const reports = parseBenchmarkOutput(fixture("watch-latency-precise.txt"));
  assert.deepEqual(
    reports.map((r) => r.title),
    ["Put summary", "Watch events summary"],
  );
  const put = pickReport(reports, "Put summary");
  const ev = pickReport(reports, "Watch events summary");
  assert.equal(put.rps, 199.29064448145144);
  assert.equal(ev.rps, 19792.091304954778);
  assert.equal(ev.percentiles.get("50"), 0.000282821);
  assert.equal(ev.percentiles.get("99"), 0.001848725);
});

test("watch output with the progress bar glued to the titles (stdout and stderr merged, default precision)", () => {
  const reports = parseBenchmarkOutput(fixture("watch-with-stderr.txt"));
  assert.deepEqual(
    reports.map((r) => r.title),
    ["Watch creation summary", "Watch events received summary"],
  );
  assert.equal(pickReport(reports, "Watch creation summary").rps, 10573.597);
  const ev = pickReport(reports, "Watch events received summary");
  assert.equal(ev.rps, 51576.2194);
  assert.equal(ev.totalS, 19.3888);
  assert.equal(ev.percentiles.get("50"), 0);
});

test("a run where every request failed: no summary, only the error distribution", () => {
  const reports = parseBenchmarkOutput(fixture("put-all-failed.txt"));
  assert.equal(reports.length, 1);
  const r = pickReport(reports, "");
  assert.equal(r.rps, 0);
  assert.equal(r.errors, 5);
  assert.deepEqual(r.errorTexts, ["etcdserver: request is too large"]);
  assert.equal(percentileMs(r, "50"), null);
});

test("pickReport names the titles it saw when the wanted one is missing", () => {
  const reports = parseBenchmarkOutput(fixture("watch-latency-precise.txt"));
  assert.throws(() => pickReport(reports, "Watch events received summary"), /saw: "Put summary", "Watch events summary"/);
});

test("every workload's QPS and latency reports exist in the output its command produces", () => {
  // The titles the workloads ask for are the ones the tool prints.
  const titles = new Set(["", "Put summary", "Watch events summary", "Watch creation summary", "Watch events received summary"]);
  for (const w of WORKLOADS) {
    assert.ok(titles.has(w.qpsFrom), `${w.name}: qpsFrom ${w.qpsFrom}`);
    if (w.latencyFrom !== null) assert.ok(titles.has(w.latencyFrom), `${w.name}: latencyFrom ${w.latencyFrom}`);
    assert.ok(w.args("quick").length > 0 && w.args("full").length > 0);
  }
  assert.equal(new Set(WORKLOADS.map((w) => w.name)).size, WORKLOADS.length, "workload names are unique");
});

test("the warm-up reaches WARMUP_REQUESTS requests by repeating a workload's run", () => {
  const byName = (n: string) => WORKLOADS.find((w) => w.name === n)!;
  // put-c1 --quick runs 2,000 puts: 5 runs; its full run (10,000) is one.
  assert.equal(warmupRuns(byName("put-c1"), "quick"), 5);
  assert.equal(warmupRuns(byName("put-c1"), "full"), 1);
  // put-c1000 --quick runs 5,000: two runs.
  assert.equal(warmupRuns(byName("put-c1000"), "quick"), 2);
  // The watch workloads have no --total: one run.
  assert.equal(warmupRuns(byName("watch-fanout"), "quick"), 1);
  for (const w of WORKLOADS) {
    for (const mode of ["quick", "full"] as const) {
      const t = w.args(mode).find((a) => a.startsWith("--total="));
      if (t !== undefined) assert.ok(warmupRuns(w, mode) * Number(t.slice(8)) >= WARMUP_REQUESTS, `${w.name} ${mode}`);
    }
  }
});

test("/proc readings: utime+stime from stat (comm with spaces and parentheses), kB fields from status", () => {
  // Real /proc/<pid>/stat layout: pid (comm) state ppid ... utime(14) stime(15) ...
  const stat = "4242 (node (main) x) S 1 4242 4242 0 -1 4194560 5230 0 0 0 786 74 0 0 20 0 12 0 1234 0 0";
  assert.equal(cpuSecondsFromStat(stat, 100), 8.6);
  const status = "Name:\tnode\nVmPeak:\t  900000 kB\nVmHWM:\t   74424 kB\nVmRSS:\t   70000 kB\n";
  assert.equal(statusFieldKb(status, "VmHWM"), 74424);
  assert.equal(statusFieldKb(status, "VmSwap"), undefined);
});

test("medians, ratio and the JSON shape", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.equal(median([]), null);
  const etcd = summarize([
    { qps: 1000, p50_ms: 1, p99_ms: 5, rss_mb: 40, cpu_s: 1, errors: 0 },
    { qps: 3000, p50_ms: 3, p99_ms: 9, rss_mb: 42, cpu_s: 2, errors: 0 },
    { qps: 2000, p50_ms: 2, p99_ms: 7, rss_mb: 41, cpu_s: 3, errors: 0 },
  ]);
  assert.deepEqual(etcd, { qps: 2000, p50_ms: 2, p99_ms: 7, rss_mb: 41, cpu_s: 2 });
  const ours = summarize([{ qps: 1000, p50_ms: null, p99_ms: null, rss_mb: 90, cpu_s: 4, errors: 0 }]);
  assert.equal(ours.p50_ms, null);
  assert.equal(ratio(ours, etcd), 0.5);
  const unsupported = notMeasured("not supported: etcd-ts: clustering (more than one member) is not supported yet");
  assert.equal(ratio(unsupported, etcd), null);

  const doc: BenchResults = {
    commit: "0123456789abcdef0123456789abcdef01234567",
    machine: machine(),
    workloads: [
      { name: "put-c1", members: 1, ours, etcd, ratio: ratio(ours, etcd) },
      { name: "put-c1", members: 3, ours: unsupported, etcd, ratio: null },
    ],
  };
  const parsed: unknown = JSON.parse(JSON.stringify(doc));
  assert.deepEqual(shapeProblems(parsed), []);
  // Exactly these keys, in this nesting.
  const p = parsed as { workloads: Array<Record<string, unknown>> };
  assert.deepEqual(Object.keys(parsed as object), ["commit", "machine", "workloads"]);
  assert.deepEqual(Object.keys(p.workloads[0]!), ["name", "members", "ours", "etcd", "ratio"]);
  assert.deepEqual(Object.keys(p.workloads[0]!["etcd"] as object), ["qps", "p50_ms", "p99_ms", "rss_mb", "cpu_s"]);
  assert.deepEqual(Object.keys(p.workloads[1]!["ours"] as object), ["qps", "p50_ms", "p99_ms", "rss_mb", "cpu_s", "status"]);

  // And the checker does reject what is not that shape.
  assert.ok(shapeProblems({ commit: "x", machine: {}, workloads: [{}] }).length > 5);
  const extra = JSON.parse(JSON.stringify(doc)) as { workloads: Array<Record<string, unknown>> };
  extra.workloads[0]!["qps"] = 1;
  assert.deepEqual(shapeProblems(extra), ["workloads[0] has an unexpected key qps"]);

  const table = formatTable(doc.workloads);
  assert.match(table, /^workload\s+n\s+etcd qps/);
  assert.match(table, /put-c1\s+3\s+2000.*not supported\s+-$/m);
});
