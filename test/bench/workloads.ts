// The workloads, as arguments to etcd's `benchmark` tool.
//
// put and range follow etcd's performance page (Documentation op-guide
// "performance": 8-byte keys, 256-byte values, --sequential-keys; 1 connection
// and 1 client, or 100 connections and 1000 clients; 10,000 and 100,000
// requests). As on the page, the one-client put goes to the leader
// (--target-leader: the tool asks the members who leads), the thousand-client
// put and the reads to every member (with one connection, the tool uses the
// first endpoint, m1, which the bench makes the leader in both clusters). The
// page publishes no txn, watch or lease numbers; those use the same key/value
// sizes and client counts, and the tool's own defaults for the watch shapes.
// --quick keeps every workload and shrinks its totals.

export type Mode = "full" | "quick";

export interface Workload {
  /** Row name in the table and in bench-results.json. */
  readonly name: string;
  /** One line for the README and the table footer. */
  readonly about: string;
  /** Arguments after the global ones (--endpoints, --precise). */
  args(mode: Mode): string[];
  /** Which report of the output gives QPS. */
  readonly qpsFrom: string;
  /** Which report gives p50/p99, or null when the tool does not time what this workload is about. */
  readonly latencyFrom: string | null;
  /** Needs the key "foo" present before the runs. */
  readonly needsFoo?: boolean;
}

const pick = (mode: Mode, full: number, quick: number): string => String(mode === "full" ? full : quick);

const c1 = ["--conns=1", "--clients=1"];
const c1000 = ["--conns=100", "--clients=1000"];

export const WORKLOADS: readonly Workload[] = [
  {
    name: "put-c1",
    about: "put, 8 B keys / 256 B values, sequential keys, 1 conn / 1 client, to the leader",
    args: (m) => [...c1, "--target-leader", "put", "--key-size=8", "--val-size=256", "--sequential-keys", `--total=${pick(m, 10_000, 2_000)}`],
    qpsFrom: "",
    latencyFrom: "",
  },
  {
    name: "put-c1000",
    about: "put, 8 B keys / 256 B values, sequential keys, 100 conns / 1000 clients",
    args: (m) => [...c1000, "put", "--key-size=8", "--val-size=256", "--sequential-keys", `--total=${pick(m, 100_000, 5_000)}`],
    qpsFrom: "",
    latencyFrom: "",
  },
  {
    name: "range-l-c1",
    about: "linearizable range of one key (foo, 256 B value), 1 conn / 1 client",
    args: (m) => [...c1, "range", "foo", "--consistency=l", `--total=${pick(m, 10_000, 2_000)}`],
    qpsFrom: "",
    latencyFrom: "",
    needsFoo: true,
  },
  {
    name: "range-l-c1000",
    about: "linearizable range of one key, 100 conns / 1000 clients",
    args: (m) => [...c1000, "range", "foo", "--consistency=l", `--total=${pick(m, 100_000, 10_000)}`],
    qpsFrom: "",
    latencyFrom: "",
    needsFoo: true,
  },
  {
    name: "range-s-c1",
    about: "serializable range of one key, 1 conn / 1 client",
    args: (m) => [...c1, "range", "foo", "--consistency=s", `--total=${pick(m, 10_000, 2_000)}`],
    qpsFrom: "",
    latencyFrom: "",
    needsFoo: true,
  },
  {
    name: "range-s-c1000",
    about: "serializable range of one key, 100 conns / 1000 clients",
    args: (m) => [...c1000, "range", "foo", "--consistency=s", `--total=${pick(m, 100_000, 10_000)}`],
    qpsFrom: "",
    latencyFrom: "",
    needsFoo: true,
  },
  {
    name: "txn-put-c1000",
    about: "txn with one put, 8 B keys / 256 B values, 100 conns / 1000 clients",
    args: (m) => [...c1000, "txn-put", "--key-size=8", "--val-size=256", "--txn-ops=1", `--total=${pick(m, 100_000, 5_000)}`],
    qpsFrom: "",
    latencyFrom: "",
  },
  {
    name: "watch-fanout",
    about: "1000 watchers (10 streams x 100) on one key; QPS = events delivered per second (the tool does not time delivery: no p50/p99)",
    args: (m) => ["watch", "--streams=10", "--watch-per-stream=100", `--put-total=${pick(m, 1_000, 100)}`],
    qpsFrom: "Watch events received summary",
    latencyFrom: null,
  },
  {
    name: "watch-latency",
    about: "100 watchers (10 streams x 10) on one key, 100 puts/s; p50/p99 = put acknowledged -> event received; QPS = events/s",
    args: (m) => ["watch-latency", "--streams=10", "--watchers-per-stream=10", "--put-rate=100", "--val-size=256", `--put-total=${pick(m, 1_000, 200)}`],
    qpsFrom: "Watch events summary",
    latencyFrom: "Watch events summary",
  },
  {
    name: "lease-keepalive-c1000",
    about: "lease keep-alive (one request, one reply each), 100 conns / 1000 clients",
    args: (m) => [...c1000, "lease-keepalive", `--total=${pick(m, 100_000, 10_000)}`],
    qpsFrom: "",
    latencyFrom: "",
  },
];

/**
 * The warm-up before the measured rounds is at least this many requests, for both
 * servers alike: the workload's own run repeated until it is reached. Our server runs
 * on V8's JIT, which compiles a function to fast code only after it has run a while;
 * one-client puts on a fresh member measured 600-700 req/s over their first 3,000
 * requests and 1,000-1,500 after 10,000 (2026-12-02, docs/perf-notes.md), so a warm-up
 * of one quick run (then 500 puts) measured the JIT, not the server a user meets.
 */
export const WARMUP_REQUESTS = 10_000;

/** How many runs of `w` make the warm-up: enough for WARMUP_REQUESTS, or one run for workloads without --total. */
export function warmupRuns(w: Workload, mode: Mode): number {
  const t = w.args(mode).find((a) => a.startsWith("--total="));
  if (t === undefined) return 1;
  const total = Number(t.slice("--total=".length));
  return Math.max(1, Math.ceil(WARMUP_REQUESTS / total));
}

/** Rounds per (workload, topology): each round runs etcd once, then ours once. */
export function rounds(mode: Mode): number {
  return mode === "full" ? 5 : 3;
}
