// A deterministic simulation of a raft cluster: one process, virtual time, and
// every source of nondeterminism drawn from one seed.
//
//   - N nodes, each a RawNode driven by the Ready loop, ticking every TICK_MS.
//   - A network that drops, delays (hence reorders), duplicates, and partitions
//     messages in any shape (asymmetric links included).
//   - A disk per node: a Ready's writes become durable only when its (virtual)
//     fsync completes; a crash before that loses them, and a crashed node
//     restarts from exactly what is on its disk.
//   - Clients issuing puts, deletes and one-key compare-and-swap txns to a
//     replicated key-value map and reading it linearizably via ReadIndex, each
//     operation recorded with its outcome (test/faults/kvcheck.ts, the checker
//     the real-process fault suite uses, judges the history).
//
// Safety phase: faults at random. Liveness phase: heal everything, then a
// leader must be elected and a new write committed within a bound. Invariants
// are checked as the simulation runs; the history is checked for
// linearizability at the end.

import {
  type ConfState,
  type Entry,
  MemoryStorage,
  type Message,
  RawNode,
  type Ready,
  SeededRand,
  type Snapshot,
  describeMessage,
  isRaftError,
} from "../../node/src/raft/index.js";
import { Raft } from "../../node/src/raft/raft.js";
import { type KvCheckResult, type KvEvent, type KvOp, type Outcome, checkKvHistory } from "../faults/kvcheck.js";
import { type Cmd, type CmdResult, EventQueue, execute, historyCounts, nextClientStep, randomPartition, settledWrite } from "./sim_shared.js";

export const TICK_MS = 10;

export interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
  /** Virtual ms of the fault phase. */
  readonly faultMs: number;
  /** After healing, a write must commit within this many ticks. */
  readonly livenessTicks: number;
  readonly clients: number;
  /** Record every delivered message in the trace (for debugging one seed). */
  readonly trace?: boolean;
  /**
   * A deliberate bug, for the test that proves the simulator can fail:
   *   staleReads  gets answer from the node's local state at once (no ReadIndex);
   *   earlyAck    puts and deletes are acknowledged when proposed, before commit.
   */
  readonly bug?: "staleReads" | "earlyAck";
}

export interface SimResult {
  readonly seed: number;
  readonly ops: number;
  readonly okOps: number;
  readonly unknownOps: number;
  readonly failedOps: number;
  readonly leaders: number;
  readonly crashes: number;
  readonly snapshotsSent: number;
  readonly confChanges: number;
  readonly confChangesApplied: number;
  readonly livenessTicks: number;
  readonly check: KvCheckResult;
  /** Client operations by kind (put, delete, cas, get), over all outcomes. */
  readonly kinds: Readonly<Record<KvOp["kind"], number>>;
  /** Compare-and-swaps acknowledged as succeeded / as failed (compare false). */
  readonly casSucceeded: number;
  readonly casFailed: number;
  readonly faults: string;
}

export class SimFailure extends Error {
  override readonly name = "SimFailure";
}

const enc = new TextEncoder();
const dec = new TextDecoder();

// ---------------------------------------------------------------- the app

/** The replicated state machine: a string map plus the ids of applied writes (for dedup). */
interface KvState {
  kv: Map<string, string>;
  seen: Set<string>;
}

function encodeState(s: KvState): Uint8Array {
  return enc.encode(JSON.stringify({ kv: [...s.kv.entries()].sort(), seen: [...s.seen].sort() }));
}

function decodeState(data: Uint8Array): KvState {
  if (data.length === 0) return { kv: new Map(), seen: new Set() };
  const o = JSON.parse(dec.decode(data)) as { kv: [string, string][]; seen: string[] };
  return { kv: new Map(o.kv), seen: new Set(o.seen) };
}

function stateHash(s: KvState): string {
  // The dedup set only grows with the writes; its size is a fine fingerprint.
  return `${JSON.stringify([...s.kv.entries()].sort())}#${s.seen.size}`;
}

/** A node's disk: MemoryStorage that, like a real application, snapshots its applied state on demand. */
class Disk extends MemoryStorage {
  node: SimNode | undefined;
  snapshotsMade = 0;

  override snapshot(): Snapshot {
    const n = this.node;
    if (n !== undefined && n.up && n.appliedIndex > super.snapshot().metadata.index) {
      this.createSnapshot(n.appliedIndex, n.confState, encodeState(n.state));
      this.snapshotsMade++;
    }
    return super.snapshot();
  }
}

interface SimNode {
  readonly id: bigint;
  readonly disk: Disk;
  up: boolean;
  incarnation: number;
  rn: RawNode | undefined;
  /** A Ready is being written to disk (its fsync has not completed). */
  writing: boolean;
  state: KvState;
  appliedIndex: bigint;
  confState: ConfState;
  /** Client writes waiting to see their entry applied on this node (undefined: the node crashed). */
  writeWaits: Map<string, (r: CmdResult | undefined) => void>;
  /** Reads: ctx -> (read index once known, completion). */
  readWaits: Map<string, { index: bigint | undefined; done: (value: string | null | undefined) => void; key: string }>;
}

// ------------------------------------------------------------ the faults

/** The fault mix of one seed ("swarm testing": each seed stresses different things). */
interface Faults {
  dropP: number;
  dupP: number;
  minDelay: number;
  maxDelay: number;
  /** Probability of an extra long delay (strong reordering). */
  slowP: number;
  crashEveryMs: number; // 0 = no crashes
  partitionEveryMs: number; // 0 = no partitions
  diskMaxMs: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxInflightMsgs: number;
  maxSizePerMsg: number;
  compactEvery: number;
  /** Propose membership changes (remove, add learner, promote) during the fault phase. */
  membership: boolean;
}

function chooseFaults(r: SeededRand): Faults {
  return {
    dropP: r.pick([0, 0.01, 0.05, 0.15, 0.3]),
    dupP: r.pick([0, 0.02, 0.1]),
    minDelay: 1,
    maxDelay: r.pick([3, 10, 30]),
    slowP: r.pick([0, 0.02, 0.1]),
    crashEveryMs: r.pick([0, 100, 300, 800, 2000]),
    partitionEveryMs: r.pick([0, 50, 200, 500, 1500]),
    diskMaxMs: r.pick([1, 3, 10]),
    preVote: r.chance(0.75),
    checkQuorum: r.chance(0.75),
    maxInflightMsgs: r.pick([1, 4, 256]),
    maxSizePerMsg: r.pick([1, 64, 1024, 1 << 20]),
    compactEvery: r.pick([5, 20, 100]),
    membership: r.chance(0.5),
  };
}

function describeFaults(f: Faults): string {
  return (
    `drop=${f.dropP} dup=${f.dupP} delay=${f.minDelay}-${f.maxDelay}ms slow=${f.slowP} crashEvery=${f.crashEveryMs}ms ` +
    `partitionEvery=${f.partitionEveryMs}ms disk<=${f.diskMaxMs}ms prevote=${f.preVote} checkquorum=${f.checkQuorum} ` +
    `inflight=${f.maxInflightMsgs} maxMsg=${f.maxSizePerMsg} compactEvery=${f.compactEvery} membership=${f.membership}`
  );
}

// ---------------------------------------------------------- the simulator

export class ClusterSim {
  private readonly rand: SeededRand;
  private readonly q = new EventQueue();
  private now = 0;
  /** A strictly increasing logical clock for the history (real-time order of invoke/return). */
  private clock = 0;
  private readonly nodes: SimNode[] = [];
  private readonly faults: Faults;
  /** blocked.has("a>b"): messages from a to b are lost. */
  private blocked = new Set<string>();
  private healed = false;
  private readonly history: KvEvent[] = [];
  private readonly trace: string[] = [];

  // Invariant bookkeeping.
  private readonly leaderOfTerm = new Map<bigint, bigint>();
  private readonly committed = new Map<bigint, string>(); // index -> "term:data"
  private readonly stateAt = new Map<bigint, string>(); // index -> state hash after applying it
  private crashes = 0;
  private snapshotsSent = 0;
  private confChanges = 0;
  private confChangesApplied = 0;

  constructor(readonly opts: SimOptions) {
    this.rand = new SeededRand(opts.seed);
    this.faults = chooseFaults(this.rand);
    const voters = Array.from({ length: opts.nodes }, (_, i) => BigInt(i + 1));
    const cs: ConfState = { voters, learners: [] };
    for (const id of voters) {
      // Bootstrap: every node starts from the same snapshot at index 1 holding the config.
      const disk = new Disk({ metadata: { index: 1n, term: 1n, confState: cs }, data: encodeState({ kv: new Map(), seen: new Set() }) });
      const n: SimNode = {
        id,
        disk,
        up: false,
        incarnation: 0,
        rn: undefined,
        writing: false,
        state: { kv: new Map(), seen: new Set() },
        appliedIndex: 1n,
        confState: cs,
        writeWaits: new Map(),
        readWaits: new Map(),
      };
      disk.node = n;
      this.nodes.push(n);
    }
  }

  private fail(msg: string): never {
    const tail = this.trace.slice(-40).join("\n");
    throw new SimFailure(
      `seed ${this.opts.seed}: ${msg}\n  at virtual time ${this.now}ms; faults: ${describeFaults(this.faults)}\n` +
        (tail ? `  last events:\n${tail}\n` : "") +
        `reproduce with SIM_SEED=${this.opts.seed}`,
    );
  }

  private note(s: string): void {
    if (this.opts.trace) this.trace.push(`  ${this.now}ms ${s}`);
  }

  private at(delay: number, fn: () => void): void {
    this.q.push(this.now + delay, fn);
  }

  // ------------------------------------------------------------- node life

  private start(n: SimNode): void {
    n.incarnation++;
    n.writing = false;
    // Read the disk before coming up: the snapshot hook must not see pre-crash memory.
    const snap = n.disk.snapshot();
    n.up = true;
    n.state = decodeState(snap.data);
    n.appliedIndex = snap.metadata.index;
    n.confState = snap.metadata.confState;
    this.checkDurability(n);
    n.rn = new RawNode({
      id: n.id,
      storage: n.disk,
      electionTick: 10,
      heartbeatTick: 1,
      rand: new SeededRand(this.opts.seed * 7919 + Number(n.id) * 104729 + n.incarnation),
      applied: n.appliedIndex,
      preVote: this.faults.preVote,
      checkQuorum: this.faults.checkQuorum,
      maxInflightMsgs: this.faults.maxInflightMsgs,
      maxSizePerMsg: this.faults.maxSizePerMsg,
    });
    const inc = n.incarnation;
    // Each node's clock ticks with its own phase.
    const tick = () => {
      if (!n.up || n.incarnation !== inc) return;
      n.rn!.tick();
      this.pump(n);
      this.checkLeader(n);
      this.at(TICK_MS, tick);
    };
    this.at(1 + this.rand.intn(TICK_MS), tick);
    this.note(`start ${n.id} (incarnation ${inc}, applied ${n.appliedIndex})`);
  }

  private crash(n: SimNode): void {
    this.note(`crash ${n.id}`);
    this.crashes++;
    n.up = false;
    n.rn = undefined;
    n.writing = false;
    n.incarnation++;
    for (const w of n.writeWaits.values()) w(undefined);
    for (const r of n.readWaits.values()) r.done(undefined);
    n.writeWaits.clear();
    n.readWaits.clear();
  }

  /** What a restarted node finds on disk must agree with what was committed. */
  private checkDurability(n: SimNode): void {
    const hs = n.disk.hardStateNow();
    const first = n.disk.firstIndex();
    const last = n.disk.lastIndex();
    if (hs.commit > last && hs.commit > n.disk.snapshot().metadata.index) {
      this.fail(`node ${n.id} persisted commit ${hs.commit} beyond its durable log (last ${last})`);
    }
    const hi = hs.commit < last ? hs.commit : last;
    if (hi >= first) {
      for (const e of n.disk.entries(first, hi + 1n, Number.MAX_SAFE_INTEGER)) this.checkCommitted(n, e);
    }
  }

  // ----------------------------------------------------------- ready loop

  /** Starts handling the next Ready, if the disk is free. */
  private pump(n: SimNode): void {
    if (!n.up || n.writing || !n.rn!.hasReady()) return;
    const rd = n.rn!.ready();
    // Messages that do not depend on this write go out right away (leaders replicate
    // while they write their own log).
    for (const m of rd.messages) this.send(m);
    n.writing = true;
    const inc = n.incarnation;
    this.at(1 + this.rand.intn(this.faults.diskMaxMs), () => {
      if (n.incarnation !== inc) return; // crashed mid-write: the write is lost
      this.finishWrite(n, rd);
    });
  }

  private finishWrite(n: SimNode, rd: Ready): void {
    // The write is durable now.
    if (rd.snapshot) n.disk.applySnapshot(rd.snapshot);
    n.disk.append(rd.entries);
    if (rd.hardState) n.disk.setHardState(rd.hardState);
    for (const m of rd.messagesAfterPersist) this.send(m);
    // Apply.
    if (rd.snapshot) {
      const s = rd.snapshot;
      n.state = decodeState(s.data);
      n.appliedIndex = s.metadata.index;
      n.confState = s.metadata.confState;
      this.checkSnapshot(n, s);
    }
    for (const e of rd.committedEntries) this.apply(n, e);
    for (const rs of rd.readStates) {
      const w = n.readWaits.get(dec.decode(rs.requestCtx));
      if (w !== undefined && w.index === undefined) w.index = rs.index;
    }
    this.serveReads(n);
    n.rn!.advance(rd);
    n.writing = false;
    this.maybeCompact(n);
    this.pump(n);
    this.checkLeader(n);
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.appliedIndex + 1n) this.fail(`node ${n.id} applies ${e.index} after ${n.appliedIndex}`);
    this.checkCommitted(n, e);
    if (e.type === "confChange") {
      if (!this.stateAt.has(e.index)) this.confChangesApplied++;
      n.confState = n.rn!.applyConfChange(Raft.confChangeOf(e));
    } else if (e.data.length > 0) {
      const cmd = JSON.parse(dec.decode(e.data)) as Cmd;
      if (!n.state.seen.has(cmd.id)) {
        n.state.seen.add(cmd.id);
        const result = execute(n.state.kv, cmd);
        // Only the first application answers; a duplicate entry changes nothing.
        const w = n.writeWaits.get(cmd.id);
        if (w !== undefined) {
          n.writeWaits.delete(cmd.id);
          w(result);
        }
      }
    }
    n.appliedIndex = e.index;
    const h = stateHash(n.state);
    const prev = this.stateAt.get(e.index);
    if (prev === undefined) this.stateAt.set(e.index, h);
    else if (prev !== h) this.fail(`state diverged at index ${e.index} on node ${n.id}: ${h} vs ${prev}`);
  }

  private serveReads(n: SimNode): void {
    for (const [ctx, w] of n.readWaits) {
      if (w.index !== undefined && w.index <= n.appliedIndex) {
        n.readWaits.delete(ctx);
        w.done(n.state.kv.get(w.key) ?? null);
      }
    }
  }

  private maybeCompact(n: SimNode): void {
    // Keep the log short so lagging followers need snapshots.
    const first = n.disk.firstIndex();
    if (n.appliedIndex - first < BigInt(this.faults.compactEvery)) return;
    if (n.appliedIndex > n.disk.snapshot().metadata.index) {
      n.disk.createSnapshot(n.appliedIndex, n.confState, encodeState(n.state));
    }
    const keep = BigInt(this.rand.intn(5));
    const to = n.appliedIndex - keep;
    if (to >= first) n.disk.compact(to);
  }

  // ------------------------------------------------------------- network

  private send(m: Message): void {
    const f = this.faults;
    if (m.type === "MsgSnap") this.snapshotsSent++;
    const copies = this.rand.chance(f.dupP) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      if (this.blocked.has(`${m.from}>${m.to}`) || this.rand.chance(f.dropP)) {
        this.note(`drop ${describeMessage(m).split("\n")[0]}`);
        if (m.type === "MsgSnap") this.reportSnapshot(m, false);
        continue;
      }
      let delay = f.minDelay + this.rand.intn(f.maxDelay - f.minDelay + 1);
      if (this.rand.chance(f.slowP)) delay += this.rand.range(20, 200);
      this.at(delay, () => this.deliver(m));
    }
  }

  /** The transport tells the leader how a snapshot send went (etcd does this from rafthttp). */
  private reportSnapshot(m: Message, ok: boolean): void {
    const from = this.nodes[Number(m.from) - 1]!;
    this.at(1, () => {
      if (!from.up) return;
      from.rn!.reportSnapshot(m.to, ok);
      this.pump(from);
    });
  }

  private deliver(m: Message): void {
    const n = this.nodes[Number(m.to) - 1]!;
    if (!n.up || this.blocked.has(`${m.from}>${m.to}`)) {
      this.note(`lost ${describeMessage(m).split("\n")[0]}`);
      if (m.type === "MsgSnap") this.reportSnapshot(m, false);
      return;
    }
    this.note(`deliver ${describeMessage(m).split("\n")[0]}`);
    try {
      n.rn!.step(m);
    } catch (err) {
      if (!isRaftError(err)) throw err;
    }
    if (m.type === "MsgSnap") this.reportSnapshot(m, true);
    this.pump(n);
    this.checkLeader(n);
  }

  // ----------------------------------------------------------- invariants

  private checkLeader(n: SimNode): void {
    const r = n.rn?.raft;
    if (r === undefined || r.state !== "leader") return;
    const other = this.leaderOfTerm.get(r.term);
    if (other === undefined) this.leaderOfTerm.set(r.term, n.id);
    else if (other !== n.id) this.fail(`two leaders in term ${r.term}: ${other} and ${n.id}`);
  }

  private checkCommitted(n: SimNode, e: Entry): void {
    const fp = `${e.term}:${e.type}:${dec.decode(e.data)}`;
    const prev = this.committed.get(e.index);
    if (prev === undefined) this.committed.set(e.index, fp);
    else if (prev !== fp) this.fail(`committed entry ${e.index} differs on node ${n.id}: ${fp} vs ${prev}`);
  }

  private checkSnapshot(n: SimNode, s: Snapshot): void {
    const prev = this.committed.get(s.metadata.index);
    if (prev !== undefined && !prev.startsWith(`${s.metadata.term}:`)) {
      this.fail(`snapshot at ${s.metadata.index} on node ${n.id} has term ${s.metadata.term}, committed entry is ${prev}`);
    }
    const h = stateHash(n.state);
    const st = this.stateAt.get(s.metadata.index);
    if (st === undefined) this.stateAt.set(s.metadata.index, h);
    else if (st !== h) this.fail(`snapshot state at ${s.metadata.index} on node ${n.id} differs: ${h} vs ${st}`);
  }

  // -------------------------------------------------------------- clients

  private runClient(client: number): void {
    let seqNo = 0;
    /** The value this client last saw or wrote per key: what its compare-and-swaps expect. */
    const lastSeen = new Map<string, string | null>();
    const next = () => {
      if (this.healed) return;
      const step = nextClientStep(this.rand, client, ++seqNo, lastSeen);
      const node = this.rand.pick(this.nodes);
      if ("write" in step) this.clientWrite(client, step.write, node, next, lastSeen);
      else this.clientGet(client, step.get.id, step.get.key, node, next, lastSeen);
    };
    this.at(this.rand.intn(20), next);
  }

  private record(ev: Omit<KvEvent, "id" | "ret" | "outcome">, outcome: Outcome): void {
    this.history.push({ ...ev, id: this.history.length, ret: this.clock++, outcome });
  }

  /** A put, delete or compare-and-swap proposed on node `n`, answered when `n` applies it. */
  private clientWrite(client: number, cmd: Cmd, n: SimNode, next: () => void, lastSeen: Map<string, string | null>): void {
    const invoke = this.clock++;
    const base = { client, key: cmd.key, invoke };
    let settled = false;
    const settle = (outcome: Outcome, r?: CmdResult) => {
      if (settled) return;
      settled = true;
      const op = settledWrite(cmd, outcome, r, lastSeen);
      this.record({ ...base, op }, outcome);
      this.at(this.rand.intn(20), next);
    };
    if (!n.up) {
      settle("failed"); // connection refused: nothing was sent
      return;
    }
    try {
      n.rn!.propose(enc.encode(JSON.stringify(cmd)));
    } catch (err) {
      if (isRaftError(err, "ErrProposalDropped")) {
        settle("failed"); // not appended anywhere
        return;
      }
      throw err;
    }
    if (this.opts.bug === "earlyAck" && cmd.op !== "cas") {
      settle("ok");
      return;
    }
    n.writeWaits.set(cmd.id, (r) => (r === undefined ? settle("unknown") : settle("ok", r)));
    this.pump(n);
    const inc = n.incarnation;
    this.at(500, () => {
      if (n.incarnation === inc) n.writeWaits.delete(cmd.id);
      settle("unknown");
    });
  }

  private clientGet(client: number, ctx: string, key: string, n: SimNode, next: () => void, lastSeen: Map<string, string | null>): void {
    const invoke = this.clock++;
    const base = { client, key, invoke };
    let settled = false;
    const settle = (value: string | null | undefined) => {
      if (settled) return;
      settled = true;
      if (value === undefined) this.record({ ...base, op: { kind: "get", observed: null } }, "failed");
      else {
        this.record({ ...base, op: { kind: "get", observed: value } }, "ok");
        lastSeen.set(key, value);
      }
      this.at(this.rand.intn(20), next);
    };
    if (!n.up) {
      settle(undefined);
      return;
    }
    if (this.opts.bug === "staleReads") {
      settle(n.state.kv.get(key) ?? null);
      return;
    }
    n.readWaits.set(ctx, { index: undefined, done: settle, key });
    n.rn!.readIndex(enc.encode(ctx));
    this.pump(n);
    const inc = n.incarnation;
    this.at(500, () => {
      if (n.incarnation === inc) n.readWaits.delete(ctx);
      settle(undefined);
    });
  }

  // --------------------------------------------------------------- faults

  private scheduleFaults(): void {
    const f = this.faults;
    if (f.crashEveryMs > 0) {
      const crashLoop = () => {
        if (this.healed) return;
        const n = this.rand.pick(this.nodes);
        if (n.up) {
          this.crash(n);
          this.at(this.rand.range(20, 600), () => {
            if (!n.up && !this.healed) this.start(n);
          });
        }
        this.at(this.rand.range(1, 2 * f.crashEveryMs), crashLoop);
      };
      this.at(this.rand.range(1, 2 * f.crashEveryMs), crashLoop);
    }
    if (f.membership && this.nodes.length >= 5) {
      const membershipLoop = () => {
        if (this.healed) return;
        this.proposeMembershipChange();
        this.at(this.rand.range(100, 600), membershipLoop);
      };
      this.at(this.rand.range(100, 600), membershipLoop);
    }
    if (f.partitionEveryMs > 0) {
      const partitionLoop = () => {
        if (this.healed) return;
        this.blocked = this.randomPartition();
        this.note(`partition ${[...this.blocked].join(" ") || "(none)"}`);
        this.at(this.rand.range(1, 2 * f.partitionEveryMs), partitionLoop);
      };
      this.at(this.rand.range(1, 2 * f.partitionEveryMs), partitionLoop);
    }
  }

  /**
   * One single-step change through the current leader: promote a learner, remove a
   * voter (the leader itself included) while at least 3 remain, or add a node that is
   * not a member as a learner. Removed nodes keep running (and keep their log) until
   * they are added back.
   */
  private proposeMembershipChange(): void {
    const leader = this.nodes.find((n) => n.up && n.rn!.state === "leader");
    if (leader === undefined) return;
    const cs = leader.confState;
    const outside = this.nodes.map((n) => n.id).filter((id) => !cs.voters.includes(id) && !cs.learners.includes(id));
    let cc: { type: "addNode" | "addLearnerNode" | "removeNode"; nodeId: bigint } | undefined;
    const choice = this.rand.intn(3);
    if (choice === 0 && cs.learners.length > 0) cc = { type: "addNode", nodeId: this.rand.pick(cs.learners) };
    else if (choice === 1 && cs.voters.length > 3) cc = { type: "removeNode", nodeId: this.rand.pick(cs.voters) };
    else if (outside.length > 0) cc = { type: "addLearnerNode", nodeId: this.rand.pick(outside) };
    if (cc === undefined) return;
    try {
      leader.rn!.proposeConfChange(cc);
      this.confChanges++;
      this.note(`propose ${cc.type} ${cc.nodeId} via ${leader.id}`);
      this.pump(leader);
    } catch (err) {
      if (!isRaftError(err, "ErrProposalDropped")) throw err;
    }
  }

  private randomPartition(): Set<string> {
    return randomPartition(this.nodes.map((n) => n.id), this.rand);
  }

  private heal(): void {
    this.note("heal");
    this.healed = true;
    this.blocked = new Set();
    this.faults.dropP = 0;
    this.faults.dupP = 0;
    this.faults.slowP = 0;
    for (const n of this.nodes) if (!n.up) this.start(n);
  }

  // ------------------------------------------------------------------ run

  private runUntil(t: number): void {
    for (;;) {
      const e = this.q.pop();
      if (e === undefined) return;
      if (e.at > t) {
        this.q.push(e.at, e.fn); // not yet
        return;
      }
      this.now = e.at;
      e.fn();
    }
  }

  /** Runs the simulation; any failure (invariant, checker, or an exception inside raft) names the seed. */
  run(): SimResult {
    try {
      return this.runInner();
    } catch (err) {
      if (err instanceof SimFailure) throw err;
      this.fail(`exception: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  private runInner(): SimResult {
    for (const n of this.nodes) this.start(n);
    for (let c = 1; c <= this.opts.clients; c++) this.runClient(c);
    this.scheduleFaults();
    this.runUntil(this.opts.faultMs);

    // Liveness: heal, then a leader must commit a new write within the bound.
    this.heal();
    const healedAt = this.now;
    const deadline = healedAt + this.opts.livenessTicks * TICK_MS;
    const probeId = `liveness-${this.opts.seed}`;
    let committedAt: number | undefined;
    const probe = () => {
      if (committedAt !== undefined) return;
      for (const n of this.nodes) {
        if (n.up && n.state.seen.has(probeId)) {
          committedAt = this.now;
          return;
        }
      }
      const leader = this.nodes.find((n) => n.up && n.rn!.state === "leader");
      if (leader !== undefined) {
        try {
          leader.rn!.propose(enc.encode(JSON.stringify({ id: probeId, op: "put", key: "liveness", value: "1" } satisfies Cmd)));
          this.pump(leader);
        } catch (err) {
          if (!isRaftError(err, "ErrProposalDropped")) throw err;
        }
      }
      this.at(5 * TICK_MS, probe);
    };
    this.at(0, probe);
    while (committedAt === undefined && this.now < deadline && this.q.size > 0) this.runUntil(Math.min(deadline, this.now + 100));
    if (committedAt === undefined) {
      const roles = this.nodes.map((n) => `${n.id}:${n.rn?.raft.state}@${n.rn?.raft.term}`).join(" ");
      this.fail(`liveness: no write committed within ${this.opts.livenessTicks} ticks after healing (${roles})`);
    }
    // Let every client operation finish (timeouts are 500ms) and the cluster settle.
    this.runUntil(this.now + 1000);

    const check = checkKvHistory(this.history);
    if (!check.ok) this.fail(`history is not linearizable on key ${check.key}: ${check.reason}`);
    const counts = historyCounts(this.history);
    return {
      seed: this.opts.seed,
      ops: this.history.length,
      ...counts,
      leaders: this.leaderOfTerm.size,
      crashes: this.crashes,
      snapshotsSent: this.snapshotsSent,
      confChanges: this.confChanges,
      confChangesApplied: this.confChangesApplied,
      livenessTicks: Math.ceil((committedAt - healedAt) / TICK_MS),
      check,
      faults: describeFaults(this.faults),
    };
  }
}
