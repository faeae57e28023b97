// A linearizability checker for histories of a key-value register map
// (Wing & Gong's search with Lowe's memoization, as in porcupine).
//
// Each operation has an invoke and a return time. It is linearizable if every
// operation can be given a point between its invoke and its return such that
// the operations, in that order, are a legal sequential history of the model.
//
// - Linearizability is compositional: the map is checked key by key.
// - A write whose outcome is unknown (timed out, its node crashed) may have taken
//   effect at any point after its invocation, or never: its return is +infinity
//   and the search may leave it out.
// - A failed operation definitely had no effect and is dropped (failed reads too:
//   a read changes nothing).

export type Outcome = "ok" | "failed" | "unknown";

export interface Operation {
  readonly id: string;
  readonly client: number;
  readonly key: string;
  readonly kind: "put" | "get";
  /** put: the value written. get: the value observed (null = no value), meaningful only when ok. */
  readonly value: string | null;
  readonly invoke: number;
  /** Return time; ignored (treated as +infinity) for unknown outcomes. */
  readonly ret: number;
  readonly outcome: Outcome;
}

export interface CheckResult {
  readonly ok: boolean;
  /** When not ok: the first key whose history has no linearization, and why. */
  readonly key?: string;
  readonly reason?: string;
  /** States visited (a measure of the search's work). */
  readonly explored: number;
}

interface Op {
  readonly op: Operation;
  readonly invoke: number;
  readonly ret: number;
  readonly required: boolean;
}

/** Checks the whole history; `budget` bounds the states explored per key. */
export function checkLinearizable(history: readonly Operation[], budget = 2_000_000): CheckResult {
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    if (op.outcome === "failed") continue;
    if (op.kind === "get" && op.outcome !== "ok") continue;
    let list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, (list = []));
    list.push(op);
  }
  let explored = 0;
  for (const key of [...byKey.keys()].sort()) {
    const r = checkKey(byKey.get(key)!, budget);
    explored += r.explored;
    if (!r.ok) return { ok: false, key, reason: r.reason, explored };
  }
  return { ok: true, explored };
}

function checkKey(history: readonly Operation[], budget: number): { ok: boolean; reason: string; explored: number } {
  const ops: Op[] = history
    .map((op) => ({
      op,
      invoke: op.invoke,
      ret: op.outcome === "ok" ? op.ret : Number.POSITIVE_INFINITY,
      required: op.outcome === "ok",
    }))
    .sort((a, b) => a.invoke - b.invoke);
  for (const o of ops) {
    if (o.required && !(o.ret > o.invoke)) throw new Error(`operation ${o.op.id} returns before it is invoked`);
  }
  const n = ops.length;
  const required = ops.filter((o) => o.required).length;

  // Depth-first search over (set of linearized ops, register value). `done` marks
  // linearized ops; the stack holds the choices made so far for backtracking.
  const done = new Uint8Array(n);
  const visited = new Set<string>();
  let explored = 0;
  let best = 0; // deepest prefix of required ops reached, for the failure report
  let bestValue: string | null = null;

  const stateKey = (value: string | null): string => {
    // Bitset of done ops as a compact string, plus the value.
    let s = "";
    for (let i = 0; i < n; i += 16) {
      let w = 0;
      for (let j = i; j < Math.min(n, i + 16); j++) if (done[j]) w |= 1 << (j - i);
      s += String.fromCharCode(w + 1);
    }
    return `${s}|${value === null ? "\u0000" : value}`;
  };

  interface Frame {
    value: string | null;
    candidates: number[];
    next: number;
    chosen: number; // op index linearized to reach the child frame, -1 if none
    requiredDone: number;
  }

  const candidatesOf = (): number[] => {
    // An op can be linearized next iff no other pending op returned before it was invoked.
    let minRet = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) if (!done[i] && ops[i]!.ret < minRet) minRet = ops[i]!.ret;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      if (done[i]) continue;
      if (ops[i]!.invoke >= minRet) break; // sorted by invoke
      out.push(i);
    }
    return out;
  };

  const stack: Frame[] = [{ value: null, candidates: candidatesOf(), next: 0, chosen: -1, requiredDone: 0 }];
  visited.add(stateKey(null));
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    if (f.requiredDone === required) return { ok: true, reason: "", explored };
    if (f.next >= f.candidates.length) {
      // Exhausted: backtrack.
      stack.pop();
      const parent = stack[stack.length - 1];
      if (parent !== undefined && parent.chosen >= 0) {
        done[parent.chosen] = 0;
        parent.chosen = -1;
      }
      continue;
    }
    const i = f.candidates[f.next++]!;
    const o = ops[i]!;
    let value = f.value;
    if (o.op.kind === "get") {
      if (o.op.value !== f.value) continue; // this read cannot go here
    } else {
      value = o.op.value;
    }
    done[i] = 1;
    const k = stateKey(value);
    if (visited.has(k)) {
      done[i] = 0;
      continue;
    }
    visited.add(k);
    explored++;
    if (explored > budget) {
      return { ok: false, reason: `search budget of ${budget} states exhausted (inconclusive)`, explored };
    }
    f.chosen = i;
    const requiredDone = f.requiredDone + (o.required ? 1 : 0);
    if (requiredDone > best) {
      best = requiredDone;
      bestValue = value;
    }
    stack.push({ value, candidates: candidatesOf(), next: 0, chosen: -1, requiredDone });
  }
  return {
    ok: false,
    reason:
      `no linearization: at most ${best} of ${required} completed operations could be ordered ` +
      `(value then: ${JSON.stringify(bestValue)}); history:\n${describeHistory(history)}`,
    explored,
  };
}

export function describeHistory(history: readonly Operation[]): string {
  return [...history]
    .sort((a, b) => a.invoke - b.invoke)
    .map((o) => {
      const ret = o.outcome === "ok" ? String(o.ret) : "inf";
      const what = o.kind === "put" ? `put(${o.key}, ${JSON.stringify(o.value)})` : `get(${o.key}) -> ${JSON.stringify(o.value)}`;
      return `  [${o.invoke}, ${ret}] c${o.client} ${what} ${o.outcome}`;
    })
    .join("\n");
}
