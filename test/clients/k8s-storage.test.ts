// Kubernetes' own storage tests (k8s.io/apiserver/pkg/storage/etcd3, the
// version matching KUBERNETES_VERSION) against real etcd 3.6 and against ours,
// through test/clients/k8s-storage/run.sh (see its README). Every test and
// subtest must have the same outcome on ours as on the judge. Tests that fail
// on etcd 3.6 too (they need etcd 3.7's KV.RangeStream) are listed in the
// README; they are compared like the rest, never dropped.
// Cost: the first run compiles the apiserver test binary (up to ~20 min on a
// loaded 2-core machine), then about 3 min against etcd and 7 against ours.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";

import { repoRoot } from "../harness/provision.js";
import { referenceTools } from "../harness/cluster.js";

const tools = referenceTools();
const script = join(repoRoot, "test", "clients", "k8s-storage", "run.sh");

interface Outcome {
  results: Map<string, string>;
  packageAction: string | undefined;
  stderr: string;
  /** The last output lines of each test (a hang's goroutine dump lands here). */
  output: Map<string, string[]>;
}

function runStorageTests(target: "etcd" | "ours"): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn("bash", [script, target, "-count=1", "-timeout", "30m", "-json"], { stdio: ["ignore", "pipe", "pipe"] });
    const results = new Map<string, string>();
    const output = new Map<string, string[]>();
    let packageAction: string | undefined;
    let buf = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith("{")) continue;
        const e = JSON.parse(line) as { Action?: string; Test?: string; Output?: string };
        if (e.Action === "output" && e.Output !== undefined) {
          const key = e.Test ?? "(package)";
          const lines = output.get(key) ?? [];
          lines.push(e.Output);
          if (lines.length > 60) lines.shift();
          output.set(key, lines);
        }
        if (e.Action === "pass" || e.Action === "fail" || e.Action === "skip") {
          if (e.Test) results.set(e.Test, e.Action);
          else packageAction = e.Action;
        }
      }
    });
    child.stderr.on("data", (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    child.on("close", () => resolve({ results, packageAction, stderr, output }));
  });
}

describe("k8s.io/apiserver etcd3 storage tests: real etcd 3.6 vs ours", { skip: !tools.ok }, () => {
  it("every test and subtest has the same outcome on ours as on etcd 3.6", { timeout: 90 * 60_000 }, async () => {
    const judge = await runStorageTests("etcd");
    assert.ok(judge.results.size > 0, `no test ran against etcd:\n${judge.stderr}`);
    const passed = [...judge.results.values()].filter((a) => a === "pass").length;
    assert.ok(passed > judge.results.size / 2, `most tests must pass against real etcd (${passed}/${judge.results.size})`);
    const ours = await runStorageTests("ours");
    const differ: string[] = [];
    for (const name of new Set([...judge.results.keys(), ...ours.results.keys()])) {
      const a = judge.results.get(name);
      const b = ours.results.get(name);
      if (a !== b) differ.push(`${name}: etcd ${a ?? "did not run"}, ours ${b ?? "did not run"}`);
    }
    // For a difference, show ours' last output: a test still running at the end (a hang that
    // hit -timeout) has its goroutine dump there.
    const first = differ.sort()[0]?.split(":")[0] ?? "";
    const tail = [...(ours.output.get(first) ?? []), ...(ours.output.get("(package)") ?? [])].join("").slice(-6000);
    assert.deepEqual(differ, [], `outcomes that differ; ours' output for ${first}:\n${tail}\nours' stderr tail:\n${ours.stderr}`);
  });
});
