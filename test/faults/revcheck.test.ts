// The revision checks accept a consistent history and refuse each kind of
// inconsistency they exist for.

import { test } from "node:test";
import assert from "node:assert/strict";
import { checkRevisions } from "./revcheck.js";
import type { KvEvent, KvOp } from "./kvcheck.js";

let id = 0;
function ev(op: KvOp, invoke: number, ret: number, rev?: bigint, outcome: "ok" | "unknown" = "ok", key = "k"): KvEvent {
  return { id: id++, client: 0, key, op, invoke, ret, outcome, ...(rev !== undefined ? { rev } : {}) };
}

test("consistent revisions are accepted", () => {
  const r = checkRevisions([
    ev({ kind: "put", value: "a" }, 0, 1, 2n),
    ev({ kind: "get", observed: "a" }, 2, 3, 2n),
    ev({ kind: "cas", expect: "a", value: "b", succeeded: true }, 4, 5, 3n),
    ev({ kind: "put", value: "c" }, 4, 6, 4n, "ok", "other"),
    ev({ kind: "put", value: "lost-answer" }, 7, 8, undefined, "unknown"),
    ev({ kind: "get", observed: "lost-answer" }, 9, 10, 5n),
    ev({ kind: "get", observed: "lost-answer" }, 11, 12, 5n),
  ]);
  assert.equal(r.ok, true, r.reason);
  assert.equal(r.writes, 3);
});

test("two writes with one revision are refused", () => {
  const r = checkRevisions([ev({ kind: "put", value: "a" }, 0, 1, 2n), ev({ kind: "put", value: "b" }, 0, 1, 2n, "ok", "other")]);
  assert.equal(r.ok, false);
  assert.match(r.reason ?? "", /two acknowledged writes got revision 2/);
});

test("a read reporting another mod_revision than the write's is refused", () => {
  const r = checkRevisions([ev({ kind: "put", value: "a" }, 0, 1, 2n), ev({ kind: "get", observed: "a" }, 2, 3, 7n)]);
  assert.equal(r.ok, false);
  assert.match(r.reason ?? "", /read at mod_revision 7 but written at 2/);
});

test("two reads of an unanswered write disagreeing on its revision are refused", () => {
  const r = checkRevisions([
    ev({ kind: "put", value: "x" }, 0, 1, undefined, "unknown"),
    ev({ kind: "get", observed: "x" }, 2, 3, 5n),
    ev({ kind: "get", observed: "x" }, 4, 5, 6n),
  ]);
  assert.equal(r.ok, false);
  assert.match(r.reason ?? "", /read at mod_revision 6 but read at 5/);
});

test("revisions against real time are refused", () => {
  const r = checkRevisions([ev({ kind: "put", value: "a" }, 0, 1, 9n), ev({ kind: "put", value: "b" }, 2, 3, 4n, "ok", "other")]);
  assert.equal(r.ok, false);
  assert.match(r.reason ?? "", /against real time/);
  // Concurrent writes may take either order.
  assert.equal(checkRevisions([ev({ kind: "put", value: "a" }, 0, 5, 9n), ev({ kind: "put", value: "b" }, 2, 3, 4n, "ok", "other")]).ok, true);
});
