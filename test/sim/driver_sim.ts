// A deterministic simulation of the production raft driver: the real RaftNode
// (node/src/server/raft_node.ts) and the real WAL (node/src/wal/wal.ts) on an
// in-memory disk (SimFs), several members in one process, virtual time, and
// every source of nondeterminism drawn from one seed.
//
// What is real and what is simulated:
//   - real: RaftNode's loop (persist -> send -> pipelined apply -> conf changes ->
//     snapshot and compact), the WAL (group commit, segments, release, replay,
//     torn-tail repair), MemoryStorage rebuilt from the WAL on restart exactly as
//     EtcdServer.start does;
//   - simulated: the clock (a ManualTicker per node, ticked by the event queue),
//     the network (drop, delay/reorder, duplicate, partitions), the disk (one
//     SimFs per node: fsyncs held open for a virtual latency; a crash keeps what
//     was synced and does anything to the rest; injected EIO makes the WAL fail
//     and the member restart), the state machine (SimKv, an in-memory key-value
//     map and membership whose "backend" is durable up to its consistent_index,
//     see Backend), and the operator (membership changes on some 5-member seeds).
//
// Determinism: RaftNode schedules its loop with setImmediate and SimFs resolves
// promises, so after each batch of virtual-time events the simulator drains
// Node's event loop until no immediate is pending (nothing else in the driver or
// the WAL uses timers or real I/O). The run is then a function of the seed.
//
// Safety is checked as the run goes (one leader per term; every committed entry
// identical wherever it is seen, including in a restarted node's WAL; the same
// state after each applied index, including a backend's durable image at its
// consistent_index and a snapshot image; raft's configuration equals the
// membership once raft has applied what the state machine has) and at the end (the client history is
// linearizable: test/faults/kvcheck.ts). Liveness: after the fault phase every
// fault is healed and a write must commit within a bound, and all members must
// converge to the same applied state.

import {
  type Entry,
  type Message,
  Raft,
  RaftError,
  type ReadState,
  SeededRand,
  SILENT_LOGGER,
  type Snapshot,
  describeMessage,
  encodeConfChange,
  isRaftError,
} from "../../node/src/raft/index.js";
import { type RaftLogStore, restoreStorage } from "../../node/src/server/raft_log.js";
import { RaftNode, type StateMachine, type Ticker } from "../../node/src/server/raft_node.js";
import { WalFailedError } from "../../node/src/wal/errors.js";
import { SimFaultError, SimFs } from "../../node/src/wal/sim_fs.js";
import { Wal, type WalState } from "../../node/src/wal/wal.js";
import { type KvCheckResult, type KvEvent, type KvOp, type Outcome, checkKvHistory } from "../faults/kvcheck.js";
import { type Cmd, type CmdResult, EventQueue, execute, historyCounts, nextClientStep, randomPartition, settledWrite } from "./sim_shared.js";

export const TICK_MS = 10;
const ELECTION_TICK = 10;
const WAL_DIR = "/member/wal";
const CLUSTER_ID = 0xc105n;
/** --max-learners (etcd's default). */
const MAX_LEARNERS = 1;

export type DriverSimBug = "staleReads" | "earlyAck" | "lazyFsync";

export interface DriverSimOptions {
  readonly seed: number;
  readonly nodes: number;
  /** Virtual ms of the fault phase. */
  readonly faultMs: number;
  /** After healing, a write must commit within this many ticks. */
  readonly livenessTicks: number;
  readonly clients: number;
  /** Keep the last events as text, printed on failure (for debugging one seed). */
  readonly trace?: boolean;
  /**
   * A deliberate bug, for the test that proves the simulator can fail:
   *   staleReads  gets answer from the node's local state at once (no ReadIndex);
   *   earlyAck    puts and deletes are acknowledged when proposed, before commit;
   *   lazyFsync   the raft log's save() resolves before the WAL's fsync (acks and
   *               votes leave before they are durable).
   */
  readonly bug?: DriverSimBug;
}

export interface DriverSimResult {
  readonly seed: number;
  readonly ops: number;
  readonly okOps: number;
  readonly unknownOps: number;
  readonly failedOps: number;
  readonly kinds: Readonly<Record<KvOp["kind"], number>>;
  readonly casSucceeded: number;
  readonly casFailed: number;
  readonly leaders: number;
  readonly crashes: number;
  /** Nodes stopped by an injected disk error (EIO on append or fsync), then restarted. */
  readonly diskFaults: number;
  /** Restarts whose WAL open cut a torn tail. */
  readonly tornTails: number;
  readonly snapshotsSent: number;
  /** Membership changes proposed, and the members at the end (voters + learners). */
  readonly confChanges: number;
  /** Committed membership changes the state machine refused (a proposal-time check that raced). */
  readonly confRefused: number;
  readonly finalMembers: string;
  /** Snapshots from a leader that replaced a follower's state (in the loop or at restart). */
  readonly snapshotsRestored: number;
  /** Snapshot markers written by RaftNode's own snapshot-and-compact. */
  readonly localSnapshots: number;
  readonly fsyncs: number;
  readonly livenessTicks: number;
  readonly check: KvCheckResult;
  readonly faults: string;
  /** A hash of every delivered message, crash, restart and apply, in order: equal runs have equal traces. */
  readonly trace: string;
}

export class DriverSimFailure extends Error {
  override readonly name = "DriverSimFailure";
}

const enc = new TextEncoder();
const dec = new TextDecoder();

// -------------------------------------------------------- the state machine

/**
 * An immutable image of the key-value state at log index `applied`. Applied
 * command ids are an append-only list shared between images: the first
 * `seenLen` of `seenList` are the image's.
 */
interface Image {
  readonly kv: ReadonlyMap<string, string>;
  readonly seenList: readonly string[];
  readonly seenLen: number;
  readonly applied: bigint;
  /** The membership the applied conf changes made (etcd keeps it in the backend); removed IDs never come back. */
  readonly members: Members;
}

interface Members {
  readonly voters: readonly bigint[];
  readonly learners: readonly bigint[];
  readonly removed: readonly bigint[];
}

const NO_MEMBERS: Members = { voters: [], learners: [], removed: [] };
const EMPTY_IMAGE: Image = { kv: new Map(), seenList: [], seenLen: 0, applied: 0n, members: NO_MEMBERS };

const sorted = (xs: Iterable<bigint>): bigint[] => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

function imageHash(kv: ReadonlyMap<string, string>, seenLen: number, m: Members): string {
  return `${JSON.stringify([...kv.entries()].sort())}#${seenLen}#v${m.voters.join(",")}#l${m.learners.join(",")}#r${m.removed.join(",")}`;
}

/**
 * A member's backend on disk, which outlives crashes. Every apply batch is one
 * atomic write carrying its consistent_index (`applied`), not synced: after a
 * crash the backend holds the last synced image or any later written one (an
 * ordered prefix of the writes, as LevelDB's log gives). beforeCompact() and a
 * restore sync it. Received snapshot files are durable once stored (the
 * transport fsyncs them before raft sees the MsgSnap).
 */
class Backend {
  durable: Image = EMPTY_IMAGE;
  private unsynced: Image[] = [];
  readonly snapFiles = new Map<bigint, Image>();

  write(img: Image, sync: boolean): void {
    if (sync) {
      this.durable = img;
      this.unsynced = [];
    } else this.unsynced.push(img);
  }

  flush(): void {
    const last = this.unsynced[this.unsynced.length - 1];
    if (last !== undefined) this.durable = last;
    this.unsynced = [];
  }

  crash(rand: SeededRand): void {
    const k = rand.intn(this.unsynced.length + 1);
    if (k > 0) this.durable = this.unsynced[k - 1]!;
    this.unsynced = [];
  }
}

/**
 * The replicated state machine of one incarnation of a member (RaftNode's
 * StateMachine). apply() takes entries in order and skips those at or below its
 * applied index (re-delivered after a restart or a snapshot); it answers the
 * client writes waiting on this member. A dead instance (its member crashed)
 * does nothing.
 */
class SimKv implements StateMachine {
  kv: Map<string, string>;
  seen: Set<string>;
  seenList: string[];
  applied: bigint;
  voters = new Set<bigint>();
  learners = new Set<bigint>();
  removed = new Set<bigint>();
  dead = false;
  /** The applied index at which raft's configuration was last compared with the membership (the simulator's bookkeeping). */
  configCheckedAt = -1n;
  /** Client writes proposed through this member, by command id. */
  readonly writeWaits = new Map<string, (r: CmdResult) => void>();
  /** Client reads: ctx -> read index once known, the key, completion. */
  readonly readWaits = new Map<string, { index: bigint | undefined; key: string; done: (v: string | null | undefined) => void }>();

  constructor(
    private readonly sim: DriverSim,
    private readonly n: SimNode,
    img: Image,
  ) {
    this.kv = new Map();
    this.seen = new Set();
    this.seenList = [];
    this.applied = 0n;
    this.load(img);
  }

  members(): Members {
    return { voters: sorted(this.voters), learners: sorted(this.learners), removed: sorted(this.removed) };
  }

  image(): Image {
    return { kv: new Map(this.kv), seenList: this.seenList, seenLen: this.seenList.length, applied: this.applied, members: this.members() };
  }

  hash(): string {
    return imageHash(this.kv, this.seenList.length, this.members());
  }

  private load(img: Image): void {
    this.kv = new Map(img.kv);
    this.seenList = img.seenList.slice(0, img.seenLen);
    this.seen = new Set(this.seenList);
    this.applied = img.applied;
    this.voters = new Set(img.members.voters);
    this.learners = new Set(img.members.learners);
    this.removed = new Set(img.members.removed);
  }

  /**
   * etcd's ValidateConfigurationChange when a change is applied: a removed ID
   * never comes back, a member is not added twice, only members are removed.
   * Returns whether the change was accepted (and made it).
   */
  private applyConfChange(e: Entry): boolean {
    const cc = Raft.confChangeOf(e);
    const id = cc.nodeId;
    if (this.removed.has(id)) return false;
    switch (cc.type) {
      case "addNode":
        if (this.voters.has(id)) return false;
        this.learners.delete(id);
        this.voters.add(id);
        return true;
      case "addLearnerNode":
        if (this.voters.has(id) || this.learners.has(id)) return false;
        if (this.learners.size + 1 > MAX_LEARNERS) return false; // etcd's TooManyLearners
        this.learners.add(id);
        return true;
      case "removeNode":
        if (!this.voters.has(id) && !this.learners.has(id)) return false;
        this.voters.delete(id);
        this.learners.delete(id);
        this.removed.add(id);
        if (id === this.n.id) this.sim.removedSelf(this.n);
        return true;
      default:
        return true;
    }
  }

  async apply(entries: readonly Entry[]): Promise<ReadonlySet<bigint> | undefined> {
    if (this.dead) return undefined;
    await this.sim.applyLatency(this.n);
    if (this.dead) return undefined;
    const refused = new Set<bigint>();
    for (const e of entries) {
      this.sim.checkCommitted(this.n, e, "applied");
      if (e.index <= this.applied) {
        // In the backend already (consistent_index). Raft's configuration was set to the
        // membership as of consistent_index (at start, and after a restore), so its conf
        // changes are no-ops for raft, as EtcdServer.applyEntries does.
        if (e.type === "confChange") refused.add(e.index);
        continue;
      }
      if (e.index !== this.applied + 1n) this.sim.fail(`node ${this.n.id} applies ${e.index} after ${this.applied}: a gap`);
      if (e.type === "confChange") {
        if (!this.applyConfChange(e)) {
          refused.add(e.index);
          this.sim.confRefused(this.n, e);
        }
      } else if (e.data.length > 0) {
        const cmd = JSON.parse(dec.decode(e.data)) as Cmd;
        if (!this.seen.has(cmd.id)) {
          this.seen.add(cmd.id);
          this.seenList.push(cmd.id);
          const r = execute(this.kv, cmd);
          const w = this.writeWaits.get(cmd.id);
          if (w !== undefined) {
            this.writeWaits.delete(cmd.id);
            w(r);
          }
        }
      }
      this.applied = e.index;
      this.sim.checkState(this.n, e.index, this.hash(), "after applying");
    }
    this.sim.hashTrace(`apply ${this.n.id} ${this.applied}`);
    this.n.backend.write(this.image(), false);
    this.serveReads();
    return refused;
  }

  readStates(rs: readonly ReadState[]): void {
    if (this.dead) return;
    for (const r of rs) {
      const w = this.readWaits.get(dec.decode(r.requestCtx));
      if (w !== undefined && w.index === undefined) w.index = r.index;
    }
    this.serveReads();
  }

  softState(): void {}

  /** Replaces the state with the received snapshot file for this index (the leader's backend when it sent). */
  async restore(snap: Snapshot): Promise<void> {
    if (this.dead) return;
    const idx = snap.metadata.index;
    // As EtcdServer.restoreSnapshot: a dump restored before may already reach past this snapshot.
    if (idx <= this.applied) return;
    const img = this.n.backend.snapFiles.get(idx);
    if (img === undefined) this.sim.fail(`node ${this.n.id}: raft installed snapshot ${idx} but no snapshot file was received for it`);
    if (img.applied < idx) this.sim.fail(`node ${this.n.id}: snapshot file for ${idx} holds only up to ${img.applied}`);
    this.load(img);
    // Raft took the snapshot's configuration (at idx); the dump may reach past it: raft
    // follows the membership as of the dump, and entries up to it will be no-ops for raft.
    if (this.n.sm === this && this.n.raft !== undefined) syncRaftConfig(this.n.raft.rn.raft, this.members());
    this.sim.hashTrace(`restore ${this.n.id} snapshot ${idx} image ${img.applied}`);
    this.sim.checkState(this.n, this.applied, this.hash(), "in a restored snapshot");
    this.n.backend.write(this.image(), true);
    for (const i of [...this.n.backend.snapFiles.keys()]) if (i <= this.applied) this.n.backend.snapFiles.delete(i);
    this.sim.restored();
    this.serveReads();
  }

  /** RaftNode is about to record a snapshot at the applied index and compact: make the backend durable. */
  async beforeCompact(): Promise<void> {
    if (this.dead) return;
    this.n.backend.flush();
    this.sim.localSnapshot(this.n, this.applied);
  }

  serveReads(): void {
    for (const [ctx, w] of this.readWaits) {
      if (w.index !== undefined && w.index <= this.applied) {
        this.readWaits.delete(ctx);
        w.done(this.kv.get(w.key) ?? null);
      }
    }
  }

  /** The member crashed: pending client calls lose their connection. */
  kill(): void {
    this.dead = true;
    this.writeWaits.clear();
    for (const r of this.readWaits.values()) r.done(undefined);
    this.readWaits.clear();
  }
}

/**
 * Makes raft's configuration the given membership (as EtcdServer.syncRaftConfig
 * does): members added or re-roled, others removed. Nothing is done for an
 * empty membership (a backend that has applied nothing yet).
 */
function syncRaftConfig(raft: Raft, m: Members): void {
  if (m.voters.length === 0) return;
  const cs = raft.trk.confState();
  for (const id of m.voters) if (!cs.voters.includes(id)) raft.applyConfChange({ type: "addNode", nodeId: id });
  for (const id of m.learners) if (!cs.learners.includes(id)) raft.applyConfChange({ type: "addLearnerNode", nodeId: id });
  for (const id of [...cs.voters, ...cs.learners]) {
    if (!m.voters.includes(id) && !m.learners.includes(id)) raft.applyConfChange({ type: "removeNode", nodeId: id });
  }
}

// ------------------------------------------------------------- the nodes

class ManualTicker implements Ticker {
  private readonly fns = new Set<() => void>();
  every(_ms: number, fn: () => void): () => void {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }
  tick(): void {
    for (const f of [...this.fns]) f();
  }
}

interface SimNode {
  readonly id: bigint;
  /** The disk as of now (a crash replaces it with what came back). */
  fs: SimFs;
  readonly backend: Backend;
  up: boolean;
  starting: boolean;
  incarnation: number;
  raft: RaftNode | undefined;
  sm: SimKv | undefined;
  ticker: ManualTicker | undefined;
  /** Resolvers of virtual-time waits (held fsyncs, apply latency) of this incarnation. */
  held: Set<() => void>;
  /** Removed from the cluster and stopped for good. */
  retired: boolean;
  /** The membership raft learns at the first start (the initial cluster, or the cluster joined); later starts read the backend's. */
  bootstrap: Members | undefined;
}

// ------------------------------------------------------------ the faults

/** The fault mix of one seed ("swarm testing": each seed stresses different things). */
interface Faults {
  dropP: number;
  dupP: number;
  maxDelay: number;
  slowP: number;
  crashEveryMs: number; // 0 = no crashes
  /** Of the crash-loop events, the share that arm a disk error instead of cutting the power. */
  diskFaultP: number;
  partitionEveryMs: number; // 0 = no partitions
  /** fsync latency, virtual ms (0: instant). */
  fsyncMaxMs: number;
  /** Extra apply latency, virtual ms (0: none): lets persists overlap applies. */
  applyMaxMs: number;
  snapshotCount: number;
  catchUpEntries: number;
  segmentBytes: number;
  preVote: boolean;
  /** Membership changes during the fault phase (5-member runs): remove a voter, add a new member as a learner, promote it. */
  membership: boolean;
}

function chooseFaults(r: SeededRand): Faults {
  return {
    dropP: r.pick([0, 0.01, 0.05, 0.15]),
    dupP: r.pick([0, 0.02, 0.1]),
    maxDelay: r.pick([3, 10, 30]),
    slowP: r.pick([0, 0.02, 0.1]),
    crashEveryMs: r.pick([0, 150, 400, 1000]),
    diskFaultP: r.pick([0, 0.2, 0.5]),
    partitionEveryMs: r.pick([0, 100, 400, 1500]),
    fsyncMaxMs: r.pick([0, 2, 5, 15]),
    applyMaxMs: r.pick([0, 0, 3, 10]),
    snapshotCount: r.pick([4, 10, 30, 100]),
    catchUpEntries: r.pick([0, 2, 10, 50]),
    segmentBytes: r.pick([1024, 4096, 64 * 1024]),
    preVote: r.chance(0.75),
    membership: r.chance(0.5),
  };
}

function describeFaults(f: Faults): string {
  return (
    `drop=${f.dropP} dup=${f.dupP} delay=1-${f.maxDelay}ms slow=${f.slowP} crashEvery=${f.crashEveryMs}ms diskFault=${f.diskFaultP} ` +
    `partitionEvery=${f.partitionEveryMs}ms fsync<=${f.fsyncMaxMs}ms apply<=${f.applyMaxMs}ms snapshotCount=${f.snapshotCount} ` +
    `catchUp=${f.catchUpEntries} segment=${f.segmentBytes}B prevote=${f.preVote} membership=${f.membership}`
  );
}

/** FNV-1a over the trace's text, 32 bits per lane, two lanes. */
class TraceHash {
  private a = 0x811c9dc5;
  private b = 0x01000193;
  add(s: string): void {
    let a = this.a;
    let b = this.b;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193) >>> 0;
      b = Math.imul(b ^ c, 0x5bd1e995) >>> 0;
    }
    this.a = Math.imul(a ^ 10, 0x01000193) >>> 0;
    this.b = b;
  }
  hex(): string {
    return this.a.toString(16).padStart(8, "0") + this.b.toString(16).padStart(8, "0");
  }
}

type EventFn = () => void | Promise<void>;

// ---------------------------------------------------------- the simulator

export class DriverSim {
  private readonly rand: SeededRand;
  private readonly q = new EventQueue<EventFn>();
  private now = 0;
  /** A strictly increasing logical clock for the history (real-time order of invoke/return). */
  private clock = 0;
  private readonly ids: bigint[];
  private readonly nodes: SimNode[] = [];
  private readonly faults: Faults;
  private blocked = new Set<string>();
  private healed = false;
  private readonly history: KvEvent[] = [];
  private readonly traceLines: string[] = [];
  private readonly traceHash = new TraceHash();
  /** The first failure; thrown from the run loop (failures inside RaftNode's promise chains land here too). */
  private failure: DriverSimFailure | undefined;

  private readonly leaderOfTerm = new Map<bigint, bigint>();
  private readonly committed = new Map<bigint, string>(); // index -> fingerprint
  private readonly stateAt = new Map<bigint, string>(); // index -> state hash after applying it
  private crashes = 0;
  private diskFaults = 0;
  private tornTails = 0;
  private snapshotsSent = 0;
  private confChanges = 0;
  private snapshotsRestored = 0;
  private localSnapshots = 0;
  private fsyncs = 0;

  constructor(readonly opts: DriverSimOptions) {
    this.rand = new SeededRand(opts.seed);
    this.faults = chooseFaults(this.rand);
    this.ids = Array.from({ length: opts.nodes }, (_, i) => BigInt(i + 1));
    for (const id of this.ids) this.addNode(id, { voters: this.ids, learners: [], removed: [] });
  }

  private addNode(id: bigint, bootstrap: Members): SimNode {
    const n: SimNode = {
      id,
      fs: new SimFs(),
      backend: new Backend(),
      up: false,
      starting: false,
      incarnation: 0,
      raft: undefined,
      sm: undefined,
      ticker: undefined,
      held: new Set(),
      retired: false,
      bootstrap,
      };
    this.nodes.push(n);
    return n;
  }

  // ------------------------------------------------------------ failures

  /** Records the first failure and throws it (the run loop rethrows it even if a promise chain swallowed it). */
  fail(msg: string): never {
    if (this.failure === undefined) {
      const tail = this.traceLines.slice(-Number(process.env["DRIVER_SIM_TRACE_LINES"] ?? 60)).join("\n");
      this.failure = new DriverSimFailure(
        `seed ${this.opts.seed}: ${msg}\n  at virtual time ${this.now}ms; faults: ${describeFaults(this.faults)}\n` +
          (tail ? `  last events:\n${tail}\n` : "") +
          `reproduce with DRIVER_SIM_SEED=${this.opts.seed}` +
          (this.opts.trace ? "" : " (add DRIVER_SIM_TRACE=1 for the last events)"),
      );
    }
    throw this.failure;
  }

  hashTrace(s: string): void {
    this.traceHash.add(s);
    if (this.opts.trace) {
      this.traceLines.push(`  ${this.now}ms ${s}`);
      if (this.traceLines.length > 2000) this.traceLines.splice(0, 1000);
    }
  }

  private readonly refusedAt = new Set<bigint>();
  /** A committed conf change the state machine refused (counted once per index). */
  confRefused(n: SimNode, e: Entry): void {
    if (this.refusedAt.has(e.index)) return;
    this.refusedAt.add(e.index);
    const cc = Raft.confChangeOf(e);
    this.hashTrace(`refused ${cc.type} ${cc.nodeId} at ${e.index} on ${n.id}`);
  }

  localSnapshot(n: SimNode, applied: bigint): void {
    this.localSnapshots++;
    this.hashTrace(`local snapshot ${n.id} at ${applied}`);
  }

  restored(): void {
    this.snapshotsRestored++;
  }

  // ------------------------------------------------------------- invariants

  private fingerprint(e: Entry): string {
    return `${e.term}:${e.type}:${e.type === "normal" ? dec.decode(e.data) : Buffer.from(e.data).toString("hex")}`;
  }

  /** Every committed entry is the same wherever it shows up. */
  checkCommitted(n: SimNode, e: Entry, where: string): void {
    const fp = this.fingerprint(e);
    const prev = this.committed.get(e.index);
    if (prev === undefined) this.committed.set(e.index, fp);
    else if (prev !== fp) this.fail(`committed entry ${e.index} ${where} on node ${n.id} is ${fp}, elsewhere ${prev}`);
  }

  /** The state after index i is the same on every node, whichever way it got there. */
  checkState(n: SimNode, i: bigint, h: string, where: string): void {
    const prev = this.stateAt.get(i);
    if (prev === undefined) this.stateAt.set(i, h);
    else if (prev !== h) this.fail(`state at index ${i} ${where} on node ${n.id} is ${h}, elsewhere ${prev}`);
  }

  private checkLeader(id: bigint, term: bigint, why: string): void {
    const other = this.leaderOfTerm.get(term);
    if (other === undefined) this.leaderOfTerm.set(term, id);
    else if (other !== id) this.fail(`two leaders in term ${term}: ${other} and ${id} (${why})`);
  }

  /**
   * One leader per term; and once raft has applied what the state machine has
   * (every conf change up to there applied to raft too), raft's configuration is
   * the membership the state machine holds.
   */
  private checkNodes(): void {
    for (const n of this.nodes) {
      if (!n.up) continue;
      const raft = n.raft!;
      if (raft.isLeader) this.checkLeader(n.id, raft.term, "role");
      const sm = n.sm!;
      const log = raft.rn.raft.raftLog;
      // Raft switches to a leader snapshot's configuration when it takes the message; the state machine follows when the driver restores it.
      if (sm.applied === 0n || sm.applied === sm.configCheckedAt || log.applied !== sm.applied || log.firstIndex() - 1n > sm.applied) continue;
      sm.configCheckedAt = sm.applied;
      const cs = raft.rn.raft.trk.confState();
      const m = sm.members();
      const v = sorted(cs.voters).join(",");
      const l = sorted(cs.learners).join(",");
      if (v !== m.voters.join(",") || l !== m.learners.join(",")) {
        this.fail(`node ${n.id} at ${sm.applied}: raft's configuration (voters ${v}; learners ${l}) is not the membership (voters ${m.voters.join(",")}; learners ${m.learners.join(",")})`);
      }
    }
  }

  /** What a restarted node's WAL holds must agree with what was committed. */
  private checkWal(n: SimNode, st: WalState): void {
    const last = st.entries.length > 0 ? st.entries[st.entries.length - 1]!.index : st.snapshot.index;
    if (st.hardState.commit > last) this.fail(`node ${n.id}'s WAL has commit ${st.hardState.commit} beyond its log (last ${last})`);
    for (const e of st.entries) if (e.index <= st.hardState.commit) this.checkCommitted(n, e, "in the WAL after a restart");
    const snapTerm = this.committed.get(st.snapshot.index);
    if (st.snapshot.index > 0n && snapTerm !== undefined && !snapTerm.startsWith(`${st.snapshot.term}:`)) {
      this.fail(`node ${n.id}'s WAL snapshot marker ${st.snapshot.index}@${st.snapshot.term} contradicts committed entry ${snapTerm}`);
    }
  }

  // ------------------------------------------------------------- time

  private at(delay: number, fn: EventFn): void {
    this.q.push(this.now + delay, fn);
  }

  /** Resolves after `ms` of virtual time, or when the node's incarnation ends (crash). */
  private sleep(n: SimNode, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const held = n.held;
      let done = false;
      const fire = () => {
        if (done) return;
        done = true;
        held.delete(fire);
        resolve();
      };
      held.add(fire);
      this.at(ms, fire);
    });
  }

  async applyLatency(n: SimNode): Promise<void> {
    const max = this.faults.applyMaxMs;
    if (max > 0 && this.rand.chance(0.5)) await this.sleep(n, this.rand.range(1, max));
  }

  /**
   * Lets Node's event loop run until nothing is pending: RaftNode's loop runs on
   * setImmediate and everything else is promise continuations (microtasks run
   * to completion between immediates), so "no immediate left" means quiescent.
   */
  private async drain(): Promise<void> {
    for (let i = 0; ; i++) {
      await new Promise<void>((r) => setImmediate(r));
      if (this.failure !== undefined) throw this.failure;
      if (!process.getActiveResourcesInfo().includes("Immediate")) return;
      if (i > 100_000) this.fail("the event loop never went quiet");
    }
  }

  // ------------------------------------------------------------- node life

  private onSyncHook(n: SimNode): (path: string) => Promise<void> {
    return async () => {
      this.fsyncs++;
      const max = this.faults.fsyncMaxMs;
      if (max > 0) await this.sleep(n, this.rand.range(1, max));
    };
  }

  /** Creates every member's WAL with the bootstrap entries, as EtcdServer.start does for a new cluster. */
  private async bootstrap(n: SimNode): Promise<void> {
    const wal = await Wal.create(WAL_DIR, { memberId: n.id, clusterId: CLUSTER_ID }, { fs: n.fs, segmentBytes: this.faults.segmentBytes });
    const ents: Entry[] = this.ids.map((id, i) => ({
      term: 1n,
      index: BigInt(i + 1),
      type: "confChange",
      data: encodeConfChange({ type: "addNode", nodeId: id }),
    }));
    const hs = { term: 1n, vote: 0n, commit: BigInt(ents.length) };
    await wal.save(hs, ents);
    await wal.close();
  }

  /**
   * (Re)starts a member from its disk, as EtcdServer.start does: open the WAL
   * (repairing a torn tail), rebuild MemoryStorage from it, load the backend at
   * its consistent_index, restore a recorded leader snapshot the backend has not
   * caught up with, then start RaftNode with applied = the snapshot index (the
   * state machine skips re-delivered entries at or below its consistent_index).
   */
  private async start(n: SimNode): Promise<void> {
    if (n.up || n.starting || n.retired) return;
    n.starting = true;
    const inc = ++n.incarnation;
    n.held = new Set();
    const fs = n.fs;
    fs.onSync = undefined; // recovery runs within this instant
    let opened: Awaited<ReturnType<typeof Wal.open>>;
    try {
      opened = await Wal.open(WAL_DIR, { memberId: n.id, clusterId: CLUSTER_ID }, { fs, segmentBytes: this.faults.segmentBytes });
    } catch (err) {
      this.fail(`node ${n.id} cannot open its WAL after a crash: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    const st = opened.state;
    if (st.repairedTail !== undefined) this.tornTails++;
    this.checkWal(n, st);
    const storage = restoreStorage(st); // as EtcdServer.start does

    const sm = new SimKv(this, n, n.backend.durable);
    if (sm.applied > 0n) this.checkState(n, sm.applied, sm.hash(), "in the durable backend after a restart");
    if (st.snapshot.index > sm.applied) {
      // A leader snapshot was recorded in the WAL but the crash came before the backend was replaced.
      await sm.restore({ metadata: st.snapshot, data: new Uint8Array(0) });
    }
    if (sm.removed.has(n.id)) {
      // It applied its own removal before the crash: it stays down.
      sm.kill();
      await opened.wal.close().catch(() => undefined);
      n.starting = false;
      this.retire(n, "found itself removed at start");
      return;
    }
    const ticker = new ManualTicker();
    const wal = opened.wal;
    const log: RaftLogStore =
      this.opts.bug !== "lazyFsync"
        ? wal
        : {
            // The deliberate bug: report writes durable as soon as they are queued.
            save: (hs, ents) => (wal.save(hs, ents).catch(() => undefined), Promise.resolve()),
            saveSnapshot: (meta) => (wal.saveSnapshot(meta).catch(() => undefined), Promise.resolve()),
            releaseTo: (i) => wal.releaseTo(i),
            close: () => wal.close(),
          };
    const raft = new RaftNode({
      id: n.id,
      storage,
      log,
      sink: { send: (msgs) => this.sendAll(n, inc, msgs) },
      sm,
      tickMs: TICK_MS,
      electionTick: ELECTION_TICK,
      heartbeatTick: 1,
      applied: storage.snapshot().metadata.index,
      ticker,
      preVote: this.faults.preVote,
      seed: this.rand.intn(2 ** 31),
      logger: SILENT_LOGGER,
      snapshotCount: BigInt(this.faults.snapshotCount),
      catchUpEntries: BigInt(this.faults.catchUpEntries),
      onFatal: (err) => this.onFatal(n, inc, err),
    });
    // Raft learns the configuration before it applies the entries that carry it (EtcdServer.start):
    // the initial or joined cluster at the first start, the backend's membership after that.
    const known = n.bootstrap ?? sm.members();
    n.bootstrap = undefined;
    syncRaftConfig(raft.rn.raft, known);
    n.raft = raft;
    n.sm = sm;
    n.ticker = ticker;
    n.up = true;
    n.starting = false;
    fs.onSync = this.onSyncHook(n);
    this.hashTrace(`start ${n.id} incarnation ${inc} wal=${st.snapshot.index}/${st.hardState.commit}/${st.entries.length} backend=${sm.applied}`);
    raft.start();
    raft.advanceTicks(raft.rn.raft.electionTimeout - 1);
    const tick = () => {
      if (!n.up || n.incarnation !== inc) return;
      ticker.tick();
      this.at(TICK_MS, tick);
    };
    this.at(1 + this.rand.intn(TICK_MS), tick);
  }

  /** Power cut: the process is gone, the disk keeps what a crash keeps. */
  private crash(n: SimNode, why: string): void {
    if (!n.up) return;
    this.hashTrace(`crash ${n.id} (${why})`);
    n.up = false;
    n.incarnation++;
    n.sm!.kill();
    void n.raft!.stop();
    n.fs = n.fs.crash(this.rand);
    n.backend.crash(this.rand);
    // Let the old incarnation's held fsyncs and applies finish: they find a dead disk and a dead state machine.
    for (const f of [...n.held]) f();
    n.raft = undefined;
    n.sm = undefined;
    n.ticker = undefined;
  }

  /** The state machine applied this member's removal: it stops for good (EtcdServer.onRemovedFromCluster). */
  removedSelf(n: SimNode): void {
    const inc = n.incarnation;
    this.at(0, () => {
      if (n.incarnation === inc) this.retire(n, "applied its own removal");
    });
  }

  private retire(n: SimNode, why: string): void {
    if (n.retired) return;
    n.retired = true;
    this.hashTrace(`retire ${n.id} (${why})`);
    if (!n.up) return;
    n.up = false;
    n.incarnation++;
    n.sm!.kill();
    void n.raft!.stop();
    for (const f of [...n.held]) f();
    n.raft = undefined;
    n.sm = undefined;
    n.ticker = undefined;
  }

  private onFatal(n: SimNode, inc: number, err: unknown): void {
    if (this.failure !== undefined || n.incarnation !== inc) return; // a crashed incarnation's leftovers
    const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    if (err instanceof WalFailedError || err instanceof SimFaultError) {
      // The disk failed: the member stops (etcd exits) and comes back from its disk.
      this.diskFaults++;
      this.hashTrace(`disk fault ${n.id}: ${msg}`);
      this.at(0, () => {
        if (n.incarnation !== inc) return;
        this.crash(n, "disk error");
        this.at(this.rand.range(20, 400), () => this.start(n)); // also after healing: the member must come back
      });
      return;
    }
    this.fail(`node ${n.id} stopped on a fatal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }

  // ------------------------------------------------------------- network

  private sendAll(n: SimNode, inc: number, msgs: readonly Message[]): void {
    if (n.incarnation !== inc || !n.up) return;
    for (const m of msgs) this.send(n, m);
  }

  private send(from: SimNode, raw: Message): void {
    let m = raw;
    if (m.type === "MsgApp" || m.type === "MsgHeartbeat" || m.type === "MsgSnap") this.checkLeader(m.from, m.term, m.type);
    let payload: Image | undefined;
    if (m.type === "MsgSnap") {
      // The transport streams the leader's backend as it is now (snapshotPayload), and
      // the message describes that image, as EtcdServer.mergedSnapshotMessage does: the
      // applied index, its term and raft's current configuration.
      this.snapshotsSent++;
      payload = from.sm!.image();
      const snap = m.snapshot!;
      if (payload.applied > snap.metadata.index) {
        const r = from.raft!.rn.raft;
        let term: bigint | undefined;
        try {
          term = r.raftLog.term(payload.applied);
        } catch {
          term = undefined;
        }
        if (term !== undefined) m = { ...m, snapshot: { metadata: { index: payload.applied, term, confState: r.trk.confState() }, data: snap.data } };
      }
    }
    const f = this.faults;
    const copies = this.rand.chance(f.dupP) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      if (this.blocked.has(`${m.from}>${m.to}`) || this.rand.chance(f.dropP)) {
        if (m.type === "MsgSnap") this.reportSnapshot(m, false);
        continue;
      }
      let delay = 1 + this.rand.intn(f.maxDelay);
      if (this.rand.chance(f.slowP)) delay += this.rand.range(20, 200);
      this.at(delay, () => this.deliver(m, payload));
    }
  }

  private reportSnapshot(m: Message, ok: boolean): void {
    const from = this.nodes[Number(m.from) - 1]!;
    this.at(1, () => {
      if (from.up) from.raft!.reportSnapshot(m.to, ok);
    });
  }

  private deliver(m: Message, payload: Image | undefined): void {
    const n = this.nodes[Number(m.to) - 1];
    if (n === undefined || !n.up || this.blocked.has(`${m.from}>${m.to}`)) {
      if (m.type === "MsgSnap") this.reportSnapshot(m, false);
      return;
    }
    if (n.sm!.removed.has(m.from)) {
      // The transport refuses a removed member's messages and tells it so; it stops.
      const from = this.nodes[Number(m.from) - 1]!;
      this.at(1, () => this.retire(from, `told by ${n.id} that it was removed`));
      return;
    }
    this.hashTrace(`deliver ${m.type} ${m.from}>${m.to} t${m.term} i${m.index} c${m.commit} n${m.entries.length}${m.reject ? " reject" : ""}`);
    if (this.opts.trace) this.traceLines.push(`    ${describeMessage(m).split("\n")[0]}`);
    if (m.type === "MsgSnap" && payload !== undefined) {
      // The snapshot file is stored (durably) before raft sees the message.
      n.backend.snapFiles.set(m.snapshot!.metadata.index, payload);
      this.hashTrace(`stored snapshot file ${m.snapshot!.metadata.index} (image ${payload.applied}) on ${n.id}`);
    }
    n.raft!.step(m);
    if (m.type === "MsgSnap") this.reportSnapshot(m, true);
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

  /** A put, delete or compare-and-swap through RaftNode.propose on `n`, answered when `n` applies it. */
  private clientWrite(client: number, cmd: Cmd, n: SimNode, next: () => void, lastSeen: Map<string, string | null>): void {
    const invoke = this.clock++;
    let settled = false;
    const settle = (outcome: Outcome, r?: CmdResult) => {
      if (settled) return;
      settled = true;
      const op = settledWrite(cmd, outcome, r, lastSeen);
      this.record({ client, key: cmd.key, invoke, op }, outcome);
      this.at(this.rand.intn(20), next);
    };
    if (!n.up || n.raft!.isStopped) {
      settle("failed"); // connection refused: nothing was sent
      return;
    }
    const sm = n.sm!;
    sm.writeWaits.set(cmd.id, (r) => settle("ok", r));
    n.raft!.propose(enc.encode(JSON.stringify(cmd)), (dropped) => {
      if (dropped === undefined) return;
      sm.writeWaits.delete(cmd.id);
      settle("failed");
    });
    if (this.opts.bug === "earlyAck" && cmd.op !== "cas") settle("ok");
    this.at(500, () => {
      sm.writeWaits.delete(cmd.id);
      settle("unknown"); // timed out, or the member crashed: it may or may not have happened
    });
  }

  private clientGet(client: number, ctx: string, key: string, n: SimNode, next: () => void, lastSeen: Map<string, string | null>): void {
    const invoke = this.clock++;
    let settled = false;
    const settle = (value: string | null | undefined) => {
      if (settled) return;
      settled = true;
      if (value === undefined) this.record({ client, key, invoke, op: { kind: "get", observed: null } }, "failed");
      else {
        this.record({ client, key, invoke, op: { kind: "get", observed: value } }, "ok");
        lastSeen.set(key, value);
      }
      this.at(this.rand.intn(20), next);
    };
    if (!n.up || n.raft!.isStopped) {
      settle(undefined);
      return;
    }
    const sm = n.sm!;
    if (this.opts.bug === "staleReads") {
      settle(sm.kv.get(key) ?? null);
      return;
    }
    sm.readWaits.set(ctx, { index: undefined, key, done: settle });
    try {
      n.raft!.readIndex(enc.encode(ctx));
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
      sm.readWaits.delete(ctx);
      settle(undefined);
      return;
    }
    this.at(500, () => {
      sm.readWaits.delete(ctx);
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
          if (this.rand.chance(f.diskFaultP)) {
            // An EIO on a later append or fsync: the WAL fails for good and the member stops (onFatal).
            n.fs.failNext(this.rand.pick(["append", "sync", "sync", "syncDir", "create", "rename", "unlink"] as const), this.rand.intn(5));
          } else {
            this.crashes++;
            this.crash(n, "power cut");
            this.at(this.rand.range(20, 600), () => (this.healed ? undefined : this.start(n)));
          }
        }
        this.at(this.rand.range(1, 2 * f.crashEveryMs), crashLoop);
      };
      this.at(this.rand.range(1, 2 * f.crashEveryMs), crashLoop);
    }
    if (f.membership && this.opts.nodes >= 5) {
      const membershipLoop = async () => {
        if (this.healed) return;
        await this.proposeMembershipChange();
        this.at(this.rand.range(20, 300), membershipLoop);
      };
      this.at(this.rand.range(20, 300), membershipLoop);
    }
    if (f.partitionEveryMs > 0) {
      const partitionLoop = () => {
        if (this.healed) return;
        this.blocked = randomPartition(this.nodes.map((n) => n.id), this.rand);
        this.hashTrace(`partition ${[...this.blocked].join(" ") || "(none)"}`);
        this.at(this.rand.range(1, 2 * f.partitionEveryMs), partitionLoop);
      };
      this.at(this.rand.range(1, 2 * f.partitionEveryMs), partitionLoop);
    }
  }

  /**
   * One change through any member that knows a leader (raft forwards it),
   * checked against that member's membership as etcd's member API does at
   * proposal time (a lagging member may let through what the state machine
   * refuses when it applies): promote the learner, remove a voter (the leader
   * included) while more than 3 remain, or add a new member (a fresh ID and an
   * empty disk) as a learner and start it, as an operator would.
   */
  private async proposeMembershipChange(): Promise<void> {
    const candidates = this.nodes.filter((n) => n.up && n.raft!.lead !== 0n);
    if (candidates.length === 0) return;
    const leader = this.rand.pick(candidates);
    const m = leader.sm!.members();
    const choice = this.rand.intn(3);
    let cc: { type: "addNode" | "addLearnerNode" | "removeNode"; nodeId: bigint } | undefined;
    let joiner: bigint | undefined;
    if (choice === 0 && m.learners.length > 0) {
      // etcd promotes only a learner in sync with the leader (its match at least 90% of the leader's commit).
      const id = this.rand.pick(m.learners);
      const lead = this.nodes.find((n) => n.up && n.raft!.isLeader);
      const match = lead?.raft!.rn.raft.trk.progress.get(id)?.match ?? 0n;
      if (lead !== undefined && match * 10n >= lead.raft!.committed * 9n) cc = { type: "addNode", nodeId: id };
    }
    else if (choice === 1 && m.voters.length > 3) cc = { type: "removeNode", nodeId: this.rand.pick(m.voters) };
    else if (m.learners.length < MAX_LEARNERS && this.nodes.length < 2 * this.opts.nodes) {
      joiner = BigInt(this.nodes.length + 1);
      cc = { type: "addLearnerNode", nodeId: joiner };
    }
    if (cc === undefined) return;
    try {
      leader.raft!.proposeConfChange({ ...cc, context: new Uint8Array(0) });
    } catch (err) {
      if (!isRaftError(err, "ErrProposalDropped")) throw err;
      return;
    }
    this.confChanges++;
    this.hashTrace(`propose ${cc.type} ${cc.nodeId} via ${leader.id}`);
    if (joiner !== undefined) {
      // The new member joins with the cluster as the leader knows it, itself a learner.
      const n = this.addNode(joiner, { voters: m.voters, learners: [...m.learners, joiner], removed: [] });
      await Wal.create(WAL_DIR, { memberId: n.id, clusterId: CLUSTER_ID }, { fs: n.fs, segmentBytes: this.faults.segmentBytes });
      await this.start(n);
    }
  }

  private async heal(): Promise<void> {
    this.hashTrace("heal");
    this.healed = true;
    this.blocked = new Set();
    this.faults.dropP = 0;
    this.faults.dupP = 0;
    this.faults.slowP = 0;
    // A disk error armed but not hit yet may still fire after this: that member stops and restarts.
    for (const n of this.nodes) if (!n.up) await this.start(n);
  }

  // ------------------------------------------------------------------ run

  /** Runs events up to virtual time t, draining Node's event loop after each instant's events. */
  private async runUntil(t: number): Promise<void> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const next = this.q.peekTime();
      if (next === undefined || next > t) return;
      this.now = next;
      while (this.q.peekTime() === next) {
        const r = this.q.pop()!.fn();
        if (r !== undefined) await r;
        if (this.failure !== undefined) throw this.failure;
      }
      await this.drain();
      this.checkNodes();
    }
  }

  /** Runs the simulation; any failure (invariant, checker, exception) names the seed. */
  async run(): Promise<DriverSimResult> {
    try {
      return await this.runInner();
    } catch (err) {
      if (this.failure !== undefined) throw this.failure;
      if (err instanceof DriverSimFailure) throw err;
      return this.fail(`exception: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    } finally {
      // Stop whatever is still running; nothing may be left scheduled behind the test.
      for (const n of this.nodes) {
        if (n.up) {
          n.sm!.kill();
          n.up = false;
          n.incarnation++;
          void n.raft!.stop();
          for (const f of [...n.held]) f();
        }
      }
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  private async runInner(): Promise<DriverSimResult> {
    for (const n of this.nodes) await this.bootstrap(n);
    for (const n of this.nodes) await this.start(n);
    for (let c = 1; c <= this.opts.clients; c++) this.runClient(c);
    this.scheduleFaults();
    await this.runUntil(this.opts.faultMs);

    // Liveness: heal, then a leader must commit a new write within the bound.
    await this.heal();
    const healedAt = this.now;
    const deadline = healedAt + this.opts.livenessTicks * TICK_MS;
    const probeId = `liveness-${this.opts.seed}`;
    let committedAt: number | undefined;
    const probe = () => {
      if (committedAt !== undefined) return;
      if (this.nodes.some((n) => n.up && n.sm!.seen.has(probeId))) {
        committedAt = this.now;
        return;
      }
      const leader = this.nodes.find((n) => n.up && n.raft!.isLeader);
      if (leader !== undefined) {
        leader.raft!.propose(enc.encode(JSON.stringify({ id: probeId, op: "put", key: "liveness", value: "1" } satisfies Cmd)));
      }
      this.at(5 * TICK_MS, probe);
    };
    this.at(0, probe);
    while (committedAt === undefined && this.now < deadline && this.q.size > 0) await this.runUntil(Math.min(deadline, this.now + 100));
    if (committedAt === undefined) {
      const roles = this.nodes.map((n) => `${n.id}:${n.raft?.rn.raft.state}@${n.raft?.term} applied=${n.sm?.applied}`).join(" ");
      this.fail(`liveness: no write committed within ${this.opts.livenessTicks} ticks after healing (${roles})`);
    }
    // Let client operations finish (timeouts are 500ms), then every member must converge.
    await this.runUntil(this.now + 1000);
    const convergeBy = this.now + 3000;
    // The members as the leader knows them; nodes outside (removed, or a join whose add never committed) do not count.
    const memberNodes = (): SimNode[] => {
      const leader = this.nodes.find((n) => n.up && n.raft!.isLeader);
      if (leader === undefined) return this.nodes.filter((n) => !n.retired);
      const m = leader.sm!.members();
      return [...m.voters, ...m.learners].map((id) => this.nodes[Number(id) - 1]!);
    };
    const converged = () => {
      const ns = memberNodes();
      if (!ns.every((n) => n.up)) return false;
      const a = ns.map((n) => n.sm!.applied);
      const h = ns.map((n) => n.sm!.hash());
      return a.every((x) => x === a[0]) && h.every((x) => x === h[0]) && ns.every((n) => n.raft!.committed === n.sm!.applied);
    };
    // No writes are needed here: a member added after the leader's latest snapshot takes
    // a snapshot that describes the leader's image (see send), not the stored one.
    while (!converged() && this.now < convergeBy && this.q.size > 0) await this.runUntil(this.now + 20);
    if (!converged()) {
      const desc = memberNodes().map((n) => `${n.id}: ${n.up ? `applied ${n.sm!.applied} committed ${n.raft!.committed}` : n.retired ? "retired" : "down"}`);
      this.fail(`members did not converge after healing: ${desc.join(", ")}`);
    }
    const members = memberNodes()[0]!.sm!.members();

    const check = checkKvHistory(this.history);
    if (!check.ok) this.fail(`history is not linearizable on key ${check.key}: ${check.reason}`);
    const counts = historyCounts(this.history);
    return {
      seed: this.opts.seed,
      ops: this.history.length,
      ...counts,
      leaders: this.leaderOfTerm.size,
      crashes: this.crashes,
      diskFaults: this.diskFaults,
      tornTails: this.tornTails,
      snapshotsSent: this.snapshotsSent,
      confChanges: this.confChanges,
      confRefused: this.refusedAt.size,
      finalMembers: `v${members.voters.join(",")} l${members.learners.join(",")}`,
      snapshotsRestored: this.snapshotsRestored,
      localSnapshots: this.localSnapshots,
      fsyncs: this.fsyncs,
      livenessTicks: Math.ceil((committedAt - healedAt) / TICK_MS),
      check,
      faults: describeFaults(this.faults),
      trace: this.traceHash.hex(),
    };
  }
}
