// Lockstep runner for the etcdctl suite: ONE etcdctl binary (3.4 or 3.6) is
// run with the same arguments against two clusters started the same way —
// real etcd 3.6 (the judge) and ours — and the two results must be equal.
// Identical clusters fed identical requests have identical revisions, keys and
// values, so a result is compared byte for byte after these normalisations,
// and only these (each one exists because the value legitimately differs
// between two correct clusters):
//
//   N1 endpoints   each cluster's client URLs / host:port become <ep0>, <ep1>, ...,
//                  and its peer URLs <peer0>, ...: ports are chosen free at start-up.
//   N2 ids         cluster ID and member IDs become <cluster> and <member0>, ...:
//                  etcd derives them from a hash of the peer URLs and the start time.
//   N3 raft        raft term, raft index and applied index (in response headers and
//                  endpoint status): they count elections and log entries, which
//                  depend on how a cluster bootstrapped (conf-change entries,
//                  elections), not on the client's requests.
//   N4 leases      lease IDs become <lease0>, <lease1>, ... in the order each side
//                  granted them (decimal, hex, unpadded hex): etcd derives them from
//                  the member ID and the clock. Leases granted implicitly by a
//                  session (lock, elect) become <session-lease>.
//   N5 took        measured latencies (endpoint health, defrag in 3.6).
//   N6 ttl         a lease's remaining seconds (both sides count down on their own clock).
//   N7 dbsize      database and in-use sizes (and their ratio), a snapshot file's size and hash:
//                  they depend on the storage engine's page layout, not on the data.
//   N8 version     the server version string in endpoint status: etcd reports its
//                  patch release (3.6.16), we report the API level we match (3.6.0).
//   N9 stderr      etcdctl's own zap log lines ({"level":...} JSON) and capnslog
//                  timestamps are dropped: they carry wall-clock times.
//   N10 protobuf   `-w protobuf` output is decoded with the response's schema and
//                  compared as JSON, so N2-N4 can apply to its header fields.
//   N11 table      table cells lose their padding (it depends on the width of the
//                  values normalised above).
//
// The clusters have 3 members (test/harness/cluster.ts) and etcdctl is given
// all their endpoints, so three more exist because of that:
//
//   N2 above names member IDs by member name (m1 is <member0>, the member
//                  behind <ep0>), not by their order in `member list`.
//   N12 answered-by the member_id in a response header becomes <member> except
//                  in `endpoint status` and `endpoint hashkv` (one connection per
//                  endpoint): etcdctl's client balances the other requests over
//                  the endpoints, so which member answers is the balancer's choice.
//   N13 rows       `member list`, `lease list`, `endpoint health` and every
//                  `--cluster` command have their rows sorted (lines; objects in
//                  JSON arrays): etcd lists members in ID order, and IDs are
//                  hashes of the peer URLs; it lists leases by expiry, which a
//                  follower does not track (all equal, so Go's map order);
//                  `endpoint health` prints in the order the concurrent checks
//                  finish.
// Both clusters hand leadership to their first member at start, so the
// leader column of `endpoint status` lines up without a normalisation.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary, toJsonString, type DescMessage } from "@bufbuild/protobuf";

import { startCluster } from "../harness/cluster.js";
import type { Cluster } from "../harness/cluster.js";
import type { Impl } from "../harness/member.js";
import {
  DeleteRangeResponseSchema,
  PutResponseSchema,
  RangeResponseSchema,
  TxnResponseSchema,
} from "../../node/gen/etcdserverpb/rpc_pb.js";

export type Normalisation = "took" | "ttl" | "dbsize" | "version" | "session" | "answered-by" | "rows";

export interface RunOpts {
  readonly stdin?: string;
  readonly timeoutMs?: number;
  readonly env?: Readonly<Record<string, string>>;
}

export interface StepOpts extends RunOpts {
  readonly normalise?: readonly Normalisation[];
  /** The exit code the judge must have (checked on etcd, keeping the case honest). */
  readonly code?: number;
  /** `-w protobuf` output: the message to decode it with. */
  readonly protobuf?: DescMessage;
}

export interface CtlOpts extends RunOpts {
  /** Only these endpoints (indexes into the cluster's list); default all. */
  readonly only?: readonly number[];
}

export interface CliResult {
  readonly stdout: Buffer;
  readonly stderr: string;
  readonly code: number | null;
}

export interface Running {
  readonly proc: ChildProcess;
  readonly done: Promise<CliResult>;
  stdout(): string;
  /** SIGTERM (etcdctl closes its session on it) and the result. */
  stop(): Promise<CliResult>;
}

interface Side {
  readonly impl: Impl;
  readonly cluster: Cluster;
  readonly cwd: string;
  /** Lease IDs (hex, 16 digits) in grant order. */
  readonly leases: string[];
  /** Cluster ID, then member IDs (bigint) in endpoint order, read from `member list`. */
  ids: bigint[];
}

export const PROTOBUF: Record<string, DescMessage> = {
  put: PutResponseSchema,
  get: RangeResponseSchema,
  del: DeleteRangeResponseSchema,
  txn: TxnResponseSchema,
};

function spawnCtl(bin: string, cluster: Cluster, args: readonly string[], cwd: string, opts: CtlOpts): Running {
  const endpoints = (opts.only ?? cluster.endpoints.map((_, i) => i)).map((i) => cluster.endpoints[i]).join(",");
  const proc = spawn(bin, [`--endpoints=${endpoints}`, ...args], {
    cwd,
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  const out: Buffer[] = [];
  let err = "";
  proc.stdout?.on("data", (d: Buffer) => out.push(d));
  proc.stderr?.on("data", (d: Buffer) => { err += d.toString("utf8"); });
  proc.stdin?.on("error", () => {});
  proc.stdin?.end(opts.stdin ?? "");
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  const done = new Promise<CliResult>((res) => {
    proc.on("close", (code) => {
      clearTimeout(timer);
      res({ stdout: Buffer.concat(out), stderr: err, code });
    });
  });
  return {
    proc,
    done,
    stdout: () => Buffer.concat(out).toString("latin1"),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      return done;
    },
  };
}

const collapseTable = (t: string): string =>
  t.replace(/^[|+].*$/gm, (line) => line.replace(/ *\| */g, " | ").replace(/-+/g, "-"));

export class Duo {
  private constructor(readonly ctl: string, readonly judge: Side, readonly ours: Side) {}

  static async start(ctl: string, extraFlags: readonly string[] = []): Promise<Duo> {
    const [a, b] = await Promise.all([startCluster("etcd", { extraFlags }), startCluster("ours", { extraFlags })]);
    const side = (impl: Impl, cluster: Cluster): Side =>
      ({ impl, cluster, cwd: mkdtempSync(join(tmpdir(), `etcdts-etcdctl-${impl}-`)), leases: [], ids: [] });
    const duo = new Duo(ctl, side("etcd", a), side("ours", b));
    for (const s of [duo.judge, duo.ours]) await duo.readIds(s);
    return duo;
  }

  async stop(): Promise<void> {
    await Promise.all([this.judge.cluster.dispose(), this.ours.cluster.dispose()]);
    for (const s of [this.judge, this.ours]) rmSync(s.cwd, { recursive: true, force: true });
  }

  private async readIds(side: Side): Promise<void> {
    const r = await spawnCtl(this.ctl, side.cluster, ["member", "list", "-w", "json"], side.cwd, {}).done;
    const text = r.stdout.toString();
    const cluster = /"cluster_id":(\d+)/.exec(text)?.[1];
    // Member names are m1, m2, ... in endpoint order (test/harness/launch.ts).
    const byName = new Map([...text.matchAll(/"ID":(\d+),"name":"([^"]*)"/g)].map((m) => [m[2] ?? "", BigInt(m[1] ?? "0")]));
    const members = side.cluster.endpoints.map((_, i) => byName.get(`m${i + 1}`));
    if (r.code !== 0 || cluster === undefined || members.some((m) => m === undefined)) {
      throw new Error(`${side.impl}: cannot read IDs from member list: ${text} ${r.stderr}`);
    }
    side.ids = [BigInt(cluster), ...members.map((m) => m ?? 0n)];
  }

  private expand(side: Side, args: readonly string[]): string[] {
    return args.map((x) => x
      .replace(/\{lease(\d+)\}/g, (_, i: string) => side.leases[Number(i)] ?? `missing-lease-${i}`)
      .replace(/\{leaseLast\}/g, side.leases[side.leases.length - 1] ?? "missing-lease"));
  }

  /** Runs one command on both sides and asserts equal normalised stdout, stderr and exit code. */
  async same(args: readonly string[], given: StepOpts & CtlOpts = {}): Promise<{ judge: CliResult; ours: CliResult; text: string }> {
    const opts = { ...given, normalise: [...(given.normalise ?? []), ...implied(args)] };
    const [ra, rb] = await Promise.all([
      spawnCtl(this.ctl, this.judge.cluster, this.expand(this.judge, args), this.judge.cwd, opts).done,
      spawnCtl(this.ctl, this.ours.cluster, this.expand(this.ours, args), this.ours.cwd, opts).done,
    ]);
    this.captureLease(args, ra, this.judge);
    this.captureLease(args, rb, this.ours);
    const what = `etcdctl ${args.join(" ")}`;
    const a = this.normaliseOut(this.judge, ra.stdout, opts);
    const b = this.normaliseOut(this.ours, rb.stdout, opts);
    assert.equal(b, a, `stdout of \`${what}\` (ours, then etcd); stderr of ours: ${rb.stderr.slice(0, 1500)}; of etcd: ${ra.stderr.slice(0, 1500)}`);
    assert.equal(this.normaliseErr(this.ours, rb.stderr, opts), this.normaliseErr(this.judge, ra.stderr, opts), `stderr of \`${what}\``);
    assert.equal(rb.code, ra.code, `exit code of \`${what}\` (etcd's stderr: ${ra.stderr})`);
    if (opts.code !== undefined) assert.equal(ra.code, opts.code, `etcd's exit code of \`${what}\` (stderr: ${ra.stderr})`);
    return { judge: ra, ours: rb, text: a };
  }

  /** Runs one command on one side, without comparing (for steps where the two are known to differ). */
  runOn(which: "judge" | "ours", args: readonly string[], opts: RunOpts = {}): Promise<CliResult> {
    const side = which === "judge" ? this.judge : this.ours;
    return spawnCtl(this.ctl, side.cluster, this.expand(side, args), side.cwd, opts).done;
  }

  /** Runs one command on both sides without comparing (for polling until both reach a state). */
  async both(args: readonly string[], opts: CtlOpts = {}): Promise<{ judge: string; ours: string }> {
    const [ra, rb] = await Promise.all([
      spawnCtl(this.ctl, this.judge.cluster, this.expand(this.judge, args), this.judge.cwd, opts).done,
      spawnCtl(this.ctl, this.ours.cluster, this.expand(this.ours, args), this.ours.cwd, opts).done,
    ]);
    return { judge: ra.stdout.toString(), ours: rb.stdout.toString() };
  }

  /** Starts a long-running command (watch, lock, elect) on both sides. */
  startBoth(args: readonly string[], opts: CtlOpts = {}): { judge: Running; ours: Running } {
    return {
      judge: spawnCtl(this.ctl, this.judge.cluster, this.expand(this.judge, args), this.judge.cwd, { timeoutMs: 60_000, ...opts }),
      ours: spawnCtl(this.ctl, this.ours.cluster, this.expand(this.ours, args), this.ours.cwd, { timeoutMs: 60_000, ...opts }),
    };
  }

  /** Normalised output of a running command on one side (N12 applies: a stream is served by whichever member the client picked). */
  text(which: "judge" | "ours", raw: string | Buffer, given: StepOpts = {}): string {
    const opts = { ...given, normalise: [...(given.normalise ?? []), "answered-by" as const] };
    return this.normaliseOut(which === "judge" ? this.judge : this.ours, typeof raw === "string" ? Buffer.from(raw, "latin1") : raw, opts);
  }

  private captureLease(args: readonly string[], r: CliResult, side: Side): void {
    const i = args.indexOf("lease");
    if (i < 0 || args[i + 1] !== "grant" || r.code !== 0) return;
    const out = r.stdout.toString("latin1");
    const hex = /lease ([0-9a-f]{16}) granted/.exec(out)?.[1];
    const dec = /"ID"\s*:\s*(\d+)/.exec(out)?.[1];
    if (hex) side.leases.push(hex);
    else if (dec) side.leases.push(BigInt(dec).toString(16).padStart(16, "0"));
    else throw new Error(`${side.impl}: no lease ID in ${out}`);
  }

  private normaliseOut(side: Side, raw: Buffer, opts: StepOpts): string {
    let t: string;
    if (opts.protobuf !== undefined) {
      // N10: decode, then hide header fields N2/N3 cover before comparing as JSON.
      try {
        const msg = fromBinary(opts.protobuf, raw) as { header?: { clusterId: bigint; memberId: bigint; raftTerm: bigint } };
        if (msg.header) { msg.header.clusterId = 0n; msg.header.memberId = 0n; msg.header.raftTerm = 0n; }
        t = toJsonString(opts.protobuf, msg as never);
      } catch (err) {
        t = `undecodable protobuf (${String(err)}): ${raw.toString("hex")}`;
      }
    } else {
      t = raw.toString("latin1");
    }
    return this.normaliseText(side, t, opts);
  }

  private normaliseText(side: Side, text: string, opts: StepOpts): string {
    let t = collapseTable(text); // N11 first, so the patterns below see single spaces

    // N1
    side.cluster.endpoints.forEach((ep, i) => {
      t = t.split(ep).join(`<ep${i}>`).split(ep.replace(/^https?:\/\//, "")).join(`<ep${i}>`);
    });
    side.cluster.peerUrls.forEach((u, i) => {
      t = t.split(u).join(`<peer${i}>`);
    });
    // N2 (decimal and hex)
    side.ids.forEach((id, i) => {
      const name = i === 0 ? "<cluster>" : `<member${i - 1}>`;
      t = t.split(id.toString()).join(name).split(id.toString(16)).join(name);
    });
    // N3
    t = t.replace(/"raft_term":\d+/g, '"raft_term":<term>')
      .replace(/"(raftIndex|raftTerm|raftAppliedIndex)":\d+/g, '"$1":<raft>')
      .replace(/^"(RaftTerm|RaftIndex|RaftAppliedIndex)" : \d+$/gm, '"$1" : <raft>')
      // endpoint status, simple and table: isLeader, isLearner, then term, index, applied index
      .replace(/((?:, |\| )(?:true|false)(?:,| \|) (?:true|false)(?:,| \|) )\d+((?:,| \|) )\d+((?:,| \|) )\d+/g, "$1<raft>$2<raft>$3<raft>");
    // N4
    side.leases.forEach((hex, i) => {
      const n = BigInt("0x" + hex);
      t = t.split(hex).join(`<lease${i}>`).split(n.toString()).join(`<lease${i}>`).split(n.toString(16)).join(`<lease${i}>`);
    });
    const n = opts.normalise ?? [];
    if (n.includes("answered-by")) t = t.replace(/("member_id":|"MemberID" : )<member\d+>/g, "$1<member>");
    if (n.includes("session")) t = t.replace(/\/[0-9a-f]{1,16}\b/g, "/<session-lease>"); // etcdctl prints name/%x: no padding
    if (n.includes("took")) {
      t = t.replace(/took = \S+/g, "took = <took>")
        .replace(/"took":"[^"]*"/g, '"took":"<took>"')
        .replace(/"Took" : \S+/g, '"Took" : <took>')
        .replace(/^(\s*\|.*\|\s*(?:true|false) \| )\S+( \|)/gm, "$1<took>$2")
        .replace(/\]\. took \S+$/gm, "]. took <took>");
    }
    if (n.includes("dbsize")) {
      t = t.replace(/"(dbSize|dbSizeInUse|dbSizeQuota|totalSize|hash)":\d+/g, '"$1":<dbsize>')
        .replace(/^"(DBSize|DBSizeInUse|DBSizeQuota)" : \d+$/gm, '"$1" : <dbsize>')
        .replace(/\b\d+(\.\d+)? (B|kB|MB|GB)\b/g, "<dbsize>")
        .replace(/\b\d+%/g, "<pct>");
    }
    if (n.includes("version")) {
      t = t.replace(/"version":"3\.6\.\d+"/g, '"version":"<version>"')
        .replace(/^"Version" : "3\.6\.\d+"$/gm, '"Version" : "<version>"')
        .replace(/(<member\d+>(?:,| \|) )3\.6\.\d+/g, "$1<version>");
    }
    if (n.includes("ttl")) {
      t = t.replace(/remaining\(-?\d+s\)/g, "remaining(<ttl>s)")
        .replace(/"ttl":-?\d+/g, '"ttl":<ttl>')
        .replace(/^"TTL" : -?\d+$/gm, '"TTL" : <ttl>');
    }
    if (n.includes("rows")) t = sortRows(t);
    return t;
  }

  private normaliseErr(side: Side, text: string, opts: StepOpts): string {
    // N9
    const lines = text.split("\n").filter((l) => !l.startsWith('{"level":'));
    const t = lines.join("\n").replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ([A-Z]) \| /gm, "<ts> $1 | ");
    return this.normaliseText(side, t, opts);
  }
}

/** The normalisations a command implies whatever the case asks (N12, N13). */
function implied(args: readonly string[]): Normalisation[] {
  const out: Normalisation[] = [];
  const ep = args.indexOf("endpoint");
  const perEndpoint = ep >= 0 && (args[ep + 1] === "status" || args[ep + 1] === "hashkv");
  if (!perEndpoint) out.push("answered-by");
  const sub = (a: string, b: string): boolean => args.some((x, i) => x === a && args[i + 1] === b);
  if (sub("member", "list") || sub("endpoint", "health") || sub("lease", "list") || args.includes("--cluster")) out.push("rows");
  return out;
}

/**
 * N13: one JSON document per line has the objects of each array sorted (as
 * text); other output has its lines sorted. Applied after the other
 * normalisations, so equal rows are equal text.
 */
export function sortRows(text: string): string {
  const trimmed = text.trim();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) return text.split("\n").map(sortJsonArrays).join("\n");
  const lines = text.split("\n");
  const last = lines[lines.length - 1] === "" ? lines.pop() : undefined;
  lines.sort();
  if (last !== undefined) lines.push(last);
  return lines.join("\n");
}

/** Sorts the elements of every array of objects in a JSON text (which may hold placeholders such as <member0>). */
function sortJsonArrays(text: string): string {
  let i = 0;
  // Reads one value starting at i (object, array, string, or a bare token) and returns its normalised text.
  const value = (): string => {
    const c = text[i];
    if (c === "{") return group("{", "}", false);
    if (c === "[") return group("[", "]", true);
    if (c === '"') {
      const start = i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      i++;
      return text.slice(start, i);
    }
    const start = i;
    while (i < text.length && !",:]}".includes(text[i] ?? "")) i++;
    return text.slice(start, i);
  };
  // An object ("k":v,...) or array (v,...); arrays whose elements are objects get sorted.
  const group = (open: string, close: string, isArray: boolean): string => {
    i++;
    const parts: string[] = [];
    while (i < text.length && text[i] !== close) {
      if (text[i] === ",") { i++; continue; }
      let part = value();
      if (text[i] === ":") { i++; part += ":" + value(); }
      parts.push(part);
    }
    i++;
    if (isArray && parts.every((p) => p.startsWith("{"))) parts.sort();
    return open + parts.join(",") + close;
  };
  let out = "";
  while (i < text.length) out += "{[".includes(text[i] ?? "") ? value() : text[i++];
  return out;
}

/** Waits until `cond` holds, polling every 50 ms; throws after timeoutMs. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
