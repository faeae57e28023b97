// Which implementations a conformance run compares.
//
// CONFORMANCE_TARGETS=etcd,ours (the default) runs every case against real
// etcd and against our server and requires identical answers. A target that
// cannot run is reported loudly; under CI=true a missing target is a failure
// (see conformance/framework.ts), never a silent skip.

import { banner, etcdBinaries, isCI, oursAvailability } from "./provision.js";
import type { Impl } from "./member.js";

export interface TargetStatus {
  readonly impl: Impl;
  readonly available: boolean;
  /** Why it is unavailable ("MISSING: ..."). */
  readonly reason?: string;
}

let cache: TargetStatus[] | undefined;
let bannerShown = false;

/** Requested targets from CONFORMANCE_TARGETS, each with its availability. */
export function conformanceTargets(): TargetStatus[] {
  if (cache) return cache;
  const raw = (process.env["CONFORMANCE_TARGETS"] ?? "etcd,ours").split(",").map((s) => s.trim()).filter(Boolean);
  const out: TargetStatus[] = [];
  for (const name of raw) {
    if (name !== "etcd" && name !== "ours") throw new Error(`CONFORMANCE_TARGETS: unknown target "${name}" (use etcd, ours)`);
    if (out.some((t) => t.impl === name)) continue;
    if (name === "etcd") {
      const b = etcdBinaries(); // throws under CI when missing
      out.push(b.ok ? { impl: "etcd", available: true } : { impl: "etcd", available: false, reason: b.reason });
    } else {
      const o = oursAvailability();
      out.push(o.ok ? { impl: "ours", available: true } : { impl: "ours", available: false, reason: o.reason });
    }
  }
  if (out.length === 0) throw new Error("CONFORMANCE_TARGETS names no target");
  const missing = out.filter((t) => !t.available);
  if (missing.length > 0 && !bannerShown) {
    bannerShown = true;
    banner([
      `CONFORMANCE TARGET(S) MISSING: ${missing.map((t) => t.impl).join(", ")}`,
      ...missing.map((t) => `${t.impl}: ${t.reason ?? ""}`),
      isCI ? "CI=true: this is a FAILURE" : "not CI: the cases run against the remaining target(s) only",
    ]);
  }
  cache = out;
  return out;
}

export function availableTargets(): Impl[] {
  return conformanceTargets().filter((t) => t.available).map((t) => t.impl);
}
