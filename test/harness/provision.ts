// Finds (and, as root, installs) the real etcd 3.4 binaries that serve as the
// oracle, and the compiled etcd-ts server. Policy:
//   - etcd: $ETCD_BIN / $ETCDCTL_BIN, else /usr/bin/etcd and /usr/bin/etcdctl.
//     If missing and we are root, `apt-get install -y etcd-server etcd-client`
//     (after `apt-get update` if the first try fails).
//     Still missing: with CI=true that is an error (a CI run must never
//     silently skip the oracle); otherwise a loud banner and the caller skips.
//   - ours: $ETCDTS_MAIN, else <repo>/dist/node/src/main.js.

import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";

/** Repository root, found from this compiled file (dist/test/harness/provision.js) or the source. */
export const repoRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "tsconfig.json"))) return dir;
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
})();

export const isCI: boolean = /^(1|true|yes)$/i.test(process.env["CI"] ?? "");

export function banner(lines: string[]): void {
  const width = Math.max(...lines.map((l) => l.length)) + 4;
  const bar = "!".repeat(width);
  const body = lines.map((l) => `!! ${l.padEnd(width - 6)} !!`).join("\n");
  process.stderr.write(`\n${bar}\n${body}\n${bar}\n\n`);
}

export interface EtcdBinaries {
  readonly etcd: string;
  readonly etcdctl: string;
}

export type Availability<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

function etcdPaths(): EtcdBinaries {
  return {
    etcd: process.env["ETCD_BIN"] || "/usr/bin/etcd",
    etcdctl: process.env["ETCDCTL_BIN"] || "/usr/bin/etcdctl",
  };
}

function aptInstall(): string {
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const lock = ["-o", "DPkg::Lock::Timeout=600"];
  const run = (args: string[]) => spawnSync("apt-get", [...lock, ...args], { env, encoding: "utf8", timeout: 15 * 60_000 });
  let r = run(["install", "-y", "etcd-server", "etcd-client"]);
  if (r.status !== 0) {
    run(["update"]);
    r = run(["install", "-y", "etcd-server", "etcd-client"]);
  }
  return `apt-get install exited ${r.status ?? r.signal}: ${(r.stderr ?? "").slice(-400)}`;
}

let etcdCache: Availability<EtcdBinaries> | undefined;

/**
 * The real etcd binaries, installing them as root if needed. Throws under
 * CI=true when they cannot be had; otherwise reports unavailability (after a
 * loud banner) so the caller can skip.
 */
export function etcdBinaries(): Availability<EtcdBinaries> {
  if (etcdCache) return etcdCache;
  let bins = etcdPaths();
  let note = "";
  const present = () => existsSync(bins.etcd) && existsSync(bins.etcdctl);
  if (!present() && typeof process.getuid === "function" && process.getuid() === 0 && !process.env["ETCD_BIN"]) {
    process.stderr.write("[harness] etcd not found; running apt-get install -y etcd-server etcd-client\n");
    note = aptInstall();
    bins = etcdPaths();
  }
  if (present()) {
    etcdCache = { ok: true, value: bins };
  } else {
    const reason = `real etcd not available (looked for ${bins.etcd} and ${bins.etcdctl}) ${note}`.trim();
    if (isCI) throw new Error(`CI=true and ${reason}: the conformance oracle is required in CI`);
    banner(["REAL ETCD IS MISSING: conformance checks against etcd are SKIPPED", reason]);
    etcdCache = { ok: false, reason };
  }
  return etcdCache;
}

/** Path of our compiled server entry point. */
export function oursMain(): string {
  return process.env["ETCDTS_MAIN"] || join(repoRoot, "dist", "node", "src", "main.js");
}

/** Whether our server has been built. Never throws; the caller decides what MISSING means. */
export function oursAvailability(): Availability<string> {
  const main = oursMain();
  return existsSync(main) ? { ok: true, value: main } : { ok: false, reason: `MISSING: ${main} does not exist (server not built yet)` };
}
