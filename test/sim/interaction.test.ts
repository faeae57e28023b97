// Replays the raft scenarios in test/sim/testdata/*.txt. Each file is a script of
// commands with the exact trace they must produce (see interaction_env.ts).
//
// After an intended behaviour change, regenerate the traces and review the diff:
//   RAFT_REWRITE=1 node test/run.mjs interaction
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { runFile } from "./datadriven.js";
import { InteractionEnv } from "./interaction_env.js";

// Compiled to dist/test/sim/; the scenario files stay in the source tree.
const dir = fileURLToPath(new URL("../../../test/sim/testdata/", import.meta.url));
const rewrite = process.env["RAFT_REWRITE"] === "1";

for (const name of readdirSync(dir).filter((f) => f.endsWith(".txt")).sort()) {
  test(`raft interaction: ${name}`, () => {
    const env = new InteractionEnv();
    const { mismatches, cases } = runFile(join(dir, name), (tc) => env.handle(tc), rewrite);
    assert.ok(cases > 0, "no cases in file");
    if (mismatches.length > 0) {
      const first = mismatches[0]!;
      assert.fail(
        `${first.tc.pos}: ${first.tc.cmd} output differs (${mismatches.length} case(s) differ; rerun with RAFT_REWRITE=1 and review the diff)\n` +
          `--- expected\n${first.tc.expected}\n--- actual\n${first.actual}`,
      );
    }
  });
}
