// The Dockerfile, checked without a Docker engine: BuildKit's own parser and linter (a tiny
// Go program beside this file, built from the Go module proxy) read it, and the facts it
// reports are held against what the operator and the chart run.

import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../harness/provision.js";
import { MEMBER_COMMAND } from "../../operator/src/desired.js";
import { IMAGES } from "../kube/kubelet/pure.js";

interface Report {
  warnings: { rule: string; message: string; line: number }[];
  metaArgs: Record<string, string | null>;
  stages: { name: string; base: string; user: string; cmd: string[]; cmdJson: boolean; expose: string[] }[];
}

const srcDir = join(repoRoot, "test", "dockerfile");

function buildChecker(): string {
  const h = createHash("sha256");
  for (const f of ["main.go", "go.mod", "go.sum"]) h.update(readFileSync(join(srcDir, f)));
  const bin = join(tmpdir(), `etcd-ts-dockerfile-check-${h.digest("hex").slice(0, 12)}`);
  if (existsSync(bin)) return bin;
  const r = spawnSync("go", ["build", "-o", bin, "."], { cwd: srcDir, encoding: "utf8", timeout: 10 * 60_000 });
  if (r.status !== 0) throw new Error(`building the Dockerfile checker failed (needs Go 1.26 and the module proxy): ${r.error?.message ?? ""} ${r.stderr}`);
  return bin;
}

function check(file: string): Report {
  const r = spawnSync(buildChecker(), [file], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`dockerfile-check ${file}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Report;
}

describe("Dockerfile (BuildKit parser and linter)", () => {
  let rep: Report;
  before(() => { rep = check(join(repoRoot, "Dockerfile")); });

  test("the checker itself reports lint findings (it can fail)", () => {
    const bad = join(tmpdir(), `etcd-ts-bad-${process.pid}.Dockerfile`);
    writeFileSync(bad, "FROM node:24 AS Build\nMAINTAINER someone\n");
    const r = check(bad);
    rmSync(bad);
    assert.deepEqual(r.warnings.map((w) => w.rule).sort(), ["MaintainerDeprecated", "StageNameCasing"]);
  });

  test("no lint warnings", () => {
    assert.deepEqual(rep.warnings, []);
  });

  test("the base is a Node LTS image pinned to an exact release", () => {
    const base = rep.metaArgs["NODE_IMAGE"] ?? "";
    const m = /^node:(\d+)\.(\d+)\.(\d+)-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/.exec(base);
    assert.ok(m, `NODE_IMAGE ${base} is not node:MAJOR.MINOR.PATCH-<debian>-slim`);
    assert.equal(Number(m[1]) % 2, 0, "LTS lines are the even majors");
    for (const s of rep.stages) assert.ok(s.base === "${NODE_IMAGE}" || rep.stages.some((o) => o.name === s.base), `stage ${s.name} is FROM ${s.base}`);
  });

  test("multi-stage; the runtime runs as a numeric non-root user", () => {
    assert.ok(rep.stages.length >= 3);
    const runtime = rep.stages.find((s) => s.name === "runtime");
    assert.ok(runtime);
    assert.match(runtime.user, /^[1-9][0-9]*:[1-9][0-9]*$/);
    for (const s of rep.stages.filter((x) => x.base === "runtime")) assert.equal(s.user, "", `${s.name} must not switch user back`);
  });

  test("the default target runs the member server with exactly the command the operator's pods use", () => {
    const last = rep.stages[rep.stages.length - 1];
    assert.ok(last);
    assert.equal(last.base, "runtime");
    assert.equal(last.cmdJson, true);
    assert.deepEqual(last.cmd, [...MEMBER_COMMAND]);
    assert.deepEqual(last.expose, ["2379", "2380"]);
  });

  test("target operator runs the operator with exactly the command the chart's Deployment uses", () => {
    const op = rep.stages.find((s) => s.name === "operator");
    assert.ok(op);
    assert.equal(op.cmdJson, true);
    const deployment = readFileSync(join(repoRoot, "charts", "etcd-ts-operator", "templates", "deployment.yaml"), "utf8");
    const m = /command: (\[.*\])/.exec(deployment);
    assert.ok(m?.[1]);
    assert.deepEqual(op.cmd, JSON.parse(m[1]));
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { scripts: Record<string, string> };
    assert.equal(`node /app/${pkg.scripts["operator"]?.replace(/^node /, "")}`, op.cmd.join(" "));
  });

  test("the bed's kubelet runs each image as its Dockerfile stage does (CMD, USER)", () => {
    const runtime = rep.stages.find((s) => s.name === "runtime");
    for (const [image, stage] of [["etcd-ts", rep.stages[rep.stages.length - 1]], ["etcd-ts-operator", rep.stages.find((s) => s.name === "operator")]] as const) {
      const bed = IMAGES[image];
      assert.ok(bed && stage && runtime, image);
      assert.deepEqual([...bed.cmd], stage.cmd, image);
      assert.equal(`${bed.uid}:${bed.gid}`, runtime.user, image);
    }
  });
});
