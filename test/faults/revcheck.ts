// Revisions must tell the same story as the values.
//
// Every write in the recorded traffic is its own transaction, so each
// acknowledged put (and successful compare-and-swap) created exactly one
// revision of the store. From the values (unique per run) and the revisions
// the store reported:
//   1. no two acknowledged writes were given the same revision;
//   2. every read of a value reports, as mod_revision, the revision its write
//      was acknowledged with (or, for a write whose answer was lost, one and
//      the same revision in every read of it);
//   3. a write acknowledged before another write was invoked has the smaller
//      revision (revisions follow real time, as linearizability demands).
// The linearizability check sees only values; these see the numbers clients
// (and kube-apiserver's resourceVersions) depend on.

import { describeEvent, type KvEvent } from "./kvcheck.js";

export interface RevCheckResult {
  readonly ok: boolean;
  readonly reason?: string;
  readonly writes: number;
}

function written(e: KvEvent): string | undefined {
  if (e.op.kind === "put") return e.op.value;
  if (e.op.kind === "cas" && (e.outcome !== "ok" || e.op.succeeded === true)) return e.op.value;
  return undefined;
}

export function checkRevisions(history: readonly KvEvent[]): RevCheckResult {
  const writes = history.filter((e) => e.outcome === "ok" && e.rev !== undefined && written(e) !== undefined);
  const byRev = new Map<bigint, KvEvent>();
  for (const w of writes) {
    const other = byRev.get(w.rev!);
    if (other !== undefined) return { ok: false, writes: writes.length, reason: `two acknowledged writes got revision ${w.rev}:\n  ${describeEvent(other)}\n  ${describeEvent(w)}` };
    byRev.set(w.rev!, w);
  }
  // The revision each value was written at: from its write's answer, else from the first read of it.
  const revOf = new Map<string, { rev: bigint; from: KvEvent }>();
  for (const w of writes) revOf.set(`${w.key}\u0000${written(w)}`, { rev: w.rev!, from: w });
  for (const r of history) {
    if (r.outcome !== "ok" || r.op.kind !== "get" || r.op.observed === null || r.rev === undefined) continue;
    const k = `${r.key}\u0000${r.op.observed}`;
    const known = revOf.get(k);
    if (known === undefined) revOf.set(k, { rev: r.rev, from: r });
    else if (known.rev !== r.rev) {
      return { ok: false, writes: writes.length, reason: `value ${JSON.stringify(r.op.observed)} of ${r.key} was read at mod_revision ${r.rev} but ${known.from.op.kind === "get" ? "read" : "written"} at ${known.rev}:\n  ${describeEvent(known.from)}\n  ${describeEvent(r)}` };
    }
  }
  // Real-time order: for revisions a < b, b must not have returned before a was invoked.
  // Walking from the largest revision down, keep the earliest return among larger revisions.
  const sorted = [...writes].sort((a, b) => (a.rev! < b.rev! ? -1 : a.rev! > b.rev! ? 1 : 0));
  let minRetAfter: KvEvent | undefined;
  for (let i = sorted.length - 1; i >= 0; i--) {
    const w = sorted[i]!;
    if (minRetAfter !== undefined && minRetAfter.ret < w.invoke) {
      return { ok: false, writes: writes.length, reason: `revisions go against real time: a write acknowledged before another was invoked has the larger revision:\n  ${describeEvent(minRetAfter)} (revision ${minRetAfter.rev})\n  ${describeEvent(w)} (revision ${w.rev})` };
    }
    if (minRetAfter === undefined || w.ret < minRetAfter.ret) minRetAfter = w;
  }
  return { ok: true, writes: writes.length };
}
