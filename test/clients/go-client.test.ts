// The Go client (go.etcd.io/etcd/client/v3 and its concurrency package, the
// version pinned in tools/versions.env) against real etcd 3.6 and against ours.
// test/clients/go/main.go prints a transcript that depends only on etcd's
// semantics; it must exit 0 against both and print the same transcript.
// The program is built here with `go build` into .tmp/ (git-ignored).

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";

import { banner, isCI, repoRoot } from "../harness/provision.js";
import { referenceTools, startCluster } from "../harness/cluster.js";
import type { Cluster } from "../harness/cluster.js";

const source = join(repoRoot, "test", "clients", "go");
const binary = join(repoRoot, ".tmp", "clients-go", "clientsuite");

function goBinary(): string | undefined {
  const candidates = [process.env["GO_BIN"], "/usr/local/go/bin/go"].filter((x): x is string => !!x);
  for (const c of candidates) if (existsSync(c)) return c;
  const r = spawnSync("go", ["version"], { encoding: "utf8" });
  return r.status === 0 ? "go" : undefined;
}

const go = goBinary();
const tools = referenceTools();
const ready = (() => {
  if (go !== undefined) return tools.ok;
  const reason = "Go is not installed (set GO_BIN or install Go 1.26): the Go client suite cannot be built";
  if (isCI) throw new Error(`CI=true and ${reason}`);
  banner(["GO CLIENT SUITE SKIPPED", reason]);
  return false;
})();

// The version the program is built against must be the one pinned for the toolchain.
function pinnedEtcd(): string {
  const r = spawnSync("bash", ["-c", `. ${JSON.stringify(join(repoRoot, "tools", "versions.env"))} && printf %s "$ETCD_VERSION"`], { encoding: "utf8" });
  return r.stdout.trim();
}

interface Run { stdout: string; stderr: string; code: number | null }

function runSuite(cluster: Cluster): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(binary, ["-endpoints", cluster.endpoints.join(",")], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
    child.on("close", (code) => { clearTimeout(timer); resolve({ stdout, stderr, code }); });
  });
}

describe("Go clientv3 suite: real etcd 3.6 vs ours", { skip: !ready }, () => {
  // Progress notifications every second, so WithProgressNotify has something to see.
  const flags = ["--watch-progress-notify-interval=1s"];
  let judge: Run;

  before(() => {
    mkdirSync(join(repoRoot, ".tmp", "clients-go"), { recursive: true });
    const mod = spawnSync("grep", ["-E", "^\\s*go.etcd.io/etcd/client/v3 ", join(source, "go.mod")], { encoding: "utf8" }).stdout;
    assert.match(mod, new RegExp(`go.etcd.io/etcd/client/v3 ${pinnedEtcd().replace(/\./g, "\\.")}\\b`), "go.mod must require the client at ETCD_VERSION from tools/versions.env");
    const r = spawnSync(go ?? "go", ["build", "-o", binary, "."], {
      cwd: source,
      encoding: "utf8",
      env: { ...process.env, GOFLAGS: "-mod=mod" },
      timeout: 15 * 60_000,
    });
    assert.equal(r.status, 0, `go build failed:\n${r.stderr}`);
  });

  it("passes every check against real etcd 3.6 (the judge)", async () => {
    const c = await startCluster("etcd", { extraFlags: flags });
    try {
      judge = await runSuite(c);
    } finally {
      await c.dispose();
    }
    assert.equal(judge.code, 0, `against etcd:\n${judge.stdout}\n${judge.stderr}`);
    assert.match(judge.stdout, /== done\n$/);
  });

  it("prints the same transcript against ours", async () => {
    assert.ok(judge, "the judge's run must come first");
    const c = await startCluster("ours", { extraFlags: flags });
    let ours: Run;
    try {
      ours = await runSuite(c);
    } finally {
      await c.dispose();
    }
    assert.equal(ours.stdout, judge.stdout, `transcript (ours, then etcd); ours' stderr:\n${ours.stderr}`);
    assert.equal(ours.code, 0, `exit code against ours; stderr:\n${ours.stderr}`);
  });
});
