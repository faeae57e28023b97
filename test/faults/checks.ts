// The checks every fault scenario ends with.

import { setTimeout as sleep } from "node:timers/promises";
import { GrpcCallError, GrpcConn } from "../harness/grpc.js";
import { KV } from "../../node/gen/etcdserverpb/rpc_pb.js";
import { checkKvHistory, type KvEvent } from "./kvcheck.js";
import { checkRevisions } from "./revcheck.js";
import type { Cluster } from "./cluster.js";
import type { Recorder } from "./recorder.js";

/**
 * The recorded history (with the final reads the recorder appended last) must
 * be linearizable. The history is checked twice so a failure says which
 * guarantee broke: without the final reads (a stale or impossible read while
 * the faults were on), then with them (an acknowledged write that did not
 * survive).
 */
export function checkHistory(rec: Recorder): string {
  const during = rec.history.filter((e) => e.note !== "final read");
  const r1 = checkKvHistory(during);
  if (!r1.ok) throw new Error(`linearizability violated during the faults (stale or impossible read, or a write applied twice) on ${r1.key}: ${r1.reason}`);
  const r2 = checkKvHistory(rec.history);
  if (!r2.ok) throw new Error(`acknowledged write lost: the final linearizable reads contradict the history of ${r2.key}: ${r2.reason}`);
  const r3 = checkRevisions(rec.history);
  if (!r3.ok) throw new Error(`revisions inconsistent with the values: ${r3.reason}`);
  return `linearizable: ${r2.searched} operations searched (${r2.explored} states); revisions consistent over ${r3.writes} writes; ${checkSensitivity(rec.history)}`;
}

/**
 * Shows the check could have failed on this very history: one final read is
 * made stale (it returns a value an acknowledged write definitely replaced
 * before the read began) and the checker must refuse the result.
 */
function checkSensitivity(history: readonly KvEvent[]): string {
  const writes = (e: KvEvent): boolean => e.outcome === "ok" && (e.op.kind === "put" || e.op.kind === "delete" || (e.op.kind === "cas" && e.op.succeeded === true));
  for (const final of history) {
    if (final.note !== "final read" || final.op.kind !== "get") continue;
    const current = final.op.observed;
    const replaced = history.find(
      (p) => p.key === final.key && p.outcome === "ok" && p.op.kind === "put" && p.op.value !== current &&
        history.some((w) => w !== p && w.key === final.key && writes(w) && w.invoke > p.ret && w.ret < final.invoke),
    );
    if (replaced === undefined || replaced.op.kind !== "put") continue;
    const stale = replaced.op.value;
    const mutated = history.map((e) => (e === final ? { ...e, op: { kind: "get" as const, observed: stale } } : e));
    if (checkKvHistory(mutated).ok) throw new Error(`checker self-test: a stale final read of ${final.key} (${JSON.stringify(stale)}) was accepted`);
    return `self-test: a stale final read of ${final.key} is refused`;
  }
  throw new Error("checker self-test: no key has an acknowledged put that was later overwritten (too little traffic to check anything)");
}

interface Snapshot {
  readonly revision: bigint;
  readonly kvs: string;
}

const ALL = { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) };

function render(kvs: readonly { key: Uint8Array; value: Uint8Array; createRevision: bigint; modRevision: bigint; version: bigint }[]): string {
  const dec = new TextDecoder();
  return kvs.map((kv) => `${dec.decode(kv.key)}=${dec.decode(kv.value)}@c${kv.createRevision}m${kv.modRevision}v${kv.version}`).join("\n");
}

/** The leader's linearizable view of the whole key space. */
async function leaderView(cluster: Cluster, leader: number): Promise<Snapshot> {
  const res = await cluster.members[leader]!.admin().unary(KV.method.range, { ...ALL, serializable: false }, { deadlineMs: 5000 });
  return { revision: res.header?.revision ?? 0n, kvs: render(res.kvs) };
}

/**
 * Every running member catches up: its serializable (local) read of the
 * whole key space at the leader's revision equals the leader's linearizable
 * read, key, value and revisions alike. Waits up to `boundMs` per member for
 * it to reach that revision (a member behind answers "future revision").
 */
export async function checkConverged(cluster: Cluster, leader: number, boundMs = 60_000): Promise<string> {
  const want = await leaderView(cluster, leader);
  const notes: string[] = [];
  for (const m of cluster.members) {
    if (!m.running || m.index === leader) continue;
    const conn = new GrpcConn(m.grpcTarget, { deadlineMs: 3000 });
    const t0 = performance.now();
    let last = "";
    try {
      for (;;) {
        try {
          const res = await conn.unary(KV.method.range, { ...ALL, serializable: true, revision: want.revision });
          const got = render(res.kvs);
          if (got !== want.kvs) {
            throw new Error(`${m.name} disagrees with the leader ${cluster.members[leader]!.name} at revision ${want.revision}:\n--- leader\n${want.kvs}\n--- ${m.name}\n${got}`);
          }
          notes.push(`${m.name} caught up in ${Math.round(performance.now() - t0)} ms`);
          break;
        } catch (e) {
          if (!(e instanceof GrpcCallError)) throw e;
          last = `gRPC ${e.code}: ${e.details}`;
          if (performance.now() - t0 > boundMs) throw new Error(`${m.name} did not reach revision ${want.revision} within ${boundMs} ms (last answer: ${last})`);
          await sleep(200);
        }
      }
    } finally {
      conn.close();
    }
  }
  return `all members equal the leader at revision ${want.revision} (${want.kvs.split("\n").filter(Boolean).length} keys); ${notes.join(", ")}`;
}

/** Puts `count` small values outside the recorded keys as fast as `parallel` clients can, through `member`. */
export async function fill(cluster: Cluster, member: number, count: number, parallel = 32): Promise<number> {
  const enc = new TextEncoder();
  const conns = Array.from({ length: 4 }, () => new GrpcConn(cluster.members[member]!.grpcTarget, { deadlineMs: 10_000 }));
  let next = 0;
  let done = 0;
  try {
    await Promise.all(
      Array.from({ length: parallel }, async (_, w) => {
        while (next < count) {
          const i = next++;
          await conns[w % conns.length]!.unary(KV.method.put, { key: enc.encode(`/filler/${i % 64}`), value: enc.encode(`f${i}`) });
          done++;
        }
      }),
    );
  } finally {
    for (const c of conns) c.close();
  }
  return done;
}
