// The result model: per-run measurements, their medians, the JSON written to
// DIR/bench-results.json, and the table printed on stdout.

import { cpus, totalmem, release, loadavg } from "node:os";

/** One run of the tool against one topology. null: not measured (see status). */
export interface RunMeasurement {
  readonly qps: number;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  /** Peak RSS during the run, summed over the members, MiB. */
  readonly rss_mb: number;
  /** CPU time (user+system) during the run, summed over the members, seconds. */
  readonly cpu_s: number;
  /** Failed requests the tool reported. */
  readonly errors: number;
}

export interface Side {
  readonly qps: number | null;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  readonly rss_mb: number | null;
  readonly cpu_s: number | null;
  /** Present only when the side was not measured: "not supported: ..." or "failed: ...". */
  readonly status?: string;
}

export interface WorkloadResult {
  readonly name: string;
  readonly members: number;
  readonly ours: Side;
  readonly etcd: Side;
  /** ours.qps / etcd.qps, or null when either is missing. */
  readonly ratio: number | null;
}

export interface Machine {
  readonly cpus: number;
  readonly model: string;
  readonly memory_mb: number;
  readonly kernel: string;
  readonly node: string;
  /** 1-minute load average when the bench started (other work on the machine shows up here). */
  readonly loadavg_1m: number;
}

export interface BenchResults {
  readonly commit: string;
  readonly machine: Machine;
  readonly workloads: readonly WorkloadResult[];
}

export function machine(): Machine {
  const c = cpus();
  return {
    cpus: c.length,
    model: c[0]?.model.trim() ?? "unknown",
    memory_mb: Math.round(totalmem() / (1024 * 1024)),
    kernel: release(),
    node: process.version,
    loadavg_1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}

export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const round = (x: number | null, digits: number): number | null => {
  if (x === null || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** The median of each metric over the runs (each metric on its own). */
export function summarize(runs: readonly RunMeasurement[]): Side {
  const nums = (f: (r: RunMeasurement) => number | null) => runs.map(f).filter((x): x is number => x !== null);
  return {
    qps: round(median(nums((r) => r.qps)), 1),
    p50_ms: round(median(nums((r) => r.p50_ms)), 3),
    p99_ms: round(median(nums((r) => r.p99_ms)), 3),
    rss_mb: round(median(nums((r) => r.rss_mb)), 1),
    cpu_s: round(median(nums((r) => r.cpu_s)), 2),
  };
}

export function notMeasured(status: string): Side {
  return { qps: null, p50_ms: null, p99_ms: null, rss_mb: null, cpu_s: null, status };
}

export function ratio(ours: Side, etcd: Side): number | null {
  if (ours.qps === null || etcd.qps === null || etcd.qps === 0) return null;
  return round(ours.qps / etcd.qps, 3);
}

const SIDE_KEYS = ["qps", "p50_ms", "p99_ms", "rss_mb", "cpu_s"] as const;

/**
 * Checks that a parsed bench-results.json has the agreed shape; returns the
 * problems found (empty when it is well formed).
 */
export function shapeProblems(v: unknown): string[] {
  const p: string[] = [];
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
  const numOrNull = (x: unknown) => x === null || (typeof x === "number" && Number.isFinite(x));
  if (!isObj(v)) return ["top level is not an object"];
  if (typeof v["commit"] !== "string" || !/^[0-9a-f]{40}$|^unknown$/.test(v["commit"])) p.push("commit is not a 40-hex git hash");
  const m = v["machine"];
  if (!isObj(m)) p.push("machine is not an object");
  else {
    for (const k of ["cpus", "memory_mb"]) if (typeof m[k] !== "number") p.push(`machine.${k} is not a number`);
    for (const k of ["model", "kernel", "node"]) if (typeof m[k] !== "string") p.push(`machine.${k} is not a string`);
  }
  const ws = v["workloads"];
  if (!Array.isArray(ws)) return [...p, "workloads is not an array"];
  ws.forEach((w: unknown, i) => {
    if (!isObj(w)) return void p.push(`workloads[${i}] is not an object`);
    if (typeof w["name"] !== "string") p.push(`workloads[${i}].name is not a string`);
    if (typeof w["members"] !== "number") p.push(`workloads[${i}].members is not a number`);
    if (!numOrNull(w["ratio"])) p.push(`workloads[${i}].ratio is not a number or null`);
    for (const side of ["ours", "etcd"]) {
      const s = w[side];
      if (!isObj(s)) {
        p.push(`workloads[${i}].${side} is not an object`);
        continue;
      }
      for (const k of SIDE_KEYS) if (!(k in s) || !numOrNull(s[k])) p.push(`workloads[${i}].${side}.${k} is not a number or null`);
      for (const k of Object.keys(s)) {
        if (!(SIDE_KEYS as readonly string[]).includes(k) && k !== "status") p.push(`workloads[${i}].${side} has an unexpected key ${k}`);
      }
      if (s["status"] !== undefined && typeof s["status"] !== "string") p.push(`workloads[${i}].${side}.status is not a string`);
    }
    for (const k of Object.keys(w)) {
      if (!["name", "members", "ours", "etcd", "ratio"].includes(k)) p.push(`workloads[${i}] has an unexpected key ${k}`);
    }
  });
  return p;
}

// ------------------------------------------------------------------ table

const fmt = (x: number | null, digits: number): string => (x === null ? "-" : x.toFixed(digits));

function sideCells(s: Side): string[] {
  if (s.status !== undefined && s.qps === null) {
    const label = s.status.startsWith("not supported") ? "not supported" : "FAILED";
    return [label, "", "", "", ""];
  }
  return [fmt(s.qps, 0), fmt(s.p50_ms, 2), fmt(s.p99_ms, 2), fmt(s.rss_mb, 0), fmt(s.cpu_s, 1)];
}

/** A fixed-width table: one row per workload and topology. */
export function formatTable(ws: readonly WorkloadResult[]): string {
  const head = ["workload", "n", "etcd qps", "p50 ms", "p99 ms", "rss MB", "cpu s", "ours qps", "p50 ms", "p99 ms", "rss MB", "cpu s", "ratio"];
  const rows = ws.map((w) => [w.name, String(w.members), ...sideCells(w.etcd), ...sideCells(w.ours), w.ratio === null ? "-" : w.ratio.toFixed(2)]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(head), line(widths.map((n) => "-".repeat(n))), ...rows.map(line)].join("\n");
}
