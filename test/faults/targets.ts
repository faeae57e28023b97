// The servers a fault scenario runs against, chosen with FAULT_TARGETS
// (comma-separated; default "etcd,ours"):
//
//   etcd     Debian's etcd 3.4 ($ETCD_BIN or /usr/bin/etcd; installed as root if missing)
//   etcd3.6  etcd 3.6 from the reference toolchain (.tools/bin/etcd, `npm run tools`)
//   ours     node dist/node/src/main.js
//
// A requested target that cannot run is a failure under CI=true and a loud
// banner otherwise (its scenarios then report why and do not run).

import { existsSync } from "node:fs";
import { join } from "node:path";
import { banner, etcdBinaries, isCI, oursMain, repoRoot } from "../harness/provision.js";

export type TargetName = "etcd" | "etcd3.6" | "ours";

export interface FaultTarget {
  readonly name: TargetName;
  /** argv to start one member (etcd flags are appended). */
  readonly argv: readonly string[];
  /** A log line proving a member caught up through a snapshot from the leader. */
  readonly snapshotEvidence: RegExp;
  /**
   * A leader's log line saying its link to the peer `peerHex` (member ID in hex)
   * is down, and raft told so: from then on the leader probes that peer rather
   * than pipelining appends to it.
   */
  readonly linkLostEvidence: (peerHex: string) => RegExp;
}

export type TargetStatus = { readonly name: TargetName; readonly ok: true; readonly target: FaultTarget } | { readonly name: TargetName; readonly ok: false; readonly reason: string };

// etcd with zap (JSON): {...,"msg":"peer became inactive (message send to peer failed)","peer-id":"<hex>",...};
// with capnslog: "rafthttp: peer <hex> became inactive (message send to peer failed)".
const etcdLinkLost = (peerHex: string) => new RegExp(`"msg":"peer became inactive[^"]*","peer-id":"${peerHex}"|peer ${peerHex} became inactive`);
// ours (pino): {"peer":"<hex>","reason":"...","msg":"lost outbound stream"}; a stream replaced by a
// newer one from the same peer is not a lost link (raft is not told).
const oursLinkLost = (peerHex: string) => new RegExp(`"peer":"${peerHex}","reason":"(?!replaced)[^"]*","queued":\\d+,"msg":"lost outbound stream"`);

function resolve(name: TargetName): TargetStatus {
  switch (name) {
    case "etcd": {
      const b = etcdBinaries(); // installs as root; throws under CI when impossible
      if (!b.ok) return { name, ok: false, reason: b.reason };
      return { name, ok: true, target: { name, argv: [b.value.etcd], snapshotEvidence: /applied incoming snapshot|applied snapshot/, linkLostEvidence: etcdLinkLost } };
    }
    case "etcd3.6": {
      const bin = process.env["ETCD36_BIN"] || join(repoRoot, ".tools", "bin", "etcd");
      if (!existsSync(bin)) return { name, ok: false, reason: `${bin} does not exist (build it with \`npm run tools\`)` };
      return { name, ok: true, target: { name, argv: [bin], snapshotEvidence: /applied incoming snapshot|applied snapshot/, linkLostEvidence: etcdLinkLost } };
    }
    case "ours": {
      const main = oursMain();
      if (!existsSync(main)) return { name, ok: false, reason: `${main} does not exist (run the build)` };
      return { name, ok: true, target: { name, argv: [process.execPath, main], snapshotEvidence: /snapshot/i, linkLostEvidence: oursLinkLost } };
    }
  }
}

let cache: TargetStatus[] | undefined;

export function faultTargets(): TargetStatus[] {
  if (cache) return cache;
  const raw = (process.env["FAULT_TARGETS"] ?? "etcd,ours").split(",").map((s) => s.trim()).filter(Boolean);
  const names: TargetName[] = [];
  for (const n of raw) {
    if (n !== "etcd" && n !== "etcd3.6" && n !== "ours") throw new Error(`FAULT_TARGETS: unknown target "${n}" (use etcd, etcd3.6, ours)`);
    if (!names.includes(n)) names.push(n);
  }
  if (names.length === 0) throw new Error("FAULT_TARGETS names no target");
  cache = names.map(resolve);
  const missing = cache.filter((t): t is Extract<TargetStatus, { ok: false }> => !t.ok);
  if (missing.length > 0) {
    banner([
      `FAULT TARGET(S) CANNOT RUN: ${missing.map((t) => t.name).join(", ")}`,
      ...missing.map((t) => `${t.name}: ${t.reason}`),
      isCI ? "CI=true: their scenarios FAIL" : "not CI: their scenarios report this and do not run",
    ]);
  }
  return cache;
}

/**
 * Our server runs multi-member clusters (Raft landed), so a refusal of
 * multi-member flags is a failure. FAULT_OURS_CLUSTERING=optional (for an old
 * build only) turns that refusal, recognised by the server's own message,
 * into a todo instead.
 */
export const oursClusteringRequired: boolean = (process.env["FAULT_OURS_CLUSTERING"] ?? "required") !== "optional";
export const clusteringRefusal = /clustering \(more than one member\) is not supported yet[^\n]*/;
