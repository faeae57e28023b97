// RaftNode: the one loop that drives the pure raft state machine (etcd's
// server/etcdserver/raft.go, in our own shape). Each iteration takes a Ready
// and does its work in the order the Ready contract requires:
//
//   1. send rd.messages                       (need nothing durable), and hand
//      the committed entries this member already holds durably to the state
//      machine (see durableCommitted: they apply while 2 writes)
//   2. persist snapshot marker, entries, hard state — durably (crash boundary A:
//      before this resolves nothing in this Ready is promised to anyone)
//   3. make them visible to raft's Storage (MemoryStorage is the log's cache)
//   4. send rd.messagesAfterPersist           (acks and votes: now true)
//   5. hand readStates, soft state and committed entries to the state machine,
//      which applies entries in order (crash boundary B: the backend write of an
//      apply batch carries consistent_index, so a restart re-applies exactly the
//      entries after it); the loop does not wait for the apply, so the next
//      Ready's persist overlaps it (startApply), except around conf changes,
//      snapshots and stop, which wait for every apply handed over
//   6. apply conf changes to raft, advance
//
// Clock, transport and the state machine are injected, so tests can run
// several nodes in one process with a fake network and a manual clock.

import {
  RawNode,
  MemoryStorage,
  Raft,
  RaftError,
  SeededRand,
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type Ready,
  type ReadState,
  type SoftState,
  type Status,
  type Snapshot,
  type RaftLogger,
} from "../raft/index.js";
import type { RaftLogStore } from "./raft_log.js";

/** Where outbound messages go (the peer Transport in production). */
export interface MessageSink {
  send(msgs: readonly Message[]): void;
}

/** A repeating timer; tests substitute a manual one. */
export interface Ticker {
  every(ms: number, fn: () => void): () => void;
}

export const REAL_TICKER: Ticker = {
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return () => clearInterval(t);
  },
};

/** What the driver asks of the replicated state machine. */
export interface StateMachine {
  /**
   * Applies committed entries, in order, and resolves when they are applied
   * (their backend write called: visible to every read, landing in order; see
   * Backend's ordering and visibility contract). Conf change entries are included; the driver
   * applies them to raft afterwards, in order, and the state machine updates
   * membership from them. It may resolve with the indexes of conf changes it
   * refused (etcd's ValidateConfigurationChange): raft applies those as no-ops.
   */
  apply(entries: readonly Entry[]): Promise<void | ReadonlySet<bigint>>;
  /** Confirmed reads; serve each once applied >= index. */
  readStates(rs: readonly ReadState[]): void;
  /** Leader or role changed. */
  softState(ss: SoftState, term: bigint): void;
  /** The conf state after a conf change was applied to raft. */
  confState?(cs: ConfState, cc: ConfChange): void;
  /**
   * A snapshot from the leader is durable in the raft log: replace the state
   * machine's state with the one it stands for, before later entries apply.
   */
  restore?(snap: Snapshot): Promise<void>;
  /** Make everything applied so far durable (fsync the backend) before the log is compacted. */
  beforeCompact?(): Promise<void>;
}

export interface RaftNodeOptions {
  id: bigint;
  storage: MemoryStorage;
  log: RaftLogStore;
  sink: MessageSink;
  sm: StateMachine;
  tickMs: number;
  electionTick: number;
  heartbeatTick: number;
  /** Last applied index on restart (the backend's consistent_index). */
  applied: bigint;
  ticker?: Ticker;
  preVote?: boolean;
  seed?: number;
  logger?: RaftLogger;
  /**
   * Take a snapshot every this many applied entries and compact the log,
   * keeping `catchUpEntries` for slow followers (--snapshot-count,
   * --snapshot-catchup-entries). 0 = never.
   */
  snapshotCount?: bigint;
  catchUpEntries?: bigint;
  /** A persist or apply failed: memory may be ahead of disk. The node stops. */
  onFatal(err: unknown): void;
}

export class RaftNode {
  readonly rn: RawNode;
  private readonly storage: MemoryStorage;
  private running = false;
  /** Proposals queued for the loop's next step (see propose). */
  private proposals: { data: Uint8Array; onStep: (dropped: RaftError | undefined) => void }[] = [];
  private stopped = false;
  private stopTicker: (() => void) | undefined;
  /** Resolves when the current loop run ends (for stop()). */
  private idle: Promise<void> = Promise.resolve();
  private lastSoft: SoftState;

  constructor(private readonly o: RaftNodeOptions) {
    this.storage = o.storage;
    this.rn = new RawNode({
      id: o.id,
      storage: o.storage,
      electionTick: o.electionTick,
      heartbeatTick: o.heartbeatTick,
      rand: new SeededRand(o.seed ?? Math.floor(Math.random() * 2 ** 31)),
      applied: o.applied,
      checkQuorum: true,
      preVote: o.preVote ?? true,
      maxSizePerMsg: 1024 * 1024,
      maxInflightMsgs: 512,
      maxUncommittedEntriesSize: 1 << 30,
      ...(o.logger !== undefined ? { logger: o.logger } : {}),
    });
    this.lastSoft = this.rn.raft.softState();
  }

  start(): void {
    this.stopTicker = (this.o.ticker ?? REAL_TICKER).every(this.o.tickMs, () => this.tick());
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopTicker?.();
    await this.idle;
    await this.applying;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  tick(): void {
    if (this.stopped) return;
    this.rn.tick();
    this.kick();
  }

  /** etcd's initial election tick advance: a fresh node campaigns after about one tick instead of a full timeout. */
  advanceTicks(n: number): void {
    for (let i = 0; i < n; i++) this.rn.tick();
    this.kick();
  }

  campaign(): void {
    this.rn.campaign();
    this.kick();
  }

  /**
   * Campaigns once every committed entry is applied (raft refuses to campaign
   * while committed conf changes are unapplied — the bootstrap entries, or
   * those re-delivered after a restart).
   */
  campaignWhenApplied(): void {
    this.wantCampaign = true;
    this.kick();
  }
  private wantCampaign = false;

  /** A message from a peer. Messages from unknown members are dropped. */
  step(m: Message): void {
    if (this.stopped) return;
    try {
      this.rn.step(m);
    } catch (err) {
      if (!(err instanceof RaftError)) {
        // An invariant of raft broke (e.g. "tocommit(N) is out of range
        // [lastIndex(0)]": this member lost its log but kept its ID). etcd's raft
        // panics here; carrying on would leave a member that answers but cannot
        // serve. Stop, as a failed persist does.
        this.stopped = true;
        this.stopTicker?.();
        this.o.onFatal(err);
        return;
      }
    }
    this.kick();
  }

  /**
   * Queues a proposal. The loop steps every queued proposal into raft as one
   * MsgProp before its next Ready (under load, one step and one broadcast for
   * many requests; nothing waits longer, as raft would only send them with that
   * Ready). `onStep` is then called with undefined once raft took it, or with
   * RaftError ErrProposalDropped when raft could not (no leader, transfer...).
   */
  propose(data: Uint8Array, onStep: (dropped: RaftError | undefined) => void = () => {}): void {
    this.proposals.push({ data, onStep });
    this.kick();
  }

  /** Steps the queued proposals (see propose). */
  private stepProposals(): void {
    const ps = this.proposals;
    if (ps.length === 0) return;
    this.proposals = [];
    try {
      this.rn.proposeMany(ps.map((p) => p.data));
    } catch (err) {
      if (!(err instanceof RaftError && err.code === "ErrProposalDropped")) throw err;
      for (const p of ps) p.onStep(err);
      return;
    }
    for (const p of ps) p.onStep(undefined);
  }

  proposeConfChange(cc: ConfChange): void {
    this.rn.proposeConfChange(cc);
    this.kick();
  }

  readIndex(ctx: Uint8Array): void {
    this.rn.readIndex(ctx);
    this.kick();
  }

  transferLeader(to: bigint): void {
    this.rn.transferLeader(to);
    this.kick();
  }

  reportUnreachable(id: bigint): void {
    if (this.stopped) return;
    this.rn.reportUnreachable(id);
    this.kick();
  }

  reportSnapshot(id: bigint, ok: boolean): void {
    if (this.stopped) return;
    this.rn.reportSnapshot(id, ok);
    this.kick();
  }

  status(): Status {
    return this.rn.status();
  }

  get lead(): bigint {
    return this.rn.raft.lead;
  }

  get term(): bigint {
    return this.rn.raft.term;
  }

  get committed(): bigint {
    return this.rn.raft.raftLog.committed;
  }

  get lastIndex(): bigint {
    return this.rn.raft.raftLog.lastIndex();
  }

  get isLeader(): boolean {
    return this.rn.raft.state === "leader";
  }

  /** Schedules the loop if it is not running; it drains every Ready there is. */
  private kick(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    setImmediate(this.runLoop);
  }

  /**
   * One run of the loop, as a macrotask (kick). Made once: a put kicks the loop
   * a few times, and a promise with its resolvers and a closure per kick showed
   * in a heap profile. A stop() between the kick and this run finds `idle`
   * settled; the run then sees `stopped` and does nothing.
   */
  private readonly runLoop = (): void => {
    this.idle = this.loop().catch(this.onLoopError);
  };

  private readonly onLoopError = (err: unknown): void => {
    this.stopped = true;
    this.stopTicker?.();
    // `idle` settles whatever onFatal does: stop() awaits it.
    queueMicrotask(() => this.o.onFatal(err));
  };

  private async loop(): Promise<void> {
    try {
      for (;;) {
        if (this.stopped) break;
        this.stepProposals();
        if (!this.rn.hasReady()) break;
        const rd = this.rn.ready();
        if (rd.softState !== undefined) this.lastSoft = rd.softState;
        this.o.sink.send(rd.messages);
        const early = this.durableCommitted(rd);
        if (early > 0) this.startApply(early === rd.committedEntries.length ? rd.committedEntries : rd.committedEntries.slice(0, early));
        if (rd.snapshot !== undefined) {
          await this.o.log.saveSnapshot(rd.snapshot.metadata); // the WAL sees it replaces the log
          this.storage.applySnapshot(rd.snapshot);
        }
        if (rd.entries.length > 0 || rd.hardState !== undefined) await this.o.log.save(rd.hardState, rd.entries);
        // ---- crash boundary A: this Ready's entries and hard state are durable ----
        this.storage.append(rd.entries);
        if (rd.hardState !== undefined) this.storage.setHardState(rd.hardState);
        if (this.stopped) return; // stopping: what is durable stays; nothing more is sent or applied
        this.o.sink.send(rd.messagesAfterPersist);
        if (rd.snapshot !== undefined) {
          await this.applying;
          await this.o.sm.restore?.(rd.snapshot);
        }
        if (rd.softState !== undefined) this.o.sm.softState(rd.softState, this.rn.raft.term);
        if (rd.readStates.length > 0) this.o.sm.readStates(rd.readStates);
        if (rd.committedEntries.length > early) {
          const batch = this.startApply(early === 0 ? rd.committedEntries : rd.committedEntries.slice(early));
          if (rd.committedEntries.some((e) => e.type === "confChange")) {
            // Raft must see conf changes in order with the state machine: wait for them.
            const refused = await batch;
            if (this.stopped) return;
            for (const e of rd.committedEntries) {
              if (e.type !== "confChange") continue;
              let cc = Raft.confChangeOf(e);
              if (refused?.has(e.index) === true) cc = { ...cc, nodeId: 0n }; // etcd's "NodeID = None": a no-op for raft
              const cs = this.rn.applyConfChange(cc);
              this.o.sm.confState?.(cs, cc);
            }
          }
        }
        this.rn.advance(rd);
        await this.maybeSnapshot();
        if (this.wantCampaign && this.rn.raft.raftLog.applied >= this.rn.raft.raftLog.committed) {
          this.wantCampaign = false;
          if (this.rn.raft.state !== "leader") this.rn.campaign();
        }
      }
    } finally {
      this.running = false;
    }
    // Work that arrived while the last Ready was being handled.
    if (!this.stopped && (this.rn.hasReady() || this.proposals.length > 0)) this.kick();
  }

  /**
   * How many of rd's committed entries (a prefix) can be applied before rd is
   * persisted (step 5 moved ahead of step 2, as etcd's apply runs beside its WAL
   * write): those this member already holds durably, that is, in Storage, which gets
   * entries only after they are persisted, and not among rd.entries. A follower's
   * Ready under load carries new entries to write and the commit of earlier ones;
   * without this, applying (and answering, and sending watch events for) the earlier
   * ones waited for the fsync of the new ones. Entries among rd.entries are applied
   * only after the persist, so the backend's applied index never passes what the
   * WAL holds (a restart replays the WAL up to it). Not with a snapshot, a change of
   * role or a conf change in the Ready: those keep the order below.
   */
  private durableCommitted(rd: Ready): number {
    const ents = rd.committedEntries;
    if (ents.length === 0 || rd.snapshot !== undefined || rd.softState !== undefined) return 0;
    const firstNew = rd.entries.length > 0 ? rd.entries[0]!.index : undefined;
    const durable = this.storage.lastIndex();
    let n = 0;
    for (const e of ents) {
      if (e.type === "confChange" || e.index > durable || (firstNew !== undefined && e.index >= firstNew)) break;
      n++;
    }
    return n;
  }

  /**
   * Every snapshotCount applied entries: record a snapshot at the applied index
   * (its data is the backend itself, dumped when a follower needs it), then
   * drop log entries older than catchUpEntries before it.
   */
  /**
   * Hands committed entries to the state machine without waiting for them
   * (step 5): the next Ready's persist runs while they apply, as etcd's apply
   * goroutine does. Applies stay in order (one chain); a failed apply stops the
   * node. Committed entries are durable on a quorum, so applying them before
   * this Ready's own entries are durable is safe; after a crash the backend's
   * consistent_index may be ahead of the persisted commit index, and the
   * re-delivered entries at or below it are skipped.
   */
  private startApply(entries: readonly Entry[]): Promise<void | ReadonlySet<bigint>> {
    const batch = this.applying
      .then(() => (this.stopped ? undefined : this.o.sm.apply(entries)))
      // ---- crash boundary B: applied entries are in the backend with consistent_index ----
      .catch((err: unknown) => {
        if (this.stopped) return;
        this.stopped = true;
        this.stopTicker?.();
        this.o.onFatal(err);
      });
    this.applying = batch.then(() => undefined);
    return batch;
  }
  /** The applies handed to the state machine and not finished yet, in order. */
  private applying: Promise<void> = Promise.resolve();

  private async maybeSnapshot(): Promise<void> {
    const every = this.o.snapshotCount ?? 0n;
    if (every <= 0n) return;
    const applied = this.rn.raft.raftLog.applied;
    const snapIndex = this.storage.snapshot().metadata.index;
    if (applied - snapIndex < every) return;
    await this.applying; // the snapshot stands for the backend at `applied`
    await this.o.sm.beforeCompact?.();
    const snap = this.storage.createSnapshot(applied, this.rn.raft.trk.confState(), new Uint8Array(0));
    await this.o.log.saveSnapshot(snap.metadata);
    const keep = this.o.catchUpEntries ?? 5000n;
    const compactTo = applied > keep ? applied - keep : 0n;
    if (compactTo >= this.storage.firstIndex()) {
      this.storage.compact(compactTo);
      await this.o.log.releaseTo(compactTo);
    }
  }

  get softState(): SoftState {
    return this.lastSoft;
  }
}
