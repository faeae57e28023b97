// The normaliser: the ONLY place where two servers' answers are allowed to
// differ. Keep it explicit and small; every rule says why the difference is
// legitimate. Anything not listed here must be byte-for-byte equal.

import type { TranscriptEntry } from "./client.js";

export interface NormContext {
  /** Decimal cluster and member IDs of the member under test (server-chosen). */
  readonly clusterId: string;
  readonly memberId: string;
  /** Lease IDs the server chose (grant with ID 0), decimal, in grant order. */
  readonly leaseIds: readonly string[];
  /** "127.0.0.1:PORT" of the client and peer listeners (free ports differ per run). */
  readonly clientAddr: string;
  readonly peerAddr: string;
}

/** Rule 1: server-chosen identifiers, replaced by a placeholder naming what they are. */
const ID_KEYS = new Set(["cluster_id", "clusterId", "member_id", "memberId", "leader", "memberID", "ID", "id", "lease"]);

/** Rule 2: values that depend on the storage engine or the raft log, not on the API contract. */
const VOLATILE_KEYS = new Set([
  "raft_term", "raftTerm", // how many elections it took to start
  "raftIndex", "raftAppliedIndex", // raft log length (internal entries differ)
  "dbSize", "dbSizeInUse", // backend file sizes
  // (HashKV's hash is not here: ours computes etcd's exact hash, see node/src/mvcc/hash.ts.)
]);

/** Rule 3: fields etcd 3.4 (the oracle here) does not have but newer etcd does; ours may send them. */
const NEWER_THAN_ORACLE = new Set(["storageVersion", "dbSizeQuota", "downgradeInfo", "hash_revision", "hashRevision"]);

/** Rule 4: per operation. Status.version is the server's own version; TimeToLive's remaining TTL depends on elapsed time. */
const PER_OP: Record<string, (key: string, value: unknown) => unknown> = {
  status: (k, v) => (k === "version" ? "<version>" : v),
  leaseTimeToLive: (k, v) => ((k === "TTL" || k === "ttl") && Number(v) > 0 ? "<remaining>" : v),
};

/** Rule 5: orders that etcd leaves unspecified (Go map iteration): lease lists and a lease's keys. */
const UNORDERED_ARRAYS = new Set(["leases", "keys"]);

/**
 * Rule 7: how events are split into watch responses. etcd guarantees whole
 * revisions per response but may batch several revisions (history catch-up
 * sends one batch, live events one response per revision), and the header
 * revision of a batch is the store revision at send time. So consecutive
 * event-only responses of one watch are merged (events concatenated) and
 * their header revision is dropped; test bodies assert live-event header
 * revisions explicitly.
 */
function watchResponseOf(e: TranscriptEntry): { resp: Record<string, unknown>; header: string; events: string; id: string } | undefined {
  const out = e.out as Record<string, unknown> | null;
  if (!out || typeof out !== "object") return undefined;
  if (e.op === "watch.next" && out["ok"] && typeof out["ok"] === "object") return { resp: out["ok"] as Record<string, unknown>, header: "header", events: "events", id: "watch_id" };
  if (e.op === "watch.line" && out["result"] && typeof out["result"] === "object") return { resp: out["result"] as Record<string, unknown>, header: "header", events: "events", id: "watch_id" };
  if (e.op === "watch.line" && "Events" in out) return { resp: out, header: "Header", events: "Events", id: "" };
  return undefined;
}

function isEventOnly(w: { resp: Record<string, unknown>; events: string }): boolean {
  const r = w.resp;
  const evs = r[w.events];
  const truthy = (k: string) => r[k] === true || (r[k] !== undefined && r[k] !== null && r[k] !== false && String(r[k]) !== "0");
  return Array.isArray(evs) && evs.length > 0 && !truthy("created") && !truthy("canceled") && !truthy("Created") && !truthy("Canceled") &&
    !truthy("compact_revision") && !truthy("CompactRevision");
}

export function mergeWatchEvents(entries: readonly TranscriptEntry[]): TranscriptEntry[] {
  const out: TranscriptEntry[] = [];
  for (const e of entries) {
    const w = watchResponseOf(e);
    if (!w || !isEventOnly(w)) {
      out.push(e);
      continue;
    }
    const copy = structuredClone(e) as TranscriptEntry;
    const cw = watchResponseOf(copy)!;
    const h = cw.resp[cw.header];
    if (h && typeof h === "object") delete (h as Record<string, unknown>)["revision"];
    const prev = out[out.length - 1];
    const pw = prev ? watchResponseOf(prev) : undefined;
    if (prev && pw && prev.op === copy.op && isEventOnly(pw) && String(pw.resp[pw.id] ?? "0") === String(cw.resp[cw.id] ?? "0")) {
      (pw.resp[pw.events] as unknown[]).push(...(cw.resp[cw.events] as unknown[]));
      continue;
    }
    out.push(copy);
  }
  return sortWatcherRuns(out);
}

/**
 * Rule 8: when one change is delivered to several watchers of a stream, etcd
 * sends their responses in Go map order (unspecified). Within a run of
 * consecutive event-only responses, order by watch id (stable, so each
 * watcher's own responses keep their order).
 */
function sortWatcherRuns(entries: TranscriptEntry[]): TranscriptEntry[] {
  const out: TranscriptEntry[] = [];
  let run: TranscriptEntry[] = [];
  const flush = () => {
    const idOf = (e: TranscriptEntry) => {
      const w = watchResponseOf(e)!;
      return BigInt(String(w.resp[w.id] ?? "0"));
    };
    out.push(...run.map((e, i) => ({ e, i })).sort((a, b) => (idOf(a.e) < idOf(b.e) ? -1 : idOf(a.e) > idOf(b.e) ? 1 : a.i - b.i)).map((x) => x.e));
    run = [];
  };
  for (const e of entries) {
    const w = watchResponseOf(e);
    if (w && isEventOnly(w) && w.id !== "") {
      if (run.length > 0 && run[0]!.op !== e.op) flush();
      run.push(e);
      continue;
    }
    flush();
    out.push(e);
  }
  flush();
  return out;
}

export function normaliseEntries(rawEntries: readonly TranscriptEntry[], ctx: NormContext): unknown[] {
  const entries = mergeWatchEvents(rawEntries);
  const ids = new Map<string, string>([
    [ctx.clusterId, "<cluster_id>"],
    [ctx.memberId, "<member_id>"],
  ]);
  ctx.leaseIds.forEach((id, i) => ids.set(id, `<lease#${i + 1}>`));
  const hexIds = ctx.leaseIds.filter((id) => BigInt(id) >= 0n && BigInt(id).toString(16).length >= 8);

  // Rule 6: strings that embed ports, timestamps or a client's random UUID (etcdctl's logs).
  const str = (s: string): string => {
    let out = s.split(ctx.clientAddr).join("<client-addr>").split(ctx.peerAddr).join("<peer-addr>");
    out = out.replace(/"ts":"[^"]*"/g, '"ts":"<ts>"').replace(/client-[0-9a-f-]{36}/g, "client-<uuid>");
    // etcdctl 3.6 reports how long a defragmentation took (a Go duration).
    out = out.replace(/\. took [0-9][0-9.a-zµ]*/g, ". took <duration>");
    // etcdctl 3.6's client logs name its resolver by a Go pointer and its own ephemeral port.
    out = out.replace(/etcd-endpoints:\/\/0x[0-9a-f]+\//g, "etcd-endpoints://<ptr>/").replace(/LocalAddr: '127\.0\.0\.1:\d+'/g, "LocalAddr: '<local-addr>'");
    for (const id of hexIds) out = out.split(BigInt(id).toString(16)).join(ids.get(id) ?? id);
    return out;
  };

  const walk = (op: string, key: string, v: unknown): unknown => {
    if (ID_KEYS.has(key) && (typeof v === "string" || typeof v === "number" || typeof v === "bigint")) {
      const p = ids.get(String(v));
      if (p !== undefined) return p;
    }
    if (VOLATILE_KEYS.has(key) && v !== null && typeof v !== "object") return `<${key}>`;
    const perOp = PER_OP[op];
    if (perOp && v !== null && typeof v !== "object") v = perOp(key, v);
    if (typeof v === "string") return str(v);
    if (typeof v === "bigint") return v.toString();
    if (Array.isArray(v)) {
      const arr = v.map((x) => walk(op, "", x));
      if (UNORDERED_ARRAYS.has(key)) arr.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
      return arr;
    }
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) {
        if (NEWER_THAN_ORACLE.has(k)) continue;
        out[k] = walk(op, k, (v as Record<string, unknown>)[k]);
      }
      return out;
    }
    return v;
  };

  return entries.map((e) => walk(e.op, "", e));
}
