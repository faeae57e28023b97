// k8s.io/apiserver's pkg/storage/etcd3 tests (the storage layer kube-apiserver
// runs on), compiled by storage/build.sh with a test server that starts a real
// server process per test, run against real etcd 3.6 and against etcd-ts.
// Real etcd is the oracle: every Go test that passes on it must pass on ours.
// Per-test results go to test/k8s/storage/bin/results-<target>.json.
//
// STORAGE_TEST_RUN=<regexp> narrows the run (go test -run); STORAGE_TARGETS=etcd,ours.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { oursMain, repoRoot } from "../harness/provision.js";
import { parseGoTest, type Outcome } from "./gotest.js";
import { tool } from "./tools.js";

const dir = join(repoRoot, "test", "k8s", "storage");
const bin = join(dir, "bin", "etcd3.test");

function build(): void {
  const r = spawnSync("bash", [join(dir, "build.sh")], { stdio: "inherit", timeout: 60 * 60_000 });
  if (r.status !== 0) throw new Error(`test/k8s/storage/build.sh failed (${r.status ?? r.signal})`);
}

function runSuite(target: string, serverCommand: string): Promise<{ code: number | null; out: string; seconds: number }> {
  const work = mkdtempSync(join(tmpdir(), "etcdts-storage-"));
  const args = ["-test.v", "-test.timeout=45m", "-test.parallel=2"];
  const only = process.env["STORAGE_TEST_RUN"];
  if (only) args.push(`-test.run=${only}`);
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: work, env: { ...process.env, ETCD_TEST_SERVER: serverCommand, ETCD_TEST_ENDPOINTS: "" }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    mkdirSync(join(dir, "bin"), { recursive: true });
    const log = join(dir, "bin", `output-${target}.log`);
    writeFileSync(log, "");
    const take = (c: Buffer): void => {
      out += c.toString("utf8");
      appendFileSync(log, c);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", reject);
    child.on("close", (code) => {
      rmSync(work, { recursive: true, force: true });
      resolve({ code, out, seconds: (Date.now() - t0) / 1000 });
    });
  });
}

/**
 * Tests of features etcd 3.6 does not have. k8s.io/apiserver v0.37 is tested
 * upstream against an embedded etcd 3.7, whose KV.RangeStream these tests
 * require (real etcd 3.6 answers "unknown method RangeStream for service
 * etcdserverpb.KV", Unimplemented). They may fail on etcd 3.6; any other
 * failure on etcd 3.6 fails this suite.
 */
export const needsEtcd37 = /^(TestGetListStreamMultiChunk|TestWatchChanSyncStream\w*|TestWatchChanSync\/RangeStream)(\/|$)/;

/** Whether a failure is explained by needsEtcd37: the test itself, or a parent of one that is. */
function explainedBy37(name: string, failed: readonly string[]): boolean {
  return needsEtcd37.test(name) || failed.some((f) => f.startsWith(`${name}/`) && needsEtcd37.test(f));
}

const targets = (process.env["STORAGE_TARGETS"] ?? "etcd,ours").split(",").map((s) => s.trim()).filter(Boolean);
const results = new Map<string, Map<string, Outcome>>();

describe("k8s.io/apiserver pkg/storage/etcd3 tests", { concurrency: 1 }, () => {
  it("build the test binary (go test -c)", () => {
    build();
  });

  for (const target of targets) {
    it(`run against ${target}`, async () => {
      const command = target === "etcd" ? tool("etcd") : target === "ours" ? `${process.execPath} ${oursMain()}` : undefined;
      assert.ok(command, `STORAGE_TARGETS: unknown target ${target}`);
      const r = await runSuite(target, command);
      const per = parseGoTest(r.out);
      results.set(target, per);
      mkdirSync(join(dir, "bin"), { recursive: true });
      writeFileSync(join(dir, "bin", `results-${target}.json`), JSON.stringify({ seconds: r.seconds, exit: r.code, tests: Object.fromEntries(per) }, null, 2));
      const failed = [...per].filter(([, o]) => o === "FAIL").map(([n]) => n);
      process.stderr.write(`[storage ${target}] ${per.size} tests in ${r.seconds.toFixed(0)} s: ` +
        `${[...per.values()].filter((o) => o === "PASS").length} pass, ${failed.length} fail, ${[...per.values()].filter((o) => o === "SKIP").length} skip\n`);
      for (const n of failed) process.stderr.write(`[storage ${target}] FAIL ${n}\n`);
      assert.ok(per.size > 0, `no test results parsed (exit ${r.code}):\n${r.out.slice(-3000)}`);
      if (target === "etcd") {
        const unexplained = failed.filter((n) => !explainedBy37(n, failed));
        assert.deepEqual(unexplained, [], "tests fail against real etcd 3.6 (see test/k8s/storage/bin/output-etcd.log)");
      }
    });
  }

  if (targets.includes("etcd") && targets.includes("ours")) {
    it("every Go test that passes on etcd 3.6 passes on ours", () => {
      const etcd = results.get("etcd");
      const ours = results.get("ours");
      assert.ok(etcd && ours, "a run did not complete");
      const regressions = [...etcd].filter(([n, o]) => o === "PASS" && ours.get(n) !== "PASS").map(([n]) => `${n}: ${ours.get(n) ?? "not run"}`);
      assert.deepEqual(regressions, [], "see test/k8s/storage/bin/output-ours.log");
    });
  }
});
