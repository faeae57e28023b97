// RawNode wraps the Raft state machine with the Ready/advance protocol: the one
// way the application learns what to persist, send and apply.
//
// The driver loop (one iteration per Ready):
//
//   if (node.hasReady()) {
//     const rd = node.ready();
//     send(rd.messages);                         // may go out at once, even before the disk write
//     persist(rd.snapshot, rd.entries, rd.hardState);  // durably (fsync) — in this order
//     send(rd.messagesAfterPersist);             // only now: they promise durable state
//     apply(rd.snapshot, rd.committedEntries);   // in order; conf changes via applyConfChange()
//     node.advance(rd);
//   }
//
// Between ready() and advance() the application may keep calling step(), tick()
// and propose(): their effects go into the next Ready. It may not call ready()
// again before advance().

import { RaftError } from "./errors.js";
import { Raft, type RaftConfig } from "./raft.js";
import type { ProgressState } from "./tracker/progress.js";
import {
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type ReadState,
  type Snapshot,
  type SoftState,
  type StateType,
  NONE,
  encodeConfChange,
  hardStateEqual,
  isEmptyHardState,
  isLocalMsg,
  isResponseMsg,
  msg,
  payloadsSize,
} from "./types.js";

/**
 * One batch of work for the application. The order of the fields is the order of
 * the work; see the module comment for the loop.
 */
export interface Ready {
  /** Present when the leader or this node's role changed. Informational; never persisted. */
  readonly softState?: SoftState;
  /**
   * Present when term, vote or commit changed: persist it together with `entries`.
   * Term and vote must be durable before any message in messagesAfterPersist goes out.
   */
  readonly hardState?: HardState;
  /** Confirmed linearizable reads: serve each once `index` is applied. */
  readonly readStates: readonly ReadState[];
  /**
   * Entries to append to stable storage (replacing any conflicting suffix there).
   * They are not committed yet.
   */
  readonly entries: readonly Entry[];
  /** A snapshot from the leader: persist it (replacing the log) and load it into the state machine. */
  readonly snapshot?: Snapshot;
  /**
   * Committed entries to apply, in order, after this Ready's persistence is done.
   * They may include entries from `entries` above (hence: persist first).
   */
  readonly committedEntries: readonly Entry[];
  /**
   * Messages that do not depend on this Ready's unpersisted state (appends and
   * heartbeats from a leader, vote requests, forwarded proposals...). They may be
   * sent before or while the Ready is persisted — the leader writes its own log
   * in parallel with replicating it (Raft thesis §10.2.1).
   */
  readonly messages: readonly Message[];
  /**
   * Messages that acknowledge this Ready's state (append acks, votes). Send them
   * only after entries, hard state and snapshot are durable: sending earlier lets a
   * crash break the promise they carry.
   */
  readonly messagesAfterPersist: readonly Message[];
  /** Whether the write must be synced (new entries, or a changed term or vote). */
  readonly mustSync: boolean;
}

export interface Status {
  readonly id: bigint;
  readonly hardState: HardState;
  readonly softState: SoftState;
  readonly applied: bigint;
  readonly leadTransferee: bigint;
  readonly config: ConfState;
  /** The leader's view of every member's replication (empty on non-leaders). */
  readonly progress: ReadonlyMap<bigint, ProgressStatus>;
}

export interface ProgressStatus {
  readonly match: bigint;
  readonly next: bigint;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  readonly recentActive: boolean;
  readonly inflight: number;
  readonly description: string;
}

interface Outstanding {
  readonly rd: Ready;
  /** Self-addressed messages (own append ack, own vote) to step once the Ready is durable. */
  readonly selfMsgs: readonly Message[];
}

export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: Outstanding | undefined;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    // The state loaded from storage is the baseline: the first Ready reports a hard
    // state only once it changes. (A commit index implied by the snapshot needs no
    // write: the snapshot itself is durable.)
    this.prevHardState = this.raft.hardState();
  }

  get id(): bigint {
    return this.raft.id;
  }

  /** Advances the logical clock by one tick (the application calls it at a fixed interval). */
  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (pre-vote first, if enabled). */
  campaign(): void {
    this.raft.step(msg({ type: "MsgHup", from: this.raft.id }));
  }

  /**
   * Proposes data to be appended to the log. Throws RaftError("ErrProposalDropped")
   * if this node cannot take it (no known leader, transfer in progress, ...).
   * Returning normally does not mean the entry will commit: a forwarded proposal
   * can still be lost, and the application learns the outcome by applying entries.
   */
  propose(data: Uint8Array): void {
    this.raft.step(
      msg({ type: "MsgProp", from: this.raft.id, entries: [{ term: 0n, index: 0n, type: "normal", data }] }),
    );
  }

  /**
   * Proposes several entries as one MsgProp (one step, one broadcast). All or
   * none: throws RaftError("ErrProposalDropped") if this node cannot take them.
   */
  proposeMany(data: readonly Uint8Array[]): void {
    if (data.length === 0) return;
    this.raft.step(
      msg({ type: "MsgProp", from: this.raft.id, entries: data.map((d) => ({ term: 0n, index: 0n, type: "normal" as const, data: d })) }),
    );
  }

  /** Proposes a membership change (takes effect on each node when applied). */
  proposeConfChange(cc: ConfChange): void {
    this.raft.step(
      msg({
        type: "MsgProp",
        from: this.raft.id,
        entries: [{ term: 0n, index: 0n, type: "confChange", data: encodeConfChange(cc) }],
      }),
    );
  }

  /** Applies a committed conf change entry's change to this node's configuration. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /**
   * Steps a message received from the network. Local-only message types are
   * refused (ErrStepLocalMsg), as are responses from nodes this one does not know
   * (ErrStepPeerNotFound). A dropped proposal throws ErrProposalDropped.
   */
  step(m: Message): void {
    if (isLocalMsg(m.type)) throw new RaftError("ErrStepLocalMsg", `cannot step ${m.type} from the network`);
    if (isResponseMsg(m.type) && !this.raft.trk.progress.has(m.from)) {
      throw new RaftError("ErrStepPeerNotFound", `no progress for ${m.from}`);
    }
    this.raft.step(m);
  }

  /**
   * Requests a linearizable read. `ctx` must be unique per request: the answer
   * comes back as a ReadState carrying it (possibly never, if leadership changes;
   * the application then retries with a new ctx).
   */
  readIndex(ctx: Uint8Array): void {
    this.raft.step(msg({ type: "MsgReadIndex", from: NONE, context: ctx }));
  }

  /** Asks the leader to hand leadership to `transferee` (works from any node that knows the leader). */
  transferLeader(transferee: bigint): void {
    this.raft.step(msg({ type: "MsgTransferLeader", from: transferee }));
  }

  /** The transport could not reach `id`: the leader falls back to probing it. */
  reportUnreachable(id: bigint): void {
    this.raft.step(msg({ type: "MsgUnreachable", from: id }));
  }

  /** The outcome of sending a snapshot to `id`. */
  reportSnapshot(id: bigint, ok: boolean): void {
    this.raft.step(msg({ type: "MsgSnapStatus", from: id, reject: !ok }));
  }

  /** Whether a Ready is waiting. Always false while a Ready is outstanding (not yet advanced). */
  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    const r = this.raft;
    if (!softStateEqual(r.softState(), this.prevSoftState)) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !hardStateEqual(hs, this.prevHardState)) return true;
    if (r.raftLog.hasPendingSnapshot()) return true;
    if (r.raftLog.unstable.entries.length > 0) return true;
    if (r.msgs.length > 0 || r.msgsAfterAppend.length > 0) return true;
    if (r.raftLog.hasNextCommittedEnts()) return true;
    return r.readStates.length > 0;
  }

  /** Takes the next batch of work. Call advance(rd) once it is handled. */
  ready(): Ready {
    if (this.outstanding !== undefined) {
      throw new RaftError("ErrReadyOutstanding", "ready() called before advance() of the previous Ready");
    }
    const r = this.raft;
    const soft = r.softState();
    const hs = r.hardState();
    const entries = r.raftLog.unstableEntries();
    const snapshot = r.raftLog.unstable.snapshot;
    const hardStateChanged = !isEmptyHardState(hs) && !hardStateEqual(hs, this.prevHardState);
    const toOthers: Message[] = [];
    const toSelf: Message[] = [];
    for (const m of r.msgsAfterAppend) (m.to === r.id ? toSelf : toOthers).push(m);
    const rd: Ready = {
      ...(softStateEqual(soft, this.prevSoftState) ? {} : { softState: soft }),
      ...(hardStateChanged ? { hardState: hs } : {}),
      readStates: r.readStates,
      entries,
      ...(snapshot !== undefined ? { snapshot } : {}),
      committedEntries: r.raftLog.nextCommittedEnts(),
      messages: r.msgs,
      messagesAfterPersist: toOthers,
      mustSync:
        entries.length > 0 ||
        snapshot !== undefined ||
        (hardStateChanged && (hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote)),
    };
    r.msgs = [];
    r.msgsAfterAppend = [];
    r.readStates = [];
    this.prevSoftState = soft;
    if (hardStateChanged) this.prevHardState = hs;
    this.outstanding = { rd, selfMsgs: toSelf };
    return rd;
  }

  /**
   * The application has persisted, sent and applied `rd`. Marks its entries and
   * snapshot stable, its committed entries applied, and delivers the self-addressed
   * acknowledgements that were waiting for durability (which may commit entries or
   * win an election, producing the next Ready).
   */
  advance(rd: Ready): void {
    const o = this.outstanding;
    if (o === undefined || o.rd !== rd) throw new RaftError("ErrInvalid", "advance() of a Ready that is not outstanding");
    this.outstanding = undefined;
    const r = this.raft;
    if (rd.snapshot !== undefined) r.raftLog.stableSnapTo(rd.snapshot.metadata.index);
    const last = rd.entries[rd.entries.length - 1];
    if (last !== undefined) r.raftLog.stableTo(last.index, last.term);
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    let applied = 0n;
    if (lastApplied !== undefined) applied = lastApplied.index;
    else if (rd.snapshot !== undefined) applied = rd.snapshot.metadata.index;
    if (applied > 0n && applied <= r.raftLog.committed) r.appliedTo(applied, payloadsSize(rd.committedEntries));
    for (const m of o.selfMsgs) r.step(m);
  }

  /** Whether a Ready has been handed out and not advanced yet. */
  hasOutstandingReady(): boolean {
    return this.outstanding !== undefined;
  }

  status(): Status {
    const r = this.raft;
    const progress = new Map<bigint, ProgressStatus>();
    if (r.state === "leader") {
      r.trk.visit((id, pr) => {
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          isLearner: pr.isLearner,
          recentActive: pr.recentActive,
          inflight: pr.inflights.count(),
          description: pr.toString(),
        });
      });
    }
    return {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      leadTransferee: r.leadTransferee,
      config: r.trk.confState(),
      progress,
    };
  }

  /** The current role, for convenience. */
  get state(): StateType {
    return this.raft.state;
  }
}

function softStateEqual(a: SoftState, b: SoftState): boolean {
  return a.lead === b.lead && a.state === b.state;
}
