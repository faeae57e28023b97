// Rule-by-rule tests of the Raft state machine, in the spirit of etcd-io/raft's
// raft_paper_test.go: each test names the rule (and the paper section) it checks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { isRaftError } from "./errors.js";
import { SeededRand } from "./rand.js";
import { RawNode, type Ready } from "./rawnode.js";
import { MemoryStorage } from "./storage.js";
import { type Entry, type Message, type Snapshot, msg } from "./types.js";

const enc = new TextEncoder();

interface Opts {
  preVote?: boolean;
  checkQuorum?: boolean;
  maxInflightMsgs?: number;
  maxSizePerMsg?: number;
  maxUncommittedEntriesSize?: number;
  learners?: bigint[];
}

/** A tiny synchronous cluster: persist, send, apply, advance; messages delivered by pump(). */
class Cluster {
  readonly nodes = new Map<bigint, RawNode>();
  readonly storages = new Map<bigint, MemoryStorage>();
  readonly applied = new Map<bigint, Entry[]>();
  queue: Message[] = [];
  /** Messages for which this returns true are dropped. */
  drop: (m: Message) => boolean = () => false;
  /** Every message ever put on the wire, with whether it was sent before its Ready was persisted. */
  readonly wire: { m: Message; beforePersist: boolean }[] = [];

  constructor(
    readonly voters: bigint[],
    readonly opts: Opts = {},
  ) {
    const cs = { voters, learners: opts.learners ?? [] };
    for (const id of [...voters, ...(opts.learners ?? [])]) {
      const snap: Snapshot = { metadata: { index: 1n, term: 1n, confState: cs }, data: new Uint8Array(0) };
      const storage = new MemoryStorage(snap);
      this.storages.set(id, storage);
      this.applied.set(id, []);
      this.nodes.set(id, this.make(id, storage));
    }
  }

  make(id: bigint, storage: MemoryStorage): RawNode {
    return new RawNode({
      id,
      storage,
      electionTick: 10,
      heartbeatTick: 1,
      rand: new SeededRand(id),
      preVote: this.opts.preVote ?? false,
      checkQuorum: this.opts.checkQuorum ?? false,
      maxInflightMsgs: this.opts.maxInflightMsgs ?? 256,
      maxSizePerMsg: this.opts.maxSizePerMsg ?? 1 << 20,
      maxUncommittedEntriesSize: this.opts.maxUncommittedEntriesSize ?? 0,
    });
  }

  node(id: bigint): RawNode {
    return this.nodes.get(id)!;
  }

  /** Handles one Ready of node id, if any. */
  ready(id: bigint): Ready | undefined {
    const n = this.node(id);
    if (!n.hasReady()) return undefined;
    const rd = n.ready();
    for (const m of rd.messages) this.put(m, true);
    const st = this.storages.get(id)!;
    if (rd.snapshot) st.applySnapshot(rd.snapshot);
    st.append(rd.entries);
    if (rd.hardState) st.setHardState(rd.hardState);
    for (const m of rd.messagesAfterPersist) this.put(m, false);
    this.applied.get(id)!.push(...rd.committedEntries);
    n.advance(rd);
    return rd;
  }

  private put(m: Message, beforePersist: boolean): void {
    this.wire.push({ m, beforePersist });
    if (!this.drop(m)) this.queue.push(m);
  }

  /** Runs until no node has a Ready and no message is in flight. */
  pump(): void {
    for (let i = 0; i < 10000; i++) {
      let busy = false;
      for (const id of this.nodes.keys()) if (this.ready(id)) busy = true;
      const q = this.queue;
      this.queue = [];
      for (const m of q) {
        busy = true;
        const n = this.nodes.get(m.to);
        if (n === undefined) continue;
        try {
          n.step(m);
        } catch (err) {
          if (!isRaftError(err)) throw err;
        }
      }
      if (!busy) return;
    }
    throw new Error("pump did not settle");
  }

  elect(id: bigint): void {
    this.node(id).campaign();
    this.pump();
    assert.equal(this.node(id).state, "leader");
  }

  /** Crash-restart from storage (what was persisted survives, nothing else). */
  restart(id: bigint): void {
    this.nodes.set(id, this.make(id, this.storages.get(id)!));
  }

  data(id: bigint): string[] {
    return this.applied
      .get(id)!
      .filter((e) => e.data.length > 0)
      .map((e) => new TextDecoder().decode(e.data));
  }
}

test("§5.2: a candidate wins with a majority of votes and the loser steps down", () => {
  const c = new Cluster([1n, 2n, 3n]);
  c.elect(1n);
  assert.equal(c.node(2n).raft.lead, 1n);
  assert.equal(c.node(3n).raft.lead, 1n);
  assert.equal(c.node(1n).raft.term, 1n);
  // A candidate that hears from the new leader of its term becomes follower.
  const c2 = new Cluster([1n, 2n, 3n]);
  c2.drop = (m) => m.from === 3n || m.to === 3n;
  c2.node(3n).campaign();
  c2.elect(1n);
  c2.drop = () => false;
  c2.node(3n).raft.becomeFollower(c2.node(3n).raft.term, 0n);
  c2.node(1n).tick(); // heartbeat
  c2.pump();
  assert.equal(c2.node(3n).raft.lead, 1n);
});

test("§5.2: a node grants at most one vote per term, also across a restart", () => {
  const c = new Cluster([1n, 2n, 3n]);
  const n2 = c.node(2n);
  n2.step(msg({ type: "MsgVote", from: 1n, to: 2n, term: 5n, index: 1n, logTerm: 1n }));
  c.ready(2n);
  n2.step(msg({ type: "MsgVote", from: 3n, to: 2n, term: 5n, index: 1n, logTerm: 1n }));
  c.ready(2n);
  const resps = c.wire.filter((w) => w.m.type === "MsgVoteResp").map((w) => `${w.m.to}:${w.m.reject}`);
  assert.deepEqual(resps, ["1:false", "3:true"]);
  c.restart(2n);
  c.node(2n).step(msg({ type: "MsgVote", from: 3n, to: 2n, term: 5n, index: 1n, logTerm: 1n }));
  c.ready(2n);
  assert.equal(c.wire.filter((w) => w.m.type === "MsgVoteResp").at(-1)!.m.reject, true, "the persisted vote survives the crash");
});

test("§5.4.1: a voter refuses a candidate whose log is less up to date", () => {
  const c = new Cluster([1n, 2n, 3n]);
  c.elect(1n);
  c.node(1n).propose(enc.encode("x"));
  c.drop = (m) => m.to === 3n;
  c.pump();
  c.drop = () => false;
  // 3 misses the entry; its campaign is refused by 1 and 2.
  c.node(3n).campaign();
  c.pump();
  assert.notEqual(c.node(3n).state, "leader");
  const rejections = c.wire.filter((w) => w.m.type === "MsgVoteResp" && w.m.to === 3n && w.m.reject);
  assert.equal(rejections.length, 2);
});

test("§5.4.2: a leader does not commit an older term's entry by counting replicas", () => {
  // Nodes 1 and 2 hold an uncommitted entry from term 2 (Figure 8 of the paper).
  const c = new Cluster([1n, 2n, 3n]);
  for (const id of [1n, 2n]) c.storages.get(id)!.append([{ index: 2n, term: 2n, type: "normal", data: enc.encode("old") }]);
  for (const id of [1n, 2n, 3n]) {
    c.storages.get(id)!.setHardState({ term: 2n, vote: 0n, commit: 1n });
    c.restart(id);
  }
  // 1 wins term 3 (its log is the most up to date); replication is held back.
  c.drop = (m) => m.type === "MsgApp";
  c.node(1n).campaign();
  c.pump();
  const r1 = c.node(1n).raft;
  assert.equal(r1.state, "leader");
  assert.equal(r1.term, 3n);
  assert.equal(r1.raftLog.term(2n), 2n);
  // 2's (delayed) ack shows a quorum (1 and 2) holds index 2, but it is from term 2: no commit.
  c.node(1n).step(msg({ type: "MsgAppResp", from: 2n, to: 1n, term: 3n, index: 2n }));
  assert.equal(r1.raftLog.committed, 1n);
  // Once the leader's own term-3 entry reaches a quorum, it and everything before it commit.
  c.drop = () => false;
  c.node(1n).tick();
  c.pump();
  assert.equal(r1.raftLog.committed, 3n);
  assert.equal(r1.raftLog.term(3n), 3n);
  assert.deepEqual(c.data(2n), ["old"]);
});

test("durability rule: acks and votes are only sent after their Ready is persisted", () => {
  const c = new Cluster([1n, 2n, 3n]);
  c.elect(1n);
  for (let i = 0; i < 5; i++) c.node(1n).propose(enc.encode(`v${i}`));
  c.pump();
  for (const w of c.wire) {
    if (w.m.type === "MsgAppResp" || w.m.type === "MsgVoteResp" || w.m.type === "MsgPreVoteResp") {
      assert.equal(w.beforePersist, false, `${w.m.type} ${w.m.from}->${w.m.to} was eligible before persistence`);
    }
    assert.notEqual(w.m.to, w.m.from, "self-addressed messages never leave the node");
  }
  // Single node: a proposal commits only after the Ready with its entry is advanced.
  const s = new Cluster([1n]);
  s.elect(1n);
  s.node(1n).propose(enc.encode("solo"));
  const rd = s.node(1n).ready();
  assert.equal(rd.entries.length, 1);
  assert.equal(rd.committedEntries.length, 0, "not committed before its own write is durable");
  s.storages.get(1n)!.append(rd.entries);
  s.node(1n).advance(rd);
  const rd2 = s.node(1n).ready();
  assert.deepEqual(rd2.committedEntries.map((e) => new TextDecoder().decode(e.data)), ["solo"]);
  s.node(1n).advance(rd2);
});

test("ready() twice without advance() is refused", () => {
  const c = new Cluster([1n]);
  c.node(1n).campaign();
  c.node(1n).ready();
  assert.equal(c.node(1n).hasReady(), false);
  assert.throws(() => c.node(1n).ready(), (e) => isRaftError(e, "ErrReadyOutstanding"));
});

test("proposals: dropped without a leader and during a transfer; forwarded by followers", () => {
  const c = new Cluster([1n, 2n, 3n]);
  assert.throws(() => c.node(2n).propose(enc.encode("x")), (e) => isRaftError(e, "ErrProposalDropped"));
  c.node(1n).campaign();
  assert.throws(() => c.node(1n).propose(enc.encode("x")), (e) => isRaftError(e, "ErrProposalDropped"), "candidate");
  c.pump();
  c.node(2n).propose(enc.encode("fwd"));
  c.pump();
  assert.deepEqual(c.data(3n), ["fwd"]);
  c.drop = (m) => m.to === 3n;
  c.node(1n).propose(enc.encode("lag"));
  c.pump();
  c.drop = () => false;
  c.node(1n).transferLeader(3n);
  assert.throws(() => c.node(1n).propose(enc.encode("during")), (e) => isRaftError(e, "ErrProposalDropped"));
  c.pump();
  assert.equal(c.node(3n).state, "leader");
});

test("flow control: at most maxInflightMsgs appends in flight; a heartbeat response reopens a stalled window", () => {
  const c = new Cluster([1n, 2n], { maxInflightMsgs: 2, maxSizePerMsg: 1 });
  c.elect(1n);
  const apps = () => c.wire.filter((w) => w.m.type === "MsgApp" && w.m.to === 2n && w.m.entries.length > 0).length;
  const start = apps();
  c.drop = () => true; // everything lost
  for (let i = 0; i < 5; i++) c.node(1n).propose(enc.encode(`p${i}`));
  c.pump();
  assert.equal(apps() - start, 2, "one entry per message (maxSizePerMsg), two messages in flight");
  const pr = c.node(1n).raft.trk.progress.get(2n)!;
  assert.equal(pr.inflights.full(), true);
  c.drop = () => false;
  c.node(1n).tick(); // heartbeat; the response unpauses the flow
  c.pump();
  assert.equal(c.data(2n).length, 5, "all entries replicated after recovery");
});

test("maxUncommittedEntriesSize refuses proposals beyond the limit", () => {
  const c = new Cluster([1n, 2n], { maxUncommittedEntriesSize: 10 });
  c.elect(1n);
  c.drop = () => true;
  c.node(1n).propose(enc.encode("12345678"));
  assert.throws(() => c.node(1n).propose(enc.encode("12345")), (e) => isRaftError(e, "ErrProposalDropped"));
  c.node(1n).propose(enc.encode("12")); // fits
});

test("learners replicate but never count toward a commit quorum", () => {
  const c = new Cluster([1n, 2n], { learners: [3n] });
  c.elect(1n);
  c.drop = (m) => m.to === 2n || m.from === 2n;
  c.node(1n).propose(enc.encode("x"));
  c.pump();
  assert.deepEqual(c.data(3n), [], "the learner has the entry but it is not committed");
  assert.equal(c.storages.get(3n)!.lastIndex(), c.node(1n).raft.raftLog.lastIndex());
  c.drop = () => false;
  c.node(1n).tick();
  c.pump();
  assert.deepEqual(c.data(3n), ["x"]);
  // And a learner never campaigns.
  for (let i = 0; i < 50; i++) c.node(3n).tick();
  assert.equal(c.node(3n).state, "follower");
});

test("check-quorum: the leader steps down without a quorum; pre-vote keeps a rejoining node from disrupting", () => {
  const c = new Cluster([1n, 2n, 3n], { preVote: true, checkQuorum: true });
  c.elect(1n);
  const term = c.node(1n).raft.term;
  c.drop = (m) => m.from === 3n || m.to === 3n;
  for (let i = 0; i < 100; i++) {
    for (const id of [1n, 2n, 3n]) c.node(id).tick();
    c.pump();
  }
  assert.equal(c.node(1n).state, "leader");
  assert.equal(c.node(3n).raft.term, term, "pre-vote: the isolated node never raised its term");
  c.drop = () => false;
  for (let i = 0; i < 3; i++) {
    for (const id of [1n, 2n, 3n]) c.node(id).tick();
    c.pump();
  }
  assert.equal(c.node(1n).state, "leader");
  assert.equal(c.node(1n).raft.term, term, "no disruption");
  // Cut the leader off: it steps down within two election timeouts.
  c.drop = (m) => m.from === 1n || m.to === 1n;
  for (let i = 0; i < 20; i++) c.node(1n).tick();
  c.pump();
  assert.equal(c.node(1n).state, "follower");
});

test("a crash loses only what was not persisted", () => {
  const c = new Cluster([1n, 2n, 3n]);
  c.elect(1n);
  c.node(1n).propose(enc.encode("a"));
  c.pump();
  c.node(1n).propose(enc.encode("unsaved"));
  c.restart(1n); // before its Ready was handled
  const r = c.node(1n).raft;
  assert.equal(r.raftLog.lastIndex(), 3n, "the unsaved entry is gone");
  assert.equal(r.term, 1n);
  assert.equal(r.vote, 1n);
  assert.equal(r.state, "follower");
  assert.equal(r.raftLog.committed, c.storages.get(1n)!.hardStateNow().commit);
});
