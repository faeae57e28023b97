// Concurrent clients that record every operation they issue.
//
// Each client talks to one member (client c -> member c mod size, so a member
// that is killed or cut off has clients stuck on it, as real ones would be),
// one request at a time, on a small key set with values unique to the whole
// run. It records, with a clock shared by all clients, when each request was
// invoked and when its answer came back, and the outcome:
//   ok       the answer (with what a read saw, or whether a txn's compare held);
//   failed   a read that got an error (it changed nothing, so it is dropped);
//   failed   also a write that grpc-js never sent because it had no
//            connection to the member ("No connection established");
//   unknown  a write that got any other error or no answer before its deadline: it
//            may or may not have been applied (a timeout or a dropped
//            connection says nothing either way, and even a "leader changed"
//            answer can come after the entry was appended).
//
// Reads are linearizable Range requests (serializable: false), so the
// checker can hold them to "never stale".

import { GrpcConn, GrpcCallError } from "../harness/grpc.js";
import { Compare_CompareResult, Compare_CompareTarget, KV } from "../../node/gen/etcdserverpb/rpc_pb.js";
import type { KvEvent, KvOp } from "./kvcheck.js";
import type { Cluster } from "./cluster.js";

export const KEY_PREFIX = "/fault/";

const enc = new TextEncoder();
const dec = new TextDecoder();

export interface RecorderOptions {
  readonly clients: number;
  readonly keys: number;
  /** Per-request deadline. */
  readonly opTimeoutMs: number;
  /** Pause between one client's requests (keeps histories checkable). */
  readonly thinkMs: number;
  readonly seed: number;
  /**
   * Serializable (local) reads instead of linearizable ones. Only for the
   * self-test that shows the checks catch stale reads: a serializable read
   * may legitimately be stale, so such a history is expected to fail.
   */
  readonly serializableReads?: boolean;
}

export interface RecorderStats {
  readonly byKind: Record<string, { ok: number; unknown: number; failed: number }>;
  readonly total: number;
  readonly errors: Map<string, number>;
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

export class Recorder {
  readonly history: KvEvent[] = [];
  readonly keys: string[];
  private readonly errors = new Map<string, number>();
  private stopping = false;
  private loops: Promise<void>[] = [];
  private readonly conns: GrpcConn[] = [];
  private nextId = 0;
  private readonly t0 = performance.now();

  constructor(private readonly cluster: Cluster, readonly opts: RecorderOptions) {
    this.keys = Array.from({ length: opts.keys }, (_, i) => `${KEY_PREFIX}k${i}`);
  }

  /** Milliseconds since the recorder was made (the history's clock). */
  now(): number {
    return performance.now() - this.t0;
  }

  start(): void {
    for (let c = 0; c < this.opts.clients; c++) {
      const member = this.cluster.members[c % this.cluster.size]!;
      this.conns.push(new GrpcConn(member.grpcTarget, { deadlineMs: this.opts.opTimeoutMs }));
      this.loops.push(this.loop(c, rng(this.opts.seed * 1000 + c + 1)));
    }
  }

  /** Stops issuing; waits for requests in flight (each ends by its deadline). */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    for (const c of this.conns) c.close();
    this.conns.length = 0;
  }

  private async loop(client: number, rand: () => number): Promise<void> {
    // What this client last saw in each key, to aim its compare-and-swaps at a likely value.
    const lastSeen = new Map<string, string | null>();
    let n = 0;
    while (!this.stopping) {
      const key = this.keys[Math.floor(rand() * this.keys.length)]!;
      const value = `c${client}-${n++}`;
      const r = rand();
      const kind = r < 0.4 ? "get" : r < 0.75 ? "put" : r < 0.85 ? "delete" : "cas";
      const conn = this.conns[client]!;
      const sent = await this.issue(client, conn, key, kind, value, lastSeen);
      if (!sent && !this.stopping) {
        // grpc-js backs off reconnecting for up to minutes; a fresh channel tries at
        // once, so a restarted member gets its clients back as soon as it listens.
        conn.close();
        this.conns[client] = new GrpcConn(conn.target, { deadlineMs: this.opts.opTimeoutMs });
      }
      if (this.opts.thinkMs > 0) await new Promise((res) => setTimeout(res, this.opts.thinkMs * (0.5 + rand())));
    }
  }

  /** Issues and records one request; false when it was never sent (no connection). */
  private async issue(client: number, conn: GrpcConn, key: string, kind: "get" | "put" | "delete" | "cas", value: string, lastSeen: Map<string, string | null>): Promise<boolean> {
    const k = enc.encode(key);
    const invoke = this.now();
    let op: KvOp;
    let rev: bigint | undefined;
    try {
      switch (kind) {
        case "get": {
          const res = await conn.unary(KV.method.range, { key: k, serializable: this.opts.serializableReads === true });
          const kv = res.kvs[0];
          const observed = kv === undefined ? null : dec.decode(kv.value);
          lastSeen.set(key, observed);
          op = { kind: "get", observed };
          rev = kv?.modRevision;
          break;
        }
        case "put":
          rev = (await conn.unary(KV.method.put, { key: k, value: enc.encode(value) })).header?.revision;
          lastSeen.set(key, value);
          op = { kind: "put", value };
          break;
        case "delete":
          await conn.unary(KV.method.deleteRange, { key: k });
          lastSeen.set(key, null);
          op = { kind: "delete" };
          break;
        case "cas": {
          const expect = lastSeen.get(key) ?? null;
          const res = await conn.unary(KV.method.txn, casRequest(k, expect, value));
          if (res.succeeded) {
            rev = res.header?.revision;
            lastSeen.set(key, value);
            op = { kind: "cas", expect, value, succeeded: true };
          } else {
            const got = res.responses[0]?.response;
            const kv = got?.case === "responseRange" ? got.value.kvs[0] : undefined;
            const observed = kv === undefined ? null : dec.decode(kv.value);
            lastSeen.set(key, observed);
            op = { kind: "cas", expect, value, succeeded: false, observed };
          }
          break;
        }
      }
      this.history.push({ id: this.nextId++, client, key, op, invoke, ret: this.now(), outcome: "ok", ...(rev !== undefined ? { rev } : {}) });
      return true;
    } catch (e) {
      const note = e instanceof GrpcCallError ? `gRPC ${e.code}: ${e.details}` : String(e);
      const kindOfError = note.replace(/\d+(\.\d+)?m?s|\d{3,}/g, "N"); // counted without times and ports
      this.errors.set(kindOfError, (this.errors.get(kindOfError) ?? 0) + 1);
      const ret = this.now();
      if (kind === "get") {
        this.history.push({ id: this.nextId++, client, key, op: { kind: "get", observed: null }, invoke, ret, outcome: "failed", note });
      } else {
        const expect = lastSeen.get(key) ?? null;
        const wop: KvOp = kind === "put" ? { kind: "put", value } : kind === "delete" ? { kind: "delete" } : { kind: "cas", expect, value };
        const outcome = neverSent(e) ? "failed" : "unknown";
        this.history.push({ id: this.nextId++, client, key, op: wop, invoke, ret, outcome, note });
        if (outcome === "failed") return false;
        // After an unknown write this client no longer knows the key's value.
        lastSeen.delete(key);
      }
      return !neverSent(e);
    }
  }

  /**
   * Appends a linearizable read of every key, through a fresh client on the
   * leader, invoked after every recorded operation ended: the history's last
   * word on what survived.
   */
  async finalReads(leader: number, attempts = 20): Promise<void> {
    const conn = new GrpcConn(this.cluster.members[leader]!.grpcTarget, { deadlineMs: 5000 });
    try {
      for (const key of this.keys) {
        for (let a = 1; ; a++) {
          const invoke = this.now();
          try {
            const res = await conn.unary(KV.method.range, { key: enc.encode(key), serializable: false });
            const kv = res.kvs[0];
            const op: KvOp = { kind: "get", observed: kv === undefined ? null : dec.decode(kv.value) };
            this.history.push({ id: this.nextId++, client: -1, key, op, invoke, ret: this.now(), outcome: "ok", note: "final read", ...(kv ? { rev: kv.modRevision } : {}) });
            break;
          } catch (e) {
            if (a >= attempts) throw new Error(`final read of ${key} on ${this.cluster.members[leader]!.name} failed ${attempts} times: ${(e as Error).message}`);
            await new Promise((res) => setTimeout(res, 250));
          }
        }
      }
    } finally {
      conn.close();
    }
  }

  /** Acknowledged operations per member since time `t` (this recorder's clock), e.g. "m1 120, m2 98". */
  servedSince(t: number): string {
    const counts = this.cluster.members.map(() => 0);
    for (const e of this.history) if (e.outcome === "ok" && e.client >= 0 && e.invoke >= t) counts[e.client % this.cluster.size]!++;
    return counts.map((n, i) => `${this.cluster.members[i]!.name} ${n}`).join(", ");
  }

  stats(): RecorderStats {
    const byKind: Record<string, { ok: number; unknown: number; failed: number }> = {};
    for (const e of this.history) {
      const s = (byKind[e.op.kind] ??= { ok: 0, unknown: 0, failed: 0 });
      s[e.outcome]++;
    }
    return { byKind, total: this.history.length, errors: this.errors };
  }

  summary(): string {
    const s = this.stats();
    const kinds = Object.entries(s.byKind).map(([k, v]) => `${k} ${v.ok} ok/${v.unknown} unknown/${v.failed} failed`).join(", ");
    const errs = [...s.errors.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([e, n]) => `${n}x ${e}`).join("; ");
    return `${s.total} operations (${kinds})${errs ? `; errors: ${errs}` : ""}`;
  }
}

/**
 * grpc-js fails a call with UNAVAILABLE "No connection established" before
 * sending anything when its channel has no connection (the member is down or
 * refusing): such a write cannot have been applied.
 */
function neverSent(e: unknown): boolean {
  return e instanceof GrpcCallError && e.code === 14 && e.details.startsWith("No connection established");
}

/** A one-key compare-and-swap: if the key holds `expect` (absent: version 0) put `value`, else read the key. */
function casRequest(key: Uint8Array, expect: string | null, value: string) {
  return {
    compare: [
      expect === null
        ? { result: Compare_CompareResult.EQUAL, target: Compare_CompareTarget.VERSION, key, targetUnion: { case: "version" as const, value: 0n } }
        : { result: Compare_CompareResult.EQUAL, target: Compare_CompareTarget.VALUE, key, targetUnion: { case: "value" as const, value: enc.encode(expect) } },
    ],
    success: [{ request: { case: "requestPut" as const, value: { key, value: enc.encode(value) } } }],
    failure: [{ request: { case: "requestRange" as const, value: { key } } }],
  };
}
