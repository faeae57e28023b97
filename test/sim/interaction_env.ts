// An interaction environment for raft scenarios (after etcd-io/raft's
// rafttest.InteractionEnv): a handful of RawNodes, a message queue the test
// delivers by hand, and commands that print exactly what happened — every Ready,
// every delivered message, and the nodes' log lines.

import {
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  MemoryStorage,
  type RaftLogger,
  RawNode,
  type Ready,
  SeededRand,
  type Snapshot,
  describeEntry,
  describeMessage,
  describeReady,
  describeState,
  isRaftError,
} from "../../node/src/raft/index.js";
import { Raft } from "../../node/src/raft/raft.js";
import type { CmdArg, TestCase } from "./datadriven.js";

type Level = "debug" | "info" | "warn" | "none";
const LEVELS: Record<Level, number> = { debug: 0, info: 1, warn: 2, none: 3 };

interface EnvNode {
  readonly id: bigint;
  rn: RawNode;
  readonly storage: AppStorage;
  readonly opts: NodeOpts;
  /** The replicated "state machine": the data of every applied normal entry. */
  applied: string[];
  appliedIndex: bigint;
  confState: ConfState;
}

interface NodeOpts {
  preVote: boolean;
  checkQuorum: boolean;
  electionTick: number;
  heartbeatTick: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
  maxSizePerMsg: number;
}

/**
 * The node's disk. Like a real application (and etcd's interaction env), it makes
 * a fresh snapshot of the applied state when raft asks for one to send.
 */
class AppStorage extends MemoryStorage {
  app: EnvNode | undefined;

  override snapshot(): Snapshot {
    const n = this.app;
    if (n !== undefined && n.appliedIndex > super.snapshot().metadata.index) {
      this.createSnapshot(n.appliedIndex, n.confState, enc.encode(JSON.stringify(n.applied)));
    }
    return super.snapshot();
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class InteractionEnv {
  private readonly nodes = new Map<bigint, EnvNode>();
  private messages: Message[] = [];
  private out: string[] = [];
  private indent = "";
  private level: Level = "info";
  private readonly isolated = new Set<bigint>();

  handle(tc: TestCase): string {
    this.out = [];
    this.indent = "";
    switch (tc.cmd) {
      case "log-level":
        this.level = (firstKey(tc) as Level) ?? "info";
        break;
      case "add-nodes":
        this.addNodes(tc);
        break;
      case "campaign":
        this.withNode(tc, (n) => n.rn.campaign());
        break;
      case "propose":
        this.propose(tc);
        break;
      case "propose-conf-change":
        this.proposeConfChange(tc);
        break;
      case "process-ready":
        this.processReadyCmd(ids(tc));
        break;
      case "deliver-msgs":
        this.deliverMsgsCmd(tc);
        break;
      case "stabilize":
        this.stabilize(ids(tc).length > 0 ? ids(tc) : [...this.nodes.keys()]);
        break;
      case "tick-election":
        this.withNode(tc, (n) => this.tickN(n, n.rn.raft.state === "leader" ? n.rn.raft.electionTimeout : n.rn.raft.randomizedElectionTimeout));
        break;
      case "tick-heartbeat":
        this.withNode(tc, (n) => this.tickN(n, n.rn.raft.heartbeatTimeout));
        break;
      case "tick":
        this.withNode(tc, (n) => this.tickN(n, Number(argVal(tc, "n") ?? "1")));
        break;
      case "transfer-leadership": {
        const from = BigInt(argVal(tc, "from") ?? "0");
        const to = BigInt(argVal(tc, "to") ?? "0");
        this.node(from).rn.transferLeader(to);
        break;
      }
      case "read-index":
        this.withNode(tc, (n) => n.rn.readIndex(enc.encode(tc.args[1]?.key ?? "")));
        break;
      case "raft-log":
        this.withNode(tc, (n) => this.raftLog(n));
        break;
      case "raft-state":
        this.raftState();
        break;
      case "status":
        this.withNode(tc, (n) => this.status(n));
        break;
      case "compact":
        this.withNode(tc, (n) => this.compact(n, BigInt(tc.args[1]?.key ?? "0")));
        break;
      case "isolate":
        for (const id of ids(tc)) this.isolated.add(id);
        break;
      case "heal":
        this.isolated.clear();
        break;
      case "restart":
        this.withNode(tc, (n) => this.restart(n));
        break;
      case "report-unreachable":
        this.node(BigInt(tc.args[0]!.key)).rn.reportUnreachable(BigInt(tc.args[1]!.key));
        break;
      case "applied":
        this.withNode(tc, (n) => this.print(`applied=${n.appliedIndex} data=[${n.applied.map((s) => JSON.stringify(s)).join(" ")}]`));
        break;
      default:
        throw new Error(`unknown command ${tc.cmd}`);
    }
    return this.out.join("\n");
  }

  // ------------------------------------------------------------------ output

  private print(text: string): void {
    for (const l of text.split("\n")) this.out.push(this.indent + l);
  }

  private logger(id: bigint): RaftLogger {
    const emit = (lvl: Level, tag: string, text: string) => {
      if (LEVELS[lvl] >= LEVELS[this.level]) this.print(`${tag} ${text}`);
    };
    void id;
    return {
      debug: (t) => emit("debug", "DEBUG", t),
      info: (t) => emit("info", "INFO", t),
      warn: (t) => emit("warn", "WARN", t),
    };
  }

  private nested(header: string, fn: () => void): void {
    this.print(header);
    const prev = this.indent;
    this.indent = prev + "  ";
    try {
      fn();
    } finally {
      this.indent = prev;
    }
  }

  // ---------------------------------------------------------------- nodes

  private node(id: bigint): EnvNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  private withNode(tc: TestCase, fn: (n: EnvNode) => void): void {
    const id = tc.args[0]?.key;
    if (id === undefined) throw new Error(`${tc.cmd} needs a node id`);
    fn(this.node(BigInt(id)));
  }

  private addNodes(tc: TestCase): void {
    const count = Number(tc.args[0]?.key ?? "1");
    const voters = listArg(tc, "voters");
    const learners = listArg(tc, "learners");
    const index = BigInt(argVal(tc, "index") ?? "0");
    const opts: NodeOpts = {
      preVote: argVal(tc, "prevote") === "true",
      checkQuorum: argVal(tc, "checkquorum") === "true",
      electionTick: Number(argVal(tc, "election") ?? "10"),
      heartbeatTick: Number(argVal(tc, "heartbeat") ?? "1"),
      maxInflightMsgs: Number(argVal(tc, "max-inflight") ?? "256"),
      maxInflightBytes: Number(argVal(tc, "max-inflight-bytes") ?? "0"),
      maxSizePerMsg: Number(argVal(tc, "max-size-per-msg") ?? String(1024 * 1024)),
    };
    for (let k = 0; k < count; k++) {
      const id = BigInt(this.nodes.size + 1);
      const cs: ConfState = { voters, learners };
      let snap: Snapshot | undefined;
      if (index > 0n) {
        snap = { metadata: { index, term: 1n, confState: cs }, data: enc.encode("[]") };
      }
      const storage = new AppStorage(snap);
      const n: EnvNode = {
        id,
        storage,
        opts,
        rn: undefined as unknown as RawNode,
        applied: [],
        appliedIndex: index,
        confState: cs,
      };
      this.nodes.set(id, n);
      storage.app = n;
      n.rn = this.newRawNode(n);
    }
  }

  private newRawNode(n: EnvNode): RawNode {
    return new RawNode({
      id: n.id,
      storage: n.storage,
      electionTick: n.opts.electionTick,
      heartbeatTick: n.opts.heartbeatTick,
      rand: new SeededRand(n.id),
      applied: n.appliedIndex,
      preVote: n.opts.preVote,
      checkQuorum: n.opts.checkQuorum,
      maxInflightMsgs: n.opts.maxInflightMsgs,
      maxInflightBytes: n.opts.maxInflightBytes,
      maxSizePerMsg: n.opts.maxSizePerMsg,
      logger: this.logger(n.id),
    });
  }

  /** Crash and restart: in-memory raft state is lost; storage (the disk) survives. */
  private restart(n: EnvNode): void {
    // Read the disk as it is: the on-demand snapshot hook must not see pre-crash memory.
    n.storage.app = undefined;
    const snap = n.storage.snapshot();
    n.storage.app = n;
    n.applied = JSON.parse(dec.decode(snap.data.length > 0 ? snap.data : enc.encode("[]"))) as string[];
    n.appliedIndex = snap.metadata.index;
    n.confState = snap.metadata.confState;
    n.rn = this.newRawNode(n);
  }

  private propose(tc: TestCase): void {
    const n = this.node(BigInt(tc.args[0]!.key));
    const data = tc.args[1]?.key ?? "";
    try {
      n.rn.propose(enc.encode(data));
    } catch (err) {
      if (isRaftError(err)) this.print(`error: ${err.code}`);
      else throw err;
    }
  }

  private proposeConfChange(tc: TestCase): void {
    const n = this.node(BigInt(tc.args[0]!.key));
    const spec = (tc.input[0] ?? "").trim();
    const kinds: Record<string, ConfChange["type"]> = { v: "addNode", l: "addLearnerNode", r: "removeNode", u: "updateNode" };
    const type = kinds[spec[0] ?? ""];
    if (type === undefined) throw new Error(`bad conf change ${spec}`);
    try {
      n.rn.proposeConfChange({ type, nodeId: BigInt(spec.slice(1)) });
    } catch (err) {
      if (isRaftError(err)) this.print(`error: ${err.code}`);
      else throw err;
    }
  }

  private tickN(n: EnvNode, count: number): void {
    for (let i = 0; i < count; i++) n.rn.tick();
  }

  // ------------------------------------------------------------ ready/msgs

  private processReadyCmd(which: bigint[]): void {
    if (which.length === 1) {
      this.processReady(this.node(which[0]!));
      return;
    }
    for (const id of which) this.nested(`> ${id} handling Ready`, () => this.processReady(this.node(id)));
  }

  /** Handles one Ready as the driver loop does: persist, send, apply, advance. */
  private processReady(n: EnvNode): boolean {
    if (!n.rn.hasReady()) return false;
    const rd: Ready = n.rn.ready();
    this.print(describeReady(rd));
    // Persist.
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    // Send (a message from or to an isolated node is lost on the way).
    let dropped = 0;
    for (const m of [...rd.messages, ...rd.messagesAfterPersist]) {
      if (this.isolated.has(m.from) || this.isolated.has(m.to)) dropped++;
      else this.messages.push(m);
    }
    if (dropped > 0) this.print(`(isolated: ${dropped} message(s) dropped)`);
    // Apply.
    if (rd.snapshot) {
      n.applied = JSON.parse(dec.decode(rd.snapshot.data)) as string[];
      n.appliedIndex = rd.snapshot.metadata.index;
      n.confState = rd.snapshot.metadata.confState;
    }
    for (const e of rd.committedEntries) this.applyEntry(n, e);
    n.rn.advance(rd);
    return true;
  }

  private applyEntry(n: EnvNode, e: Entry): void {
    n.appliedIndex = e.index;
    if (e.type === "confChange") {
      n.confState = n.rn.applyConfChange(Raft.confChangeOf(e));
    } else if (e.data.length > 0) {
      n.applied.push(dec.decode(e.data));
    }
  }

  private deliverMsgsCmd(tc: TestCase): void {
    const drop = tc.args.filter((a) => a.key === "drop").flatMap((a) => a.vals.map((v) => BigInt(v)));
    const type = argVal(tc, "type");
    for (const id of drop) {
      const { taken, rest } = this.take(id, type);
      this.messages = rest;
      for (const m of taken) this.print(`dropped: ${describeMessage(m)}`);
    }
    const targets = tc.args.filter((a) => a.vals.length === 0).map((a) => BigInt(a.key));
    for (const id of targets) {
      if (targets.length === 1) this.deliverTo(id, type);
      else this.nested(`> ${id} receiving messages`, () => this.deliverTo(id, type));
    }
  }

  private take(to: bigint, type: string | undefined): { taken: Message[]; rest: Message[] } {
    const taken: Message[] = [];
    const rest: Message[] = [];
    for (const m of this.messages) {
      if (m.to === to && (type === undefined || m.type === type)) taken.push(m);
      else rest.push(m);
    }
    return { taken, rest };
  }

  private deliverTo(id: bigint, type?: string): number {
    const { taken, rest } = this.take(id, type);
    this.messages = rest;
    const n = this.node(id);
    for (const m of taken) {
      if (this.isolated.has(m.from) || this.isolated.has(m.to)) {
        this.print(`dropped: ${describeMessage(m)}`);
        continue;
      }
      this.print(describeMessage(m));
      const prev = this.indent;
      this.indent = prev + "  ";
      try {
        n.rn.step(m);
      } catch (err) {
        if (isRaftError(err)) this.print(`error: ${err.code}`);
        else throw err;
      } finally {
        this.indent = prev;
      }
    }
    return taken.length;
  }

  private stabilize(which: bigint[]): void {
    for (let round = 0; round < 1000; round++) {
      let done = true;
      for (const id of which) {
        const n = this.node(id);
        if (n.rn.hasReady()) {
          done = false;
          this.nested(`> ${id} handling Ready`, () => this.processReady(n));
        }
      }
      for (const id of which) {
        if (this.messages.some((m) => m.to === id)) {
          done = false;
          this.nested(`> ${id} receiving messages`, () => this.deliverTo(id));
        }
      }
      if (done) return;
    }
    throw new Error("stabilize did not converge in 1000 rounds");
  }

  // ---------------------------------------------------------------- inspect

  private raftLog(n: EnvNode): void {
    const first = n.storage.firstIndex();
    const last = n.storage.lastIndex();
    if (last < first) {
      this.print(`log is empty: first index=${first}, last index=${last}`);
      return;
    }
    for (const e of n.storage.entries(first, last + 1n, Number.MAX_SAFE_INTEGER)) this.print(describeEntry(e));
  }

  private raftState(): void {
    for (const n of [...this.nodes.values()].sort((a, b) => (a.id < b.id ? -1 : 1))) {
      const r = n.rn.raft;
      const role = r.trk.voters.has(n.id) ? "Voter" : r.trk.learners.has(n.id) ? "Learner" : "Non-Member";
      this.print(`${n.id}: ${describeState(r.state)} (${role}) Term:${r.term} Lead:${r.lead}`);
    }
  }

  private status(n: EnvNode): void {
    const st = n.rn.status();
    if (st.progress.size === 0) {
      this.print(`${n.id}: ${describeState(st.softState.state)} (not leader) Term:${st.hardState.term} Commit:${st.hardState.commit} Applied:${st.applied}`);
      return;
    }
    for (const [id, p] of st.progress) this.print(`${id}: ${p.description}`);
  }

  private compact(n: EnvNode, index: bigint): void {
    // The application snapshots its own state at its applied index and drops the log up to `index`.
    if (index > n.appliedIndex) throw new Error(`cannot compact ${n.id} to ${index}: applied is ${n.appliedIndex}`);
    if (n.appliedIndex > n.storage.snapshot().metadata.index) {
      n.storage.createSnapshot(n.appliedIndex, n.confState, enc.encode(JSON.stringify(n.applied)));
    }
    n.storage.compact(index);
    this.raftLog(n);
  }
}

function ids(tc: TestCase): bigint[] {
  return tc.args.filter((a) => a.vals.length === 0).map((a) => BigInt(a.key));
}

function firstKey(tc: TestCase): string | undefined {
  return tc.args[0]?.key;
}

function argVal(tc: TestCase, key: string): string | undefined {
  const a: CmdArg | undefined = tc.args.find((x) => x.key === key);
  return a?.vals[0];
}

function listArg(tc: TestCase, key: string): bigint[] {
  const a = tc.args.find((x) => x.key === key);
  return a ? a.vals.map((v) => BigInt(v)) : [];
}
