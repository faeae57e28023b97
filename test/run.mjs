// Runs every compiled test file (dist/**/*.test.js) with Node's test runner.
// Usage: node test/run.mjs [substring-filter ...]
// Node 20's --test does not expand globs, so the files are listed here.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk("dist", []).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s))).sort();
if (files.length === 0) {
  console.error("test/run.mjs: no test files found under dist/ (did the build run?)");
  process.exit(1);
}
// Test files run concurrently (TEST_CONCURRENCY, default 3): most of their time
// is spent waiting on servers they started and on fsync, not on the CPU.
const concurrency = Number(process.env.TEST_CONCURRENCY ?? 3);
if (!Number.isInteger(concurrency) || concurrency < 1) {
  console.error(`test/run.mjs: TEST_CONCURRENCY must be a positive integer, got ${process.env.TEST_CONCURRENCY}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
