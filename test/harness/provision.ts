// Finds (and provisions) the real etcd that serves as the conformance oracle,
// and the compiled etcd-ts server. Policy:
//   - etcd: $ETCD_BIN / $ETCDCTL_BIN when set; else etcd 3.6 from the reference
//     toolchain (.tools/bin/etcd, .tools/bin/etcdctl), built on demand with
//     `bash tools/build.sh etcd etcdctl` (about two minutes cold; needs Go).
//     etcd 3.6 is the judge because our server presents itself as 3.6.
//     Without Go, outside CI: Debian's etcd 3.4 (/usr/bin/etcd, installed with
//     apt-get as root) with a loud banner, since 3.4 differs from 3.6 in a few
//     answers (AlarmResponse header, gateway error bodies).
//     With CI=true anything but 3.6 is an error: a CI run never silently
//     compares with the wrong oracle or skips it.
//   - ours: $ETCDTS_MAIN, else <repo>/dist/node/src/main.js.
//   - debianEtcd(): Debian's etcd 3.4 for the suites that compare with 3.4 on
//     purpose (etcdctl 3.4, the 3.4 gateway flavour).

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

const DEBIAN: EtcdBinaries = { etcd: "/usr/bin/etcd", etcdctl: "/usr/bin/etcdctl" };
const TOOLCHAIN: EtcdBinaries = { etcd: join(repoRoot, ".tools", "bin", "etcd"), etcdctl: join(repoRoot, ".tools", "bin", "etcdctl") };

const present = (b: EtcdBinaries) => existsSync(b.etcd) && existsSync(b.etcdctl);
const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0;

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

function buildToolchainEtcd(): string {
  process.stderr.write("[harness] etcd 3.6 not built yet; running `bash tools/build.sh etcd etcdctl` (needs Go; a few minutes cold)\n");
  const r = spawnSync("bash", [join(repoRoot, "tools", "build.sh"), "etcd", "etcdctl"], { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"], timeout: 30 * 60_000 });
  return r.status === 0 ? "" : `tools/build.sh etcd etcdctl exited ${r.status ?? r.signal}`;
}

let etcdCache: Availability<EtcdBinaries> | undefined;

/**
 * The reference etcd (3.6 unless ETCD_BIN says otherwise), provisioning it if
 * needed. Throws under CI=true when 3.6 cannot be had; otherwise falls back to
 * Debian's 3.4 or reports unavailability, after a loud banner.
 */
export function etcdBinaries(): Availability<EtcdBinaries> {
  if (etcdCache) return etcdCache;
  const envBin = process.env["ETCD_BIN"];
  if (envBin) {
    const b = { etcd: envBin, etcdctl: process.env["ETCDCTL_BIN"] || join(dirname(envBin), "etcdctl") };
    etcdCache = present(b) ? { ok: true, value: b } : { ok: false, reason: `ETCD_BIN=${envBin}: ${b.etcd} or ${b.etcdctl} missing` };
    if (!etcdCache.ok && isCI) throw new Error(`CI=true and ${etcdCache.reason}`);
    return etcdCache;
  }
  let note = present(TOOLCHAIN) ? "" : buildToolchainEtcd();
  if (present(TOOLCHAIN)) {
    etcdCache = { ok: true, value: TOOLCHAIN };
    return etcdCache;
  }
  if (isCI) throw new Error(`CI=true and etcd 3.6 could not be provisioned (${note}): the conformance oracle is required in CI`);
  const deb = debianEtcd();
  if (deb.ok) {
    banner(["REFERENCE ETCD 3.6 IS MISSING: comparing with Debian's etcd 3.4 instead", note, "3.4 differs from 3.6 in a few answers; run `npm run tools` for the real judge"]);
    etcdCache = deb;
    return etcdCache;
  }
  note = `${note}; ${deb.reason}`;
  banner(["REAL ETCD IS MISSING: conformance checks against etcd are SKIPPED", note]);
  etcdCache = { ok: false, reason: note };
  return etcdCache;
}

let debianCache: Availability<EtcdBinaries> | undefined;

/** Debian's etcd 3.4, installed with apt-get as root when missing. Throws under CI=true when it cannot be had. */
export function debianEtcd(): Availability<EtcdBinaries> {
  if (debianCache) return debianCache;
  let note = "";
  if (!present(DEBIAN) && isRoot()) {
    process.stderr.write("[harness] etcd 3.4 not found; running apt-get install -y etcd-server etcd-client\n");
    note = aptInstall();
  }
  if (present(DEBIAN)) debianCache = { ok: true, value: DEBIAN };
  else {
    const reason = `Debian's etcd not available (looked for ${DEBIAN.etcd} and ${DEBIAN.etcdctl}) ${note}`.trim();
    if (isCI) throw new Error(`CI=true and ${reason}`);
    banner(["DEBIAN ETCD 3.4 IS MISSING: comparisons with 3.4 are SKIPPED", reason]);
    debianCache = { ok: false, reason };
  }
  return debianCache;
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
