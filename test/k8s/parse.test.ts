// The parsers the Kubernetes suites read real tools' output with.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseWatchEvents, splitJsonStream } from "./scenario.js";
import { parseGoTest } from "./gotest.js";

describe("k8s output parsers", () => {
  it("splits concatenated JSON values, braces inside strings included, and drops a partial tail", () => {
    const text = '{"a":"}{\\"x"}\n{\n  "b": {"c": 1}\n}{"partial": ';
    assert.deepEqual(splitJsonStream(text), ['{"a":"}{\\"x"}', '{\n  "b": {"c": 1}\n}']);
  });

  it("reads kubectl watch events", () => {
    const ev = (type: string, name: string, rv: string): string => JSON.stringify({ type, object: { kind: "ConfigMap", metadata: { name, resourceVersion: rv } } }, null, 4);
    assert.deepEqual(parseWatchEvents(`${ev("ADDED", "a", "5")}\n${ev("DELETED", "a", "7")}\n`), [
      { type: "ADDED", name: "a", rv: 5n },
      { type: "DELETED", name: "a", rv: 7n },
    ]);
  });

  it("reads go test -v results, subtests included", () => {
    const out = "=== RUN   TestA\n--- PASS: TestA (0.01s)\n    --- FAIL: TestB/sub_case (1.20s)\n--- SKIP: TestC (0.00s)\nok\n";
    assert.deepEqual([...parseGoTest(out)], [["TestA", "PASS"], ["TestB/sub_case", "FAIL"], ["TestC", "SKIP"]]);
  });
});
