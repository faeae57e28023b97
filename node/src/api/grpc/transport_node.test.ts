// The gRPC server runs on our own HTTP/2 (h2.ts) unless ETCDTS_GRPC_TRANSPORT=node
// asks for node:http2. This keeps the fallback honest: the gRPC server's own tests
// and the client port's listener tests run again here with node:http2 underneath.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

test("the gRPC server and listener tests pass on node:http2 too (ETCDTS_GRPC_TRANSPORT=node)", () => {
  const files = [join(here, "server.test.js"), join(here, "watch.test.js"), join(here, "..", "listener.test.js")];
  // Without NODE_TEST_CONTEXT, which would make the inner runner talk to ours instead of printing TAP.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const r = spawnSync(process.execPath, ["--test", "--test-reporter=tap", ...files], {
    env: { ...env, ETCDTS_GRPC_TRANSPORT: "node" },
    encoding: "utf8",
    timeout: 300_000,
  });
  const summary = (r.stdout ?? "").split("\n").filter((l) => /^# (tests|pass|fail)/.test(l));
  assert.equal(r.status, 0, `node:http2 run failed:\n${(r.stdout ?? "").split("\n").filter((l) => /not ok/.test(l)).join("\n")}\n${r.stderr}`);
  assert.ok(summary.some((l) => /^# pass [1-9]/.test(l)), `no test ran: ${summary.join(" ")}`);
});
