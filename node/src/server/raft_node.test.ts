// The raft driver with an in-process network, a manual clock and in-memory
// durable logs: election, replication, forwarding, the persist-before-send
// rule, and a restart from the durable log.

import assert from "node:assert/strict";
import { test } from "node:test";
import { MemoryStorage, type Entry, type HardState, type Message, type SnapshotMetadata } from "../raft/index.js";
import type { RaftLogStore } from "./raft_log.js";
import { RaftNode, type Ticker } from "./raft_node.js";

/** A durable log in memory. `gate`, when set, holds every save until released. */
class MemLog implements RaftLogStore {
  hs: HardState | undefined;
  entries: Entry[] = [];
  gate: Promise<void> | undefined;
  saves = 0;
  async save(hs: HardState | undefined, ents: readonly Entry[]): Promise<void> {
    if (this.gate !== undefined) await this.gate;
    const first = ents[0];
    if (first !== undefined) this.entries = this.entries.filter((e) => e.index < first.index).concat(ents);
    if (hs !== undefined) this.hs = hs;
    this.saves++;
  }
  async saveSnapshot(_m: SnapshotMetadata): Promise<void> {}
  async releaseTo(_i: bigint): Promise<void> {}
  async close(): Promise<void> {}
}

class ManualTicker implements Ticker {
  fns = new Set<() => void>();
  every(_ms: number, fn: () => void): () => void {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }
  tick(): void {
    for (const f of [...this.fns]) f();
  }
}

interface TestNode {
  id: bigint;
  node: RaftNode;
  log: MemLog;
  applied: Entry[];
  sent: Message[];
  ticker: ManualTicker;
}

class Net {
  nodes = new Map<bigint, TestNode>();
  down = new Set<bigint>();

  /** Waits for a leader and for one follower to know it; returns both. */
  async leaderAndFollower(): Promise<{ leader: TestNode; follower: TestNode }> {
    await this.until("a leader", () => this.leader() !== undefined);
    const leader = this.leader()!;
    const follower = [...this.nodes.values()].find((n) => n !== leader)!;
    await this.until("the follower knows the leader", () => follower.node.lead === leader.id);
    return { leader, follower };
  }

  add(id: bigint, peers: bigint[], log = new MemLog(), seed = Number(id), extra: { snapshotCount?: bigint; catchUpEntries?: bigint; learners?: bigint[] } = {}): TestNode {
    const storage = new MemoryStorage();
    if (log.entries.length > 0) storage.append(log.entries);
    if (log.hs !== undefined) storage.setHardState(log.hs);
    const ticker = new ManualTicker();
    const t: TestNode = { id, log, applied: [], sent: [], ticker, node: undefined as unknown as RaftNode };
    t.node = new RaftNode({
      id,
      storage,
      log,
      sink: {
        send: (msgs) => {
          for (const m of msgs) {
            t.sent.push(m);
            setImmediate(() => {
              if (this.down.has(m.to) || this.down.has(id)) return;
              this.nodes.get(m.to)?.node.step(m);
            });
          }
        },
      },
      sm: {
        apply: async (ents) => {
          t.applied.push(...ents.filter((e) => e.type === "normal" && e.data.length > 0));
        },
        readStates: () => {},
        softState: () => {},
      },
      tickMs: 100,
      electionTick: 10,
      heartbeatTick: 1,
      applied: 0n,
      ticker,
      seed,
      ...(extra.snapshotCount !== undefined ? { snapshotCount: extra.snapshotCount } : {}),
      ...(extra.catchUpEntries !== undefined ? { catchUpEntries: extra.catchUpEntries } : {}),
      onFatal: (err) => {
        throw err;
      },
    });
    // Bootstrap: every node knows the voters (the server does this from --initial-cluster).
    for (const p of peers) t.node.rn.raft.applyConfChange({ type: "addNode", nodeId: p });
    for (const p of extra.learners ?? []) t.node.rn.raft.applyConfChange({ type: "addLearnerNode", nodeId: p });
    this.nodes.set(id, t);
    t.node.start();
    return t;
  }

  /** Ticks every live node until cond() holds; fails after maxTicks. */
  async until(what: string, cond: () => boolean, maxTicks = 500): Promise<void> {
    for (let i = 0; i < maxTicks; i++) {
      if (cond()) return;
      for (const n of this.nodes.values()) if (!this.down.has(n.id)) n.ticker.tick();
      for (let j = 0; j < 5; j++) await new Promise((r) => setImmediate(r));
    }
    assert.fail(`not reached within ${maxTicks} ticks: ${what}`);
  }

  leader(): TestNode | undefined {
    return [...this.nodes.values()].find((n) => !this.down.has(n.id) && n.node.isLeader);
  }

  async stop(): Promise<void> {
    for (const n of this.nodes.values()) await n.node.stop();
  }
}

const text = (e: Entry) => Buffer.from(e.data).toString();
const ids = [1n, 2n, 3n];

test("three nodes elect one leader; a follower's proposal is forwarded, and every node applies the same entries in order", async () => {
  const net = new Net();
  for (const id of ids) net.add(id, ids);
  try {
    const { leader, follower } = await net.leaderAndFollower();
    leader.node.propose(Buffer.from("a"));
    follower.node.propose(Buffer.from("b"));
    leader.node.propose(Buffer.from("c"));
    await net.until("all applied 3", () => [...net.nodes.values()].every((n) => n.applied.length === 3));
    const orders = [...net.nodes.values()].map((n) => n.applied.map((e) => `${e.index}:${text(e)}`).join(","));
    assert.equal(new Set(orders).size, 1, `same order everywhere: ${orders.join(" | ")}`);
    assert.deepEqual(new Set(leader.applied.map(text)), new Set(["a", "b", "c"]));
  } finally {
    await net.stop();
  }
});

test("append acknowledgements leave only after the entries are durable", async () => {
  const net = new Net();
  for (const id of ids) net.add(id, ids);
  try {
    const { leader, follower: f } = await net.leaderAndFollower();
    // Hold the follower's disk.
    let release!: () => void;
    f.log.gate = new Promise<void>((r) => (release = r));
    const savesBefore = f.log.saves;
    const acksBefore = f.sent.filter((m) => m.type === "MsgAppResp").length;
    leader.node.propose(Buffer.from("x"));
    // The other follower acknowledges, the leader commits; ours still writes.
    await net.until("commit on the leader", () => leader.applied.some((e) => text(e) === "x"));
    const lastIndex = leader.node.lastIndex;
    const ackedWhileWriting = f.sent.slice(acksBefore).filter((m) => m.type === "MsgAppResp" && m.index >= lastIndex && !m.reject);
    assert.equal(ackedWhileWriting.length, 0, "no ack for entries still being written");
    assert.equal(f.log.saves, savesBefore);
    f.log.gate = undefined;
    release();
    await net.until("the follower acknowledges after its write", () =>
      f.sent.some((m) => m.type === "MsgAppResp" && m.index >= lastIndex && !m.reject),
    );
    assert.ok(f.log.entries.some((e) => text(e) === "x"), "the entry is in its durable log");
  } finally {
    await net.stop();
  }
});

test("a node restarted from its durable log keeps its entries and catches up", async () => {
  const net = new Net();
  for (const id of ids) net.add(id, ids);
  try {
    await net.until("a leader", () => net.leader() !== undefined);
    const leader = net.leader()!;
    const f = [...net.nodes.values()].find((n) => n !== leader)!;
    for (const v of ["1", "2"]) leader.node.propose(Buffer.from(v));
    await net.until("f applied 2", () => f.applied.length === 2);
    // Crash f: its memory is gone, its MemLog (the disk) is kept.
    net.down.add(f.id);
    await f.node.stop();
    for (const v of ["3", "4"]) leader.node.propose(Buffer.from(v));
    await net.until("leader applied 4", () => leader.applied.length === 4);
    net.down.delete(f.id);
    const g = net.add(f.id, ids, f.log, 99);
    assert.equal(g.node.lastIndex >= 3n, true, "the log came back from disk");
    await net.until("restarted node applied all 4", () => g.applied.length === 4);
    assert.deepEqual(g.applied.map(text), ["1", "2", "3", "4"]);
  } finally {
    await net.stop();
  }
});

test("proposals made together go to raft as one MsgProp; a dropped batch tells each proposer", async () => {
  const net = new Net();
  for (const id of ids) net.add(id, ids);
  try {
    const { leader, follower: f } = await net.leaderAndFollower();
    const appsBefore = leader.sent.filter((m) => m.type === "MsgApp" && m.to === f.id).length;
    const steps: (string | undefined)[] = [];
    for (const v of ["p1", "p2", "p3", "p4"]) leader.node.propose(Buffer.from(v), (dropped) => steps.push(dropped?.code));
    await net.until("all applied the four", () => [...net.nodes.values()].every((n) => n.applied.filter((e) => text(e).startsWith("p")).length === 4));
    assert.deepEqual(steps, [undefined, undefined, undefined, undefined]);
    // One step, one broadcast: the four entries reach the follower in a single MsgApp.
    const apps = leader.sent.filter((m) => m.type === "MsgApp" && m.to === f.id).slice(appsBefore);
    const carrying = apps.filter((m) => m.entries.some((e) => text(e).startsWith("p")));
    assert.equal(carrying.length, 1, `MsgApps with the proposals: ${carrying.map((m) => m.entries.length).join(",")}`);
    assert.deepEqual(carrying[0]!.entries.map(text), ["p1", "p2", "p3", "p4"]);

    // A node that knows no leader drops them all, and says so to each proposer.
    const alone = new Net();
    const lone = alone.add(7n, [7n, 8n, 9n]);
    try {
      const dropped: (string | undefined)[] = [];
      await new Promise<void>((resolve) => {
        for (const v of ["q1", "q2"]) lone.node.propose(Buffer.from(v), (d) => dropped.push(d?.code) === 2 && resolve());
      });
      assert.deepEqual(dropped, ["ErrProposalDropped", "ErrProposalDropped"]);
    } finally {
      await alone.stop();
    }
  } finally {
    await net.stop();
  }
});

test("a message that breaks raft's invariants (commit past an empty log) stops the node through onFatal", async () => {
  const storage = new MemoryStorage();
  const fatal: unknown[] = [];
  const node = new RaftNode({
    id: 2n,
    storage,
    log: new MemLog(),
    sink: { send: () => {} },
    sm: { apply: async () => {}, readStates: () => {}, softState: () => {} },
    tickMs: 100,
    electionTick: 10,
    heartbeatTick: 1,
    applied: 0n,
    ticker: new ManualTicker(),
    onFatal: (err) => fatal.push(err),
  });
  for (const p of ids) node.rn.raft.applyConfChange({ type: "addNode", nodeId: p });
  node.start();
  // A leader that believes this member has 50 entries (it lost them): etcd's raft panics here.
  node.step({ type: "MsgHeartbeat", from: 1n, to: 2n, term: 1n, commit: 50n } as Message);
  assert.equal(fatal.length, 1);
  assert.match(String(fatal[0]), /tocommit\(50\) is out of range \[lastIndex\(0\)\]/);
  assert.equal(node.isStopped, true);
  // Later messages are ignored, not stepped.
  node.step({ type: "MsgHeartbeat", from: 1n, to: 2n, term: 1n, commit: 60n } as Message);
  assert.equal(fatal.length, 1);
  await node.stop();
});


test("committed entries already durable here apply while the next entries are written; committed entries still being written wait for the write", async () => {
  const log = new MemLog();
  const applied: string[] = [];
  const node = new RaftNode({
    id: 2n,
    storage: new MemoryStorage(),
    log,
    sink: { send: () => {} },
    sm: {
      apply: async (ents) => {
        for (const e of ents) if (e.type === "normal" && e.data.length > 0) applied.push(text(e));
      },
      readStates: () => {},
      softState: () => {},
    },
    tickMs: 100,
    electionTick: 10,
    heartbeatTick: 1,
    applied: 0n,
    ticker: new ManualTicker(),
    onFatal: (err) => {
      throw err;
    },
  });
  for (const p of ids) node.rn.raft.applyConfChange({ type: "addNode", nodeId: p });
  node.start();
  const turns = async (n = 10) => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };
  const ent = (index: bigint, v: string): Entry => ({ term: 1n, index, type: "normal", data: Buffer.from(v) });
  const app = (index: bigint, entries: Entry[], commit: bigint) =>
    ({ type: "MsgApp", from: 1n, to: 2n, term: 1n, logTerm: index === 0n ? 0n : 1n, index, entries, commit }) as unknown as Message;
  let release = () => {};
  const hold = () => {
    log.gate = new Promise<void>((r) => (release = () => {
      log.gate = undefined;
      r();
    }));
  };
  try {
    // Leader 1 sends entry 1 ("a"); it is written, nothing is committed yet.
    node.step(app(0n, [ent(1n, "a")], 0n));
    await turns();
    assert.deepEqual(log.entries.map(text), ["a"]);
    // Hold the disk. Entry 2 arrives with the commit of entry 1, which is durable here.
    hold();
    node.step(app(1n, [ent(2n, "b")], 1n));
    await turns();
    assert.deepEqual(applied, ["a"], "entry 1 applied while entry 2 is being written");
    assert.deepEqual(log.entries.map(text), ["a"], "entry 2 is not durable yet");
    release();
    await turns();
    assert.deepEqual(log.entries.map(text), ["a", "b"]);
    // Entry 3 arrives with the commit of 2 and 3: 2 is durable here and applies during
    // the write of 3; 3 waits for it.
    hold();
    node.step(app(2n, [ent(3n, "c")], 3n));
    await turns();
    assert.deepEqual(applied, ["a", "b"], "entry 2 applied, entry 3 waits for its write");
    release();
    await turns(20);
    assert.deepEqual(log.entries.map(text), ["a", "b", "c"]);
    assert.deepEqual(applied, ["a", "b", "c"], "applied in order once durable");
  } finally {
    release();
    await node.stop();
  }
});
