// Our member's log: one JSON object per line, and each names its component once
// (pino repeats a key that a child and its parent both bind, and a reader of the
// JSON then keeps only one of the two).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { startMember } from "../harness/member.js";

test("every log line of our member is one JSON object that names its component once", async () => {
  const m = await startMember({ impl: "ours", name: "logs" });
  try {
    const lines = readFileSync(m.logFile, "utf8").split("\n").filter((l) => l.trim() !== "");
    assert.ok(lines.length > 5, `the member logged: ${lines.length} lines`);
    const components = new Set<string>();
    for (const line of lines) {
      const obj = JSON.parse(line) as { component?: string };
      const times = line.split('"component":').length - 1;
      assert.ok(times <= 1, `component named ${times} times: ${line}`);
      if (obj.component !== undefined) components.add(obj.component);
    }
    // Start-up logs from the server itself and from its subsystems.
    for (const c of ["server", "raft", "wal"]) assert.ok(components.has(c), `a line from ${c}; seen: ${[...components].join(", ")}`);
  } finally {
    await m.dispose();
  }
});
