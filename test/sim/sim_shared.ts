// Pieces shared by the two cluster simulators (cluster_sim.ts drives RawNode with
// its own Ready loop; driver_sim.ts runs the production RaftNode and WAL): the
// virtual-time event queue, the replicated key-value command and its semantics,
// the random partition shapes, and the clients' workload.

import type { SeededRand } from "../../node/src/raft/index.js";
import type { KvEvent, KvOp, Outcome } from "../faults/kvcheck.js";

// -------------------------------------------------------------- the queue

interface Event<F> {
  readonly at: number;
  readonly seq: number;
  readonly fn: F;
}

function before<F>(a: Event<F>, b: Event<F>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** A min-heap of events by (time, insertion order): equal times run in the order they were scheduled. */
export class EventQueue<F = () => void> {
  private heap: Event<F>[] = [];
  private seq = 0;

  push(at: number, fn: F): void {
    const e = { at, seq: this.seq++, fn };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  /** The time of the earliest event, if any. */
  peekTime(): number | undefined {
    return this.heap[0]?.at;
  }

  pop(): Event<F> | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  get size(): number {
    return this.heap.length;
  }
}

// ---------------------------------------------------------------- the app

/**
 * A replicated command. `id` is unique per client operation; the state machine
 * applies each id once (a duplicated MsgProp can append the same proposal twice).
 *   put: key := value;  del: key := absent;
 *   cas: a one-key txn — if key holds `expect` (null: absent) then key := value,
 *        else read the key (etcd: Txn{compare value, success put, failure range}).
 */
export type Cmd =
  | { readonly id: string; readonly op: "put"; readonly key: string; readonly value: string }
  | { readonly id: string; readonly op: "del"; readonly key: string }
  | { readonly id: string; readonly op: "cas"; readonly key: string; readonly expect: string | null; readonly value: string };

/** What applying a command answered: for cas, whether the compare held and what the else-branch read. */
export interface CmdResult {
  readonly succeeded?: boolean;
  readonly observed?: string | null;
}

/** Applies `cmd` to the map and returns its answer. Deterministic: every node computes the same. */
export function execute(kv: Map<string, string>, cmd: Cmd): CmdResult {
  switch (cmd.op) {
    case "put":
      kv.set(cmd.key, cmd.value);
      return {};
    case "del":
      kv.delete(cmd.key);
      return {};
    case "cas": {
      const cur = kv.get(cmd.key) ?? null;
      if (cur !== cmd.expect) return { succeeded: false, observed: cur };
      kv.set(cmd.key, cmd.value);
      return { succeeded: true };
    }
  }
}

// ------------------------------------------------------------- partitions

/**
 * Partitions of any shape: halves, isolated nodes, bridges, one-way links, or
 * none. The result holds "a>b" for every link on which messages from a to b are lost.
 */
export function randomPartition(ids: readonly bigint[], rand: SeededRand): Set<string> {
  const blocked = new Set<string>();
  const cut = (a: bigint, b: bigint) => {
    blocked.add(`${a}>${b}`);
    blocked.add(`${b}>${a}`);
  };
  switch (rand.intn(5)) {
    case 0: // heal
      break;
    case 1: {
      // two random sides
      const side = new Map(ids.map((id) => [id, rand.chance(0.5)]));
      for (const a of ids) for (const b of ids) if (a < b && side.get(a) !== side.get(b)) cut(a, b);
      break;
    }
    case 2: {
      // isolate one node
      const x = rand.pick(ids);
      for (const b of ids) if (b !== x) cut(x, b);
      break;
    }
    case 3: {
      // a bridge: everyone reaches the middle node, but some pairs cannot talk
      const mid = rand.pick(ids);
      for (const a of ids) for (const b of ids) if (a < b && a !== mid && b !== mid && rand.chance(0.5)) cut(a, b);
      break;
    }
    case 4: {
      // one-way links
      for (const a of ids) for (const b of ids) if (a !== b && rand.chance(0.25)) blocked.add(`${a}>${b}`);
      break;
    }
  }
  return blocked;
}

// ------------------------------------------------------------ the clients

/** What a client does next: a write (put, delete, compare-and-swap) or a linearizable get. */
export type ClientStep = { readonly write: Cmd } | { readonly get: { readonly id: string; readonly key: string } };

/**
 * The clients' workload, the same in both simulators: three keys; 35% puts, 10%
 * deletes, 20% one-key compare-and-swaps, 35% gets. A swap mostly expects the value
 * this client last saw or wrote (likely to succeed), sometimes absent (likely to
 * fail), so both branches of the txn are taken. `lastSeen` is the client's memory.
 */
export function nextClientStep(rand: SeededRand, client: number, seq: number, lastSeen: ReadonlyMap<string, string | null>): ClientStep {
  const key = `k${rand.intn(3)}`;
  const id = `c${client}-${seq}`;
  const dice = rand.intn(100);
  if (dice < 35) return { write: { id, op: "put", key, value: id } };
  if (dice < 45) return { write: { id, op: "del", key } };
  if (dice < 65) {
    const expect = rand.chance(0.8) ? (lastSeen.get(key) ?? null) : null;
    return { write: { id, op: "cas", key, expect, value: id } };
  }
  return { get: { id, key } };
}

/** The history's record of a settled write, and what an acknowledged one teaches the client. */
export function settledWrite(cmd: Cmd, outcome: Outcome, r: CmdResult | undefined, lastSeen: Map<string, string | null>): KvOp {
  if (outcome === "ok") {
    if (cmd.op === "put") lastSeen.set(cmd.key, cmd.value);
    else if (cmd.op === "del") lastSeen.set(cmd.key, null);
    else lastSeen.set(cmd.key, r!.succeeded ? cmd.value : (r!.observed ?? null));
  }
  if (cmd.op === "put") return { kind: "put", value: cmd.value };
  if (cmd.op === "del") return { kind: "delete" };
  return { kind: "cas", expect: cmd.expect, value: cmd.value, succeeded: r?.succeeded, observed: r?.observed };
}

/** What a run's history holds, for the simulators' summaries: outcomes, kinds, and how txns went. */
export function historyCounts(history: readonly KvEvent[]): {
  okOps: number;
  unknownOps: number;
  failedOps: number;
  kinds: Record<KvOp["kind"], number>;
  casSucceeded: number;
  casFailed: number;
} {
  const outcomes: Record<Outcome, number> = { ok: 0, unknown: 0, failed: 0 };
  const kinds = { put: 0, delete: 0, cas: 0, get: 0 };
  let casSucceeded = 0;
  let casFailed = 0;
  for (const h of history) {
    outcomes[h.outcome]++;
    kinds[h.op.kind]++;
    if (h.op.kind === "cas" && h.outcome === "ok") {
      if (h.op.succeeded) casSucceeded++;
      else casFailed++;
    }
  }
  return { okOps: outcomes.ok, unknownOps: outcomes.unknown, failedOps: outcomes.failed, kinds, casSucceeded, casFailed };
}
