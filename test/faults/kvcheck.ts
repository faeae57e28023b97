// Linearizability of a recorded key-value history, with writes whose outcome
// is unknown.
//
// The model is a map of registers: each key holds a value or nothing. The
// operations the fault clients issue each touch one key, so the history is
// checked key by key (linearizability is compositional) with a depth-first
// search over "which operations have taken effect, and what the register
// holds", memoizing states already explored (Wing & Gong's search with Lowe's
// memoization; porcupine does the same).
//
//   put(k, v)             -> register := v
//   delete(k)             -> register := absent (the deleted count is not used)
//   get(k) = v            -> legal only where the register holds v
//   cas(k, expect, v)     -> a one-key txn: if register == expect (absent
//                            compares as "version 0") then register := v and
//                            succeeded; else nothing changes and the txn's
//                            else-branch read observed the register
//
// Outcomes:
//   ok       the response arrived: the operation took effect exactly once,
//            between its invocation and its response;
//   unknown  a write that timed out or lost its connection: it may have taken
//            effect at any point after its invocation, or never (its response
//            time is +infinity and the search may leave it out);
//   failed   definitely had no effect (and a read that did not answer tells
//            nothing): dropped.
//
// One reduction keeps the search small when many writes are unknown: an
// unknown write whose value no read ever observed can be removed. If some
// linearization includes it, deleting it from that order leaves every
// observation legal (nothing observed its value, so nothing sat between it
// and the next write), and the register afterwards is the same.

export type Outcome = "ok" | "unknown" | "failed";

export type KvOp =
  | { readonly kind: "put"; readonly value: string }
  | { readonly kind: "delete" }
  | { readonly kind: "get"; readonly observed: string | null }
  | {
      readonly kind: "cas";
      readonly expect: string | null;
      readonly value: string;
      /** When ok: whether the compare held; when it did not, the value the else-branch read. */
      readonly succeeded?: boolean;
      readonly observed?: string | null;
    };

export interface KvEvent {
  readonly id: number;
  readonly client: number;
  readonly key: string;
  readonly op: KvOp;
  /** Milliseconds (any monotonic clock shared by all clients). */
  readonly invoke: number;
  readonly ret: number;
  readonly outcome: Outcome;
  /** Free text for reports (e.g. the error of an unknown or failed op). */
  readonly note?: string;
  /**
   * The store's revision for this operation, when ok: a put's or a successful
   * compare-and-swap's header revision (the revision it created); a read's
   * mod_revision of the value it saw. Checked by revcheck.ts.
   */
  readonly rev?: bigint;
}

export interface KvCheckResult {
  readonly ok: boolean;
  readonly key?: string;
  readonly reason?: string;
  /** States explored over all keys. */
  readonly explored: number;
  /** Operations actually searched (after dropping failed ops and unobserved unknown writes). */
  readonly searched: number;
}

interface Item {
  readonly ev: KvEvent;
  readonly invoke: number;
  readonly ret: number;
  readonly required: boolean;
}

/** Writes a value (puts and cas); null for other kinds. */
function writtenValue(op: KvOp): string | null {
  return op.kind === "put" || op.kind === "cas" ? op.value : null;
}

/** Values an operation saw in the register (reads and failed compares). */
function observedValues(ev: KvEvent): (string | null)[] {
  if (ev.outcome !== "ok") return [];
  const op = ev.op;
  if (op.kind === "get") return [op.observed];
  if (op.kind === "cas") return op.succeeded ? [op.expect] : [op.observed ?? null];
  return [];
}

/** The register after applying `ev` to `state`, or undefined if `ev` cannot take effect there. */
function step(state: string | null, ev: KvEvent): string | null | undefined {
  const op = ev.op;
  switch (op.kind) {
    case "put":
      return op.value;
    case "delete":
      return null;
    case "get":
      return op.observed === state ? state : undefined;
    case "cas":
      if (ev.outcome !== "ok") {
        // An unknown txn either found its expected value and wrote, or changed nothing
        // (which is the same as leaving it out, so only the first needs exploring).
        return state === op.expect ? op.value : undefined;
      }
      if (op.succeeded) return state === op.expect ? op.value : undefined;
      return state !== op.expect && state === (op.observed ?? null) ? state : undefined;
  }
}

export function checkKvHistory(history: readonly KvEvent[], budget = 5_000_000): KvCheckResult {
  const observed = new Set<string>();
  for (const ev of history) for (const v of observedValues(ev)) if (v !== null) observed.add(`${ev.key}\u0000${v}`);
  const byKey = new Map<string, KvEvent[]>();
  for (const ev of history) {
    if (ev.outcome === "failed") continue;
    if (ev.op.kind === "get" && ev.outcome !== "ok") continue;
    if (ev.outcome === "unknown") {
      const w = writtenValue(ev.op);
      if (w !== null && !observed.has(`${ev.key}\u0000${w}`)) continue;
    }
    let list = byKey.get(ev.key);
    if (list === undefined) byKey.set(ev.key, (list = []));
    list.push(ev);
  }
  let explored = 0;
  let searched = 0;
  for (const key of [...byKey.keys()].sort()) {
    const evs = byKey.get(key)!;
    searched += evs.length;
    const r = checkKey(evs, budget);
    explored += r.explored;
    if (!r.ok) return { ok: false, key, reason: r.reason, explored, searched };
  }
  return { ok: true, explored, searched };
}

function checkKey(history: readonly KvEvent[], budget: number): { ok: boolean; reason: string; explored: number } {
  const items: Item[] = history
    .map((ev) => ({ ev, invoke: ev.invoke, ret: ev.outcome === "ok" ? ev.ret : Number.POSITIVE_INFINITY, required: ev.outcome === "ok" }))
    .sort((a, b) => a.invoke - b.invoke || a.ret - b.ret);
  for (const it of items) {
    if (it.required && it.ret < it.invoke) throw new Error(`operation ${it.ev.id} returns before it is invoked`);
  }
  const n = items.length;
  const required = items.filter((i) => i.required).length;
  const done = new Uint8Array(n);
  const seen = new Set<string>();
  let explored = 0;
  let best = 0;
  let bestState: string | null = null;
  let bestBlocked: number[] = [];

  const memoKey = (state: string | null): string => {
    let s = "";
    for (let i = 0; i < n; i += 15) {
      let w = 0;
      for (let j = i; j < Math.min(n, i + 15); j++) if (done[j]) w |= 1 << (j - i);
      s += String.fromCharCode(w + 1);
    }
    return state === null ? `${s}\u0000` : `${s}\u0001${state}`;
  };

  // An op may take effect next iff it was invoked before every pending op's response.
  const candidates = (): number[] => {
    let minRet = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) if (!done[i] && items[i]!.ret < minRet) minRet = items[i]!.ret;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      if (done[i]) continue;
      if (items[i]!.invoke > minRet) break;
      out.push(i);
    }
    return out;
  };

  interface Frame {
    state: string | null;
    cands: number[];
    next: number;
    chosen: number;
    requiredDone: number;
  }
  const stack: Frame[] = [{ state: null, cands: candidates(), next: 0, chosen: -1, requiredDone: 0 }];
  seen.add(memoKey(null));
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    if (f.requiredDone === required) return { ok: true, reason: "", explored };
    if (f.next >= f.cands.length) {
      stack.pop();
      const parent = stack[stack.length - 1];
      if (parent !== undefined && parent.chosen >= 0) {
        done[parent.chosen] = 0;
        parent.chosen = -1;
      }
      continue;
    }
    const i = f.cands[f.next++]!;
    const it = items[i]!;
    const next = step(f.state, it.ev);
    if (next === undefined) continue;
    done[i] = 1;
    const mk = memoKey(next);
    if (seen.has(mk)) {
      done[i] = 0;
      continue;
    }
    seen.add(mk);
    if (++explored > budget) return { ok: false, reason: `search budget of ${budget} states exhausted (inconclusive)`, explored };
    f.chosen = i;
    const requiredDone = f.requiredDone + (it.required ? 1 : 0);
    const child: Frame = { state: next, cands: candidates(), next: 0, chosen: -1, requiredDone };
    if (requiredDone > best) {
      best = requiredDone;
      bestState = next;
      bestBlocked = child.cands.filter((c) => items[c]!.required);
    }
    stack.push(child);
  }
  const blocked = bestBlocked.map((c) => `    ${describeEvent(items[c]!.ev)}`).join("\n");
  return {
    ok: false,
    reason:
      `not linearizable: at most ${best} of ${required} acknowledged operations on this key can be ordered; ` +
      `the register then holds ${JSON.stringify(bestState)} and none of these can come next:\n${blocked}\n` +
      `history of the key (${history.length} operations):\n${describeHistory(history, 80)}`,
    explored,
  };
}

export function describeEvent(ev: KvEvent): string {
  const op = ev.op;
  let what: string;
  switch (op.kind) {
    case "put": what = `put(${ev.key}, ${JSON.stringify(op.value)})`; break;
    case "delete": what = `delete(${ev.key})`; break;
    case "get": what = `get(${ev.key}) -> ${JSON.stringify(op.observed)}`; break;
    case "cas":
      what = `cas(${ev.key}, ${JSON.stringify(op.expect)} -> ${JSON.stringify(op.value)})` +
        (ev.outcome === "ok" ? (op.succeeded ? " succeeded" : ` failed, saw ${JSON.stringify(op.observed ?? null)}`) : "");
      break;
  }
  const ret = ev.outcome === "ok" ? ev.ret.toFixed(1) : "inf";
  return `#${ev.id} [${ev.invoke.toFixed(1)}, ${ret}] c${ev.client} ${what} ${ev.outcome}${ev.note ? ` (${ev.note})` : ""}`;
}

/** The history in invocation order; long histories keep their first and last `limit / 2` lines. */
export function describeHistory(history: readonly KvEvent[], limit = Number.POSITIVE_INFINITY): string {
  const lines = [...history].sort((a, b) => a.invoke - b.invoke).map((e) => `  ${describeEvent(e)}`);
  if (lines.length <= limit) return lines.join("\n");
  const half = Math.floor(limit / 2);
  return [...lines.slice(0, half), `  ... ${lines.length - 2 * half} more ...`, ...lines.slice(-half)].join("\n");
}
