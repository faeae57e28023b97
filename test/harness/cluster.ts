// A "cluster" as the client suites see it: a list of client endpoints behind
// which one implementation (real etcd, the judge, or ours) serves.
//
// The client suites (test/clients/) take only what this module gives them, so
// that switching the harness from one member to several needs no change in a
// suite: they connect to every endpoint of the list and never assume a single
// member beyond what a case checks. ETCDTS_CLUSTER_SIZE chooses the size; the
// harness only starts one-member clusters today (Raft replication is being
// wired in), and refuses other sizes loudly rather than pretending.
//
// The judge is real etcd 3.6 from the reference toolchain (`npm run tools`,
// .tools/bin/etcd; $ETCD36_BIN wins), not Debian's 3.4 that the older
// conformance suites use.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { startMember } from "./member.js";
import type { Impl, Member } from "./member.js";
import { banner, debianEtcd, isCI, oursAvailability, repoRoot } from "./provision.js";
import type { Availability } from "./provision.js";

export interface Cluster {
  readonly impl: Impl;
  readonly members: readonly Member[];
  /** Client URLs, e.g. ["http://127.0.0.1:40123"], one per member. */
  readonly endpoints: readonly string[];
  /** Peer URLs, one per member. */
  readonly peerUrls: readonly string[];
  /** The same as host:port, for gRPC clients. */
  readonly grpcTargets: readonly string[];
  /** Stops every member and removes its temporary directories. */
  dispose(): Promise<void>;
}

export interface ClusterOptions {
  /** Members (default: $ETCDTS_CLUSTER_SIZE, else 1). */
  readonly size?: number;
  /** More etcd flags for every member. */
  readonly extraFlags?: readonly string[];
}

export function clusterSize(): number {
  const raw = process.env["ETCDTS_CLUSTER_SIZE"] ?? "1";
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`ETCDTS_CLUSTER_SIZE must be a positive integer, not ${JSON.stringify(raw)}`);
  return n;
}

/** The reference toolchain's bin folder ($ETCDTS_TOOLS_BIN, else <repo>/.tools/bin), as tools/env.sh defines it. */
export function toolsBin(): string {
  return process.env["ETCDTS_TOOLS_BIN"] || join(repoRoot, ".tools", "bin");
}

export interface ReferenceTools {
  /** etcd 3.6, the judge. */
  readonly etcd36: string;
  readonly etcdctl36: string;
  /** Debian's etcdctl 3.4 (test/harness/provision.ts). */
  readonly etcdctl34: string;
}

let toolsCache: Availability<ReferenceTools> | undefined;

/**
 * etcd 3.6 and etcdctl 3.6 and 3.4. Missing ones fail under CI=true and are
 * otherwise reported with a loud banner so the caller can skip.
 */
export function referenceTools(): Availability<ReferenceTools> {
  if (toolsCache) return toolsCache;
  const etcd36 = process.env["ETCD36_BIN"] || join(toolsBin(), "etcd");
  const etcdctl36 = process.env["ETCDCTL36_BIN"] || join(toolsBin(), "etcdctl");
  const debian = debianEtcd(); // etcdctl 3.4 is Debian's (etcdBinaries() is the 3.6 judge)
  const missing: string[] = [];
  if (!existsSync(etcd36)) missing.push(`${etcd36} (npm run tools)`);
  if (!existsSync(etcdctl36)) missing.push(`${etcdctl36} (npm run tools)`);
  if (!debian.ok) missing.push(debian.reason);
  const ours = oursAvailability();
  if (!ours.ok) missing.push(ours.reason);
  if (missing.length === 0 && debian.ok) {
    toolsCache = { ok: true, value: { etcd36, etcdctl36, etcdctl34: debian.value.etcdctl } };
  } else {
    const reason = `client suites need: ${missing.join("; ")}`;
    if (isCI) throw new Error(`CI=true and ${reason}`);
    banner(["CLIENT SUITES SKIPPED: reference tools missing", reason]);
    toolsCache = { ok: false, reason };
  }
  return toolsCache;
}

/** Starts a cluster of `impl` (real etcd 3.6 or ours) and waits until every member is ready. */
export async function startCluster(impl: Impl, opts: ClusterOptions = {}): Promise<Cluster> {
  const size = opts.size ?? clusterSize();
  if (size !== 1) {
    throw new Error(`startCluster: ${size}-member clusters are not in the harness yet (only 1); unset ETCDTS_CLUSTER_SIZE`);
  }
  const tools = referenceTools();
  if (!tools.ok) throw new Error(tools.reason);
  const m = await startMember({
    impl,
    name: "client-suite",
    extraFlags: opts.extraFlags ?? [],
    ...(impl === "etcd" ? { etcdBinary: tools.value.etcd36 } : {}),
  });
  const members = [m];
  return {
    impl,
    members,
    endpoints: members.map((x) => x.clientUrl),
    peerUrls: members.map((x) => x.peerUrl),
    grpcTargets: members.map((x) => x.grpcTarget),
    dispose: async () => {
      await Promise.all(members.map((x) => x.dispose()));
    },
  };
}
