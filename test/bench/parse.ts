// Reads the text that etcd's `benchmark` tool prints (go.etcd.io/etcd/v3
// tools/benchmark, report format of go.etcd.io/etcd/pkg/v3/report).
//
// One invocation prints one or more reports. Each is a block
//
//   <title line, e.g. "Watch events summary:", absent for put/range/...>
//   Summary:
//     Total:        1.62 secs.
//     ...
//     Requests/sec: 1233.77
//   Response time histogram:  ...
//   Latency distribution:
//     10% in 0.0003 secs.
//     ...
//   Error distribution:        (only when some requests failed)
//     [3]   <error text>
//
// interleaved with a progress bar that redraws itself with '\r' on stdout and
// gRPC log lines. A report where every request failed has no "Summary:" at
// all, only an error distribution; it is returned with rps 0 and no latencies.

export interface Report {
  /** "Put summary", "Watch events summary", ...; "" when the tool prints no title. */
  readonly title: string;
  /** Wall time the tool measured, seconds. */
  readonly totalS: number;
  /** Successful requests per second, as the tool computed it. */
  readonly rps: number;
  readonly averageS: number | undefined;
  /** Percentile ("50", "99", "99.9") to latency in seconds. */
  readonly percentiles: ReadonlyMap<string, number>;
  /** Failed requests, summed over the error distribution. */
  readonly errors: number;
  /** The distinct error texts, most frequent first. */
  readonly errorTexts: readonly string[];
}

const NUM = String.raw`([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|NaN|[-+]?Inf)`;
const TITLE = /([A-Z][a-z]+(?: [a-z]+)* summary):\s*$/;
const FIELD = new RegExp(String.raw`^\s*(Total|Slowest|Fastest|Average|Stddev):\s+${NUM} secs\.\s*$`);
const RPS = new RegExp(String.raw`^\s*Requests/sec:\s+${NUM}\s*$`);
const PCT = new RegExp(String.raw`^\s*([0-9.]+)% in ${NUM} secs\.\s*$`);
const ERR = /^\s*\[([0-9]+)\]\s+(.*)$/;

/** Lines of the output with the progress bar's carriage-return redraws removed. */
function lines(text: string): string[] {
  return text.split("\n").map((l) => {
    const i = l.lastIndexOf("\r");
    return i >= 0 ? l.slice(i + 1) : l;
  });
}

interface Draft {
  title: string;
  totalS: number;
  rps: number;
  averageS: number | undefined;
  percentiles: Map<string, number>;
  errors: number;
  errorTexts: Array<[number, string]>;
}

function emptyDraft(title: string): Draft {
  return { title, totalS: NaN, rps: NaN, averageS: undefined, percentiles: new Map(), errors: 0, errorTexts: [] };
}

function finish(d: Draft): Report {
  const errorTexts = d.errorTexts.sort((a, b) => b[0] - a[0]).map(([, t]) => t);
  return {
    title: d.title,
    totalS: Number.isNaN(d.totalS) ? 0 : d.totalS,
    rps: Number.isNaN(d.rps) ? 0 : d.rps,
    averageS: d.averageS,
    percentiles: d.percentiles,
    errors: d.errors,
    errorTexts,
  };
}

/** Every report in one invocation's output, in order. */
export function parseBenchmarkOutput(text: string): Report[] {
  const out: Report[] = [];
  let cur: Draft | undefined;
  let section: "summary" | "histogram" | "latency" | "errors" | "none" = "none";
  let pendingTitle = "";
  const ls = lines(text);
  for (const line of ls) {
    const t = TITLE.exec(line);
    if (t && t[1] !== undefined) {
      // A titled block starts: close the previous one.
      if (cur) out.push(finish(cur));
      cur = undefined;
      pendingTitle = t[1];
      section = "none";
      continue;
    }
    if (/^\s*Summary:\s*$/.test(line)) {
      if (cur) out.push(finish(cur));
      cur = emptyDraft(pendingTitle);
      pendingTitle = "";
      section = "summary";
      continue;
    }
    if (/^\s*Response time histogram:\s*$/.test(line)) {
      section = "histogram";
      continue;
    }
    if (/^\s*Latency distribution:\s*$/.test(line)) {
      section = "latency";
      continue;
    }
    if (/^\s*Error distribution:\s*$/.test(line)) {
      // Printed after the summary, or alone when nothing succeeded.
      if (!cur) {
        cur = emptyDraft(pendingTitle);
        pendingTitle = "";
      }
      section = "errors";
      continue;
    }
    if (!cur) continue;
    if (section === "summary") {
      const f = FIELD.exec(line);
      if (f && f[1] !== undefined && f[2] !== undefined) {
        const v = Number(f[2]);
        if (f[1] === "Total") cur.totalS = v;
        if (f[1] === "Average") cur.averageS = v;
        continue;
      }
      const r = RPS.exec(line);
      if (r && r[1] !== undefined) cur.rps = Number(r[1]);
    } else if (section === "latency") {
      const p = PCT.exec(line);
      if (p && p[1] !== undefined && p[2] !== undefined) cur.percentiles.set(p[1], Number(p[2]));
    } else if (section === "errors") {
      const e = ERR.exec(line);
      if (e && e[1] !== undefined && e[2] !== undefined) {
        const n = Number(e[1]);
        cur.errors += n;
        cur.errorTexts.push([n, e[2].trim()]);
      }
    }
  }
  if (cur) out.push(finish(cur));
  return out;
}

/** The report with this title ("" for the untitled one); throws with the titles seen when absent. */
export function pickReport(reports: readonly Report[], title: string): Report {
  const r = reports.find((x) => x.title === title);
  if (!r) {
    const seen = reports.map((x) => JSON.stringify(x.title)).join(", ") || "none";
    throw new Error(`benchmark output has no report titled ${JSON.stringify(title)} (saw: ${seen})`);
  }
  return r;
}

/** Latency at a percentile in milliseconds, or null when the report has none (all requests failed). */
export function percentileMs(r: Report, pct: "50" | "99"): number | null {
  const s = r.percentiles.get(pct);
  return s === undefined ? null : s * 1000;
}
