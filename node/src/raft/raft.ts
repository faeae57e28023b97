// The Raft consensus algorithm as a deterministic state machine.
//
// step(message) and tick() only change memory: they never touch a disk, a
// socket, a clock or Math.random. Their effects are queued (entries in the
// unstable log, outbound messages, read states) and handed to the application
// in a Ready by RawNode (rawnode.ts), which also defines the order in which the
// application must persist, send and apply them.
//
// The rules implemented here are those of the Raft paper and thesis as refined
// by etcd-io/raft: pre-vote (thesis §9.6), check-quorum and the leader lease
// (§6.2, §9.6), leadership transfer (§3.10), ReadIndex (§6.4), single-step
// membership changes (§4.1, applied when committed *and applied*, as etcd does),
// learners, and flow-controlled pipelined replication.

import { applyChange, restoreConfState } from "./confchange.js";
import { RaftError, isRaftError } from "./errors.js";
import { RaftLog } from "./log.js";
import { majorityVoteResult } from "./quorum.js";
import type { Rand } from "./rand.js";
import { ReadOnly } from "./read_only.js";
import type { Storage } from "./storage.js";
import { ProgressTracker } from "./tracker/tracker.js";
import type { Progress } from "./tracker/progress.js";
import {
  CAMPAIGN_TRANSFER,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type MessageInit,
  NONE,
  type ReadState,
  type Snapshot,
  type SoftState,
  type StateType,
  decodeConfChange,
  isEmptyHardState,
  isEmptySnapshot,
  msg,
  payloadsSize,
  voteRespType,
} from "./types.js";

export interface RaftLogger {
  debug(text: string): void;
  info(text: string): void;
  warn(text: string): void;
}

export const SILENT_LOGGER: RaftLogger = { debug() {}, info() {}, warn() {} };

export interface RaftConfig {
  /** This node's id; never 0. */
  readonly id: bigint;
  /** The durable log. Raft reads it; the application writes it while handling Readys. */
  readonly storage: Storage;
  /**
   * Ticks a follower waits without hearing from a leader before campaigning. The
   * actual timeout is drawn uniformly from [electionTick, 2*electionTick-1].
   */
  readonly electionTick: number;
  /** Ticks between leader heartbeats. Must be < electionTick (etcd suggests 1/10). */
  readonly heartbeatTick: number;
  /** The seeded random source for election jitter. */
  readonly rand: Rand;
  /** The last index the application has applied (on restart); 0 = the snapshot index. */
  readonly applied?: bigint;
  /** Upper bound of bytes (entrySize) per MsgApp. Default 1 MiB. At least one entry is always sent. */
  readonly maxSizePerMsg?: number;
  /** Upper bound of bytes of committed entries per Ready. Default: no limit. */
  readonly maxCommittedSizePerReady?: number;
  /** Leader drops proposals once its uncommitted tail holds this many payload bytes. 0 = no limit. */
  readonly maxUncommittedEntriesSize?: number;
  /** Max MsgApps in flight to one follower in replicate state. Default 256. */
  readonly maxInflightMsgs?: number;
  /** Max payload bytes in flight to one follower. 0 = no limit. */
  readonly maxInflightBytes?: number;
  /** Leader steps down without a quorum of recent contact; followers honour the leader lease. */
  readonly checkQuorum?: boolean;
  /** Run a pre-vote round before incrementing the term. */
  readonly preVote?: boolean;
  /** Followers drop proposals instead of forwarding them to the leader. */
  readonly disableProposalForwarding?: boolean;
  readonly logger?: RaftLogger;
}

/** A message type that depends on durable local state: sent only after the Ready is persisted. */
function needsPersistence(m: Message): boolean {
  return m.type === "MsgAppResp" || m.type === "MsgVoteResp" || m.type === "MsgPreVoteResp";
}

type CampaignType = "preElection" | "election" | "transfer";

export class Raft {
  readonly id: bigint;
  term = 0n;
  vote = NONE;
  readonly raftLog: RaftLog;
  trk: ProgressTracker;
  state: StateType = "follower";
  /** Whether this node is a learner in its current configuration (learners never campaign or vote-count). */
  isLearner = false;
  lead = NONE;
  /** The node a leadership transfer is going to; proposals are dropped meanwhile. */
  leadTransferee = NONE;
  /**
   * On the leader: the log index of the latest conf change proposal (or the last
   * index when this node became leader). No new conf change is accepted until the
   * application has applied past it, so at most one is pending.
   */
  pendingConfIndex = 0n;
  /** Payload bytes appended by this leader and not yet committed-and-applied (estimate, never over). */
  uncommittedSize = 0;
  readOnly = new ReadOnly();
  /** ReadIndex requests waiting for this leader to commit an entry of its own term. */
  pendingReadIndexMessages: Message[] = [];
  /** Read states for the application (local requests confirmed, or responses from the leader). */
  readStates: ReadState[] = [];

  /**
   * Leader/candidate/follower: ticks since the last election timeout reset. On a
   * follower it is also the age of the leader lease.
   */
  electionElapsed = 0;
  /** Leader only: ticks since the last heartbeat broadcast. */
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;

  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly disableProposalForwarding: boolean;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  private readonly rand: Rand;
  readonly logger: RaftLogger;

  /** Messages that may be sent before the current unstable state is persisted. */
  msgs: Message[] = [];
  /**
   * Messages that may only be sent once the unstable state (entries, term, vote)
   * they were decided on is durable: acks of appends and votes. Self-addressed ones
   * (the leader's own append ack, a candidate's own vote) are stepped back into this
   * node when the Ready is advanced.
   */
  msgsAfterAppend: Message[] = [];

  constructor(c: RaftConfig) {
    if (c.id === NONE) throw new RaftError("ErrInvalid", "cannot use none as id");
    if (c.heartbeatTick <= 0) throw new RaftError("ErrInvalid", "heartbeat tick must be greater than 0");
    if (c.electionTick <= c.heartbeatTick) {
      throw new RaftError("ErrInvalid", "election tick must be greater than heartbeat tick");
    }
    const maxInflight = c.maxInflightMsgs ?? 256;
    if (maxInflight <= 0) throw new RaftError("ErrInvalid", "max inflight messages must be greater than 0");
    this.id = c.id;
    this.electionTimeout = c.electionTick;
    this.heartbeatTimeout = c.heartbeatTick;
    this.checkQuorum = c.checkQuorum ?? false;
    this.preVote = c.preVote ?? false;
    this.disableProposalForwarding = c.disableProposalForwarding ?? false;
    this.maxMsgSize = c.maxSizePerMsg ?? 1024 * 1024;
    this.maxUncommittedSize = c.maxUncommittedEntriesSize ?? 0;
    this.rand = c.rand;
    this.logger = c.logger ?? SILENT_LOGGER;
    this.raftLog = new RaftLog(c.storage, c.maxCommittedSizePerReady ?? Number.MAX_SAFE_INTEGER);
    this.trk = new ProgressTracker(maxInflight, c.maxInflightBytes ?? 0);

    const { hardState, confState } = c.storage.initialState();
    restoreConfState(this.trk, confState, this.raftLog.lastIndex());
    this.logger.info(`${this.id} switched to configuration ${this.trk.describeConfig()}`);
    this.isLearner = this.trk.progress.get(this.id)?.isLearner ?? false;
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (c.applied !== undefined && c.applied > 0n) this.raftLog.appliedTo(c.applied);
    this.becomeFollower(this.term, NONE);
    this.logger.info(
      `newRaft ${this.id} [peers: [${this.trk.voterIds().join(",")}], term: ${this.term}, commit: ${this.raftLog.committed}, ` +
        `applied: ${this.raftLog.applied}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}]`,
    );
  }

  softState(): SoftState {
    return { lead: this.lead, state: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  // ---------------------------------------------------------------- sending

  private send(init: MessageInit): void {
    let term = init.term ?? 0n;
    const t = init.type;
    if (t === "MsgVote" || t === "MsgVoteResp" || t === "MsgPreVote" || t === "MsgPreVoteResp") {
      if (term === 0n) throw new Error(`term should be set when sending ${t}`);
    } else {
      if (term !== 0n) throw new Error(`term should not be set when sending ${t} (was ${term})`);
      // Proposals and read requests forwarded to the leader travel without a term:
      // they are valid at any term and are treated as local on arrival.
      if (t !== "MsgProp" && t !== "MsgReadIndex") term = this.term;
    }
    const m = msg(init, init.from ?? this.id, term); // no spread: one object per message
    if (needsPersistence(m)) {
      this.msgsAfterAppend.push(m);
    } else {
      if (m.to === this.id) throw new Error(`message should not be self-addressed when sending ${m.type}`);
      this.msgs.push(m);
    }
  }

  private sendAppend(to: bigint): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends an append (new entries if flow control allows, and the commit index) to
   * `to`. With sendIfEmpty false, nothing is sent unless there are entries.
   * Returns whether a message was sent.
   */
  private maybeSendAppend(to: bigint, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;

    const prevIndex = pr.next - 1n;
    let prevTerm: bigint;
    try {
      prevTerm = this.raftLog.term(prevIndex);
    } catch (err) {
      if (isRaftError(err, "ErrCompacted") || isRaftError(err, "ErrUnavailable")) {
        // The entry before next is compacted: only a snapshot can catch this follower up.
        return this.maybeSendSnapshot(to, pr);
      }
      throw err;
    }
    let ents: Entry[] = [];
    // In a full replicate window send only empty appends: they still deliver the
    // commit index and, once acked or rejected, clear the window if messages were lost.
    if (pr.state !== "replicate" || !pr.inflights.full()) {
      try {
        ents = this.raftLog.entries(pr.next, this.maxMsgSize);
      } catch (err) {
        if (isRaftError(err, "ErrCompacted")) return this.maybeSendSnapshot(to, pr);
        throw err;
      }
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    const commit = this.raftLog.committed;
    this.send({ to, type: "MsgApp", index: prevIndex, logTerm: prevTerm, entries: ents, commit });
    pr.sentEntries(ents.length, payloadsSize(ents));
    pr.sentCommit(commit);
    return true;
  }

  private maybeSendSnapshot(to: bigint, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.logger.debug(`ignore sending snapshot to ${to} since it is not recently active`);
      return false;
    }
    let snapshot: Snapshot;
    try {
      snapshot = this.raftLog.snapshot();
    } catch (err) {
      if (isRaftError(err, "ErrSnapshotTemporarilyUnavailable")) {
        this.logger.debug(`${this.id} failed to send snapshot to ${to} because snapshot is temporarily unavailable`);
        return false;
      }
      throw err;
    }
    if (isEmptySnapshot(snapshot)) throw new Error("need non-empty snapshot");
    const { index, term } = snapshot.metadata;
    this.logger.info(
      `${this.id} [firstindex: ${this.raftLog.firstIndex()}, commit: ${this.raftLog.committed}] sent snapshot[index: ${index}, term: ${term}] to ${to} [${pr}]`,
    );
    pr.becomeSnapshot(index);
    this.send({ to, type: "MsgSnap", snapshot });
    return true;
  }

  private sendHeartbeat(to: bigint, ctx: Uint8Array | undefined): void {
    const pr = this.trk.progress.get(to)!;
    // Never tell a follower to commit beyond what it is known to hold.
    const commit = pr.match < this.raftLog.committed ? pr.match : this.raftLog.committed;
    this.send(ctx === undefined ? { to, type: "MsgHeartbeat", commit } : { to, type: "MsgHeartbeat", commit, context: ctx });
    pr.sentCommit(commit);
  }

  private bcastAppend(): void {
    this.trk.visit((id) => {
      if (id !== this.id) this.sendAppend(id);
    });
  }

  private bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx());
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array | undefined): void {
    this.trk.visit((id) => {
      if (id !== this.id) this.sendHeartbeat(id, ctx);
    });
  }

  // ------------------------------------------------------- log bookkeeping

  /** The application has applied up to `index` (called by RawNode.advance). */
  appliedTo(index: bigint, appliedPayloadBytes: number): void {
    const newApplied = index > this.raftLog.applied ? index : this.raftLog.applied;
    this.raftLog.appliedTo(newApplied);
    this.reduceUncommittedSize(appliedPayloadBytes);
  }

  /** Advances the commit index by the quorum rule; true if it moved. Leader only. */
  private maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.trk.committed(), this.term);
  }

  private reset(term: bigint): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const id of this.trk.ids()) {
      const old = this.trk.progress.get(id)!;
      const pr = this.trk.newProgress(last + 1n, old.isLearner);
      if (id === this.id) pr.match = last;
      this.trk.progress.set(id, pr);
    }
    this.pendingConfIndex = 0n;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
  }

  /** Appends entries proposed on this leader; false if the uncommitted-size limit refuses them. */
  private appendEntry(proposed: readonly Entry[]): boolean {
    const li = this.raftLog.lastIndex();
    const es = proposed.map((e, i) => ({ ...e, term: this.term, index: li + 1n + BigInt(i) }));
    if (!this.increaseUncommittedSize(es)) {
      this.logger.warn(`${this.id} appending new entries to log would exceed uncommitted entry size limit; dropping proposal`);
      return false;
    }
    const last = this.raftLog.append(es);
    // The leader acks its own entries once they are durable (stepped back in advance()).
    this.send({ to: this.id, type: "MsgAppResp", index: last });
    return true;
  }

  // ------------------------------------------------------------------ ticks

  /** Advances the logical clock by one tick. */
  tick(): void {
    if (this.state === "leader") this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(msg({ type: "MsgHup", from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(msg({ type: "MsgCheckQuorum", from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === "leader" && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.state !== "leader") return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(msg({ type: "MsgBeat", from: this.id }));
    }
  }

  // ------------------------------------------------------ state transitions

  becomeFollower(term: bigint, lead: bigint): void {
    this.reset(term);
    this.lead = lead;
    this.state = "follower";
    this.logger.info(`${this.id} became follower at term ${this.term}`);
  }

  becomeCandidate(): void {
    if (this.state === "leader") throw new Error("invalid transition [leader -> candidate]");
    this.reset(this.term + 1n);
    this.vote = this.id;
    this.state = "candidate";
    this.logger.info(`${this.id} became candidate at term ${this.term}`);
  }

  becomePreCandidate(): void {
    if (this.state === "leader") throw new Error("invalid transition [leader -> pre-candidate]");
    // Neither the term nor the vote changes: a pre-election is only a poll.
    this.trk.resetVotes();
    this.lead = NONE;
    this.state = "preCandidate";
    this.logger.info(`${this.id} became pre-candidate at term ${this.term}`);
  }

  becomeLeader(): void {
    if (this.state === "follower") throw new Error("invalid transition [follower -> leader]");
    this.reset(this.term);
    this.lead = this.id;
    this.state = "leader";
    const self = this.trk.progress.get(this.id)!;
    // The leader's own progress is always in replicate state and always active.
    self.becomeReplicate();
    self.recentActive = true;
    // Any conf change in the uncommitted tail may still be pending: refuse new ones
    // until everything up to here is applied.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // The empty entry of the new term: committing it commits every earlier entry.
    if (!this.appendEntry([{ term: 0n, index: 0n, type: "normal", data: new Uint8Array(0) }])) {
      throw new Error("empty entry was dropped");
    }
    this.logger.info(`${this.id} became leader at term ${this.term}`);
  }

  private hup(t: CampaignType): void {
    if (this.state === "leader") {
      this.logger.debug(`${this.id} ignoring MsgHup because already leader`);
      return;
    }
    if (!this.promotable()) {
      this.logger.warn(`${this.id} is unpromotable and can not campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.logger.warn(`${this.id} cannot campaign at term ${this.term} since there are still pending configuration changes to apply`);
      return;
    }
    this.logger.info(`${this.id} is starting a new election at term ${this.term}`);
    this.campaign(t);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.raftLog.applied >= this.raftLog.committed) return false;
    const ents = this.raftLog.slice(this.raftLog.applied + 1n, this.raftLog.committed + 1n, Number.MAX_SAFE_INTEGER);
    return ents.some((e) => e.type === "confChange");
  }

  private campaign(t: CampaignType): void {
    let term: bigint;
    let voteMsg: "MsgVote" | "MsgPreVote";
    if (t === "preElection") {
      this.becomePreCandidate();
      voteMsg = "MsgPreVote";
      // Pre-votes ask about the next term without moving to it.
      term = this.term + 1n;
    } else {
      this.becomeCandidate();
      voteMsg = "MsgVote";
      term = this.term;
    }
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of this.trk.voterIds()) {
      if (id === this.id) {
        // Our own vote counts once it is durable: it comes back through advance().
        this.send({ to: id, term, type: voteRespType(voteMsg) });
        continue;
      }
      this.logger.info(
        `${this.id} [logterm: ${lastTerm}, index: ${lastIndex}] sent ${voteMsg} request to ${id} at term ${this.term}`,
      );
      const init: MessageInit = { to: id, term, type: voteMsg, index: lastIndex, logTerm: lastTerm };
      this.send(t === "transfer" ? { ...init, context: CAMPAIGN_TRANSFER } : init);
    }
  }

  private poll(id: bigint, t: string, granted: boolean) {
    if (granted) this.logger.info(`${this.id} received ${t} from ${id} at term ${this.term}`);
    else this.logger.info(`${this.id} received ${t} rejection from ${id} at term ${this.term}`);
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes();
  }

  // ------------------------------------------------------------------- step

  /**
   * Processes one message: from the network, or local (MsgHup, MsgBeat, MsgProp,
   * MsgReadIndex...). Throws RaftError("ErrProposalDropped") when a proposal is
   * refused; every other outcome is reported through the queued outputs.
   */
  step(m: Message): void {
    // First, the message's term: it may make us step down, or be stale.
    if (m.term === 0n) {
      // Local message (or a forwarded proposal / read request).
    } else if (m.term > this.term) {
      if (m.type === "MsgVote" || m.type === "MsgPreVote") {
        const force = m.context !== undefined && bytesEqual(m.context, CAMPAIGN_TRANSFER);
        const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // Heard from a live leader within the election timeout: this vote request
          // is from a disrupted or partitioned node. Do not update the term or vote.
          this.logger.info(
            `${this.id} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${this.vote}] ignored ${m.type} from ${m.from} ` +
              `[logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}: lease is not expired (remaining ticks: ${this.electionTimeout - this.electionElapsed})`,
          );
          return;
        }
      }
      if (m.type === "MsgPreVote") {
        // Never change our term in response to a pre-vote.
      } else if (m.type === "MsgPreVoteResp" && !m.reject) {
        // A granted pre-vote carries the term we will campaign at; we move to it
        // when (and if) we win the pre-election.
      } else {
        this.logger.info(
          `${this.id} [term: ${this.term}] received a ${m.type} message with higher term from ${m.from} [term: ${m.term}]`,
        );
        if (m.type === "MsgApp" || m.type === "MsgHeartbeat" || m.type === "MsgSnap") {
          this.becomeFollower(m.term, m.from);
        } else {
          this.becomeFollower(m.term, NONE);
        }
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === "MsgHeartbeat" || m.type === "MsgApp")) {
        // A leader of an older term is still talking to us. Tell it about our term so
        // it steps down: with check-quorum or pre-vote our term may have moved on in a
        // partition, and nothing else would make the old leader notice.
        this.send({ to: m.from, type: "MsgAppResp" });
      } else if (m.type === "MsgPreVote") {
        // Answer (and reject) so that the pre-candidate learns our term.
        this.logger.info(
          `${this.id} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${this.vote}] rejected ${m.type} from ${m.from} ` +
            `[logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`,
        );
        this.send({ to: m.from, term: this.term, type: "MsgPreVoteResp", reject: true });
      } else {
        this.logger.info(
          `${this.id} [term: ${this.term}] ignored a ${m.type} message with lower term from ${m.from} [term: ${m.term}]`,
        );
      }
      return;
    }

    switch (m.type) {
      case "MsgHup":
        this.hup(this.preVote ? "preElection" : "election");
        return;
      case "MsgVote":
      case "MsgPreVote": {
        // We can vote if this repeats a vote we already cast, or we have not voted and
        // know no leader in this term, or this is a pre-vote for a future term...
        const canVote =
          this.vote === m.from ||
          (this.vote === NONE && this.lead === NONE) ||
          (m.type === "MsgPreVote" && m.term > this.term);
        // ...and the candidate's log is at least as up to date as ours.
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          // Learners answer too: a learner may have been promoted by a committed
          // change it has not applied yet, and the cluster may need its vote.
          this.logger.info(
            `${this.id} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${this.vote}] cast ${m.type} for ${m.from} ` +
              `[logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`,
          );
          // Reply with the message's term: for pre-votes ours may be lower, and the
          // pre-candidate ignores answers from older terms.
          this.send({ to: m.from, term: m.term, type: voteRespType(m.type) });
          if (m.type === "MsgVote") {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.logger.info(
            `${this.id} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${this.vote}] rejected ${m.type} from ${m.from} ` +
              `[logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`,
          );
          this.send({ to: m.from, term: this.term, type: voteRespType(m.type), reject: true });
        }
        return;
      }
      default:
        switch (this.state) {
          case "leader":
            this.stepLeader(m);
            return;
          case "candidate":
          case "preCandidate":
            this.stepCandidate(m);
            return;
          case "follower":
            this.stepFollower(m);
            return;
        }
    }
  }

  private stepLeader(m: Message): void {
    // Messages that need no progress for the sender.
    switch (m.type) {
      case "MsgBeat":
        this.bcastHeartbeat();
        return;
      case "MsgCheckQuorum":
        if (!this.trk.quorumActive()) {
          this.logger.warn(`${this.id} stepped down to follower since quorum is not active`);
          this.becomeFollower(this.term, NONE);
        }
        // Everyone but us must prove activity again before the next check.
        this.trk.visit((id, pr) => {
          if (id !== this.id) pr.recentActive = false;
        });
        return;
      case "MsgProp": {
        if (m.entries.length === 0) throw new Error(`${this.id} stepped empty MsgProp`);
        if (!this.trk.progress.has(this.id)) {
          // Removed from the configuration while leading: accept nothing new.
          throw new RaftError("ErrProposalDropped", "leader is not in the configuration");
        }
        if (this.leadTransferee !== NONE) {
          this.logger.debug(
            `${this.id} [term ${this.term}] transfer leadership to ${this.leadTransferee} is in progress; dropping proposal`,
          );
          throw new RaftError("ErrProposalDropped", "leadership transfer in progress");
        }
        const ents = m.entries.slice();
        for (let i = 0; i < ents.length; i++) {
          const e = ents[i]!;
          if (e.type !== "confChange") continue;
          if (this.pendingConfIndex > this.raftLog.applied) {
            // Another change is appended but not applied yet. Like etcd, keep the slot
            // in the log but turn the change into an empty normal entry.
            this.logger.info(
              `${this.id} ignoring conf change at config ${this.trk.describeConfig()}: possible unapplied conf change at index ${this.pendingConfIndex} (applied to ${this.raftLog.applied})`,
            );
            ents[i] = { ...e, type: "normal", data: new Uint8Array(0) };
          } else {
            this.pendingConfIndex = this.raftLog.lastIndex() + BigInt(i) + 1n;
          }
        }
        if (!this.appendEntry(ents)) throw new RaftError("ErrProposalDropped", "uncommitted size limit");
        this.bcastAppend();
        return;
      }
      case "MsgReadIndex":
        if (this.trk.isSingleton()) {
          // The only voter is us: the commit index is already confirmed.
          this.respondToReadIndex(m, this.raftLog.committed);
          return;
        }
        // A new leader does not know its commit index is the latest until it has
        // committed an entry of its own term (the empty entry it appended).
        if (!this.committedEntryInCurrentTerm()) {
          this.pendingReadIndexMessages.push(m);
          return;
        }
        this.startReadIndex(m);
        return;
      default:
        break;
    }

    const pr = this.trk.progress.get(m.from);
    if (pr === undefined) {
      this.logger.debug(`${this.id} no progress available for ${m.from}`);
      return;
    }
    switch (m.type) {
      case "MsgAppResp":
        pr.recentActive = true;
        if (m.reject) {
          this.logger.debug(
            `${this.id} received MsgAppResp(rejected, hint: (index ${m.rejectHint}, term ${m.logTerm})) from ${m.from} for index ${m.index}`,
          );
          let nextProbeIdx = m.rejectHint;
          if (m.logTerm > 0n) {
            // The follower's entry at rejectHint has term logTerm. Every index of ours
            // whose term is above logTerm must fail too (terms only grow along a log),
            // so skip to the last index with term <= logTerm: at most one probe per term.
            nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm).index;
          }
          if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
            this.logger.debug(`${this.id} decreased progress of ${m.from} to [${pr}]`);
            if (pr.state === "replicate") pr.becomeProbe();
            this.sendAppend(m.from);
          }
        } else {
          // Update on a new match, or when an ack lets a probing follower replicate again.
          if (pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === "probe")) {
            if (pr.state === "probe") {
              pr.becomeReplicate();
            } else if (pr.state === "snapshot" && pr.match + 1n >= this.raftLog.firstIndex()) {
              // The follower can be caught up from the log again (whatever snapshot it installed).
              this.logger.info(`${this.id} recovered from needing snapshot, resumed sending replication messages to ${m.from} [${pr}]`);
              pr.becomeProbe();
              pr.becomeReplicate();
            } else if (pr.state === "replicate") {
              pr.inflights.freeLE(m.index);
            }
            if (this.maybeCommit()) {
              // Committed an entry of this term: pending reads may proceed.
              this.releasePendingReadIndexMessages();
              this.bcastAppend();
            } else if (m.from !== this.id && pr.canBumpCommit(this.raftLog.committed)) {
              // The follower may be missing the latest commit index; tell it now rather than at the next heartbeat.
              this.sendAppend(m.from);
            }
            // Flow control may have opened up: send as many appends with entries as allowed.
            if (m.from !== this.id) {
              while (this.maybeSendAppend(m.from, false)) {
                // keep sending
              }
            }
            if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
              this.logger.info(`${this.id} sent MsgTimeoutNow to ${m.from} after received MsgAppResp`);
              this.send({ to: m.from, type: "MsgTimeoutNow" });
            }
          }
        }
        return;
      case "MsgHeartbeatResp": {
        pr.recentActive = true;
        pr.msgAppProbesPaused = false;
        // A heartbeat response re-opens a paused flow: if the follower is behind (or
        // probing), send an append so lost messages cannot stall it.
        if (pr.match < this.raftLog.lastIndex() || pr.state === "probe") this.sendAppend(m.from);
        if (m.context === undefined || m.context.length === 0) return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (acks === undefined) return;
        const votes = new Map<bigint, boolean>();
        for (const id of acks) votes.set(id, true);
        if (majorityVoteResult(this.trk.voterIds(), votes) !== "won") return;
        for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
        return;
      }
      case "MsgSnapStatus":
        if (pr.state !== "snapshot") return;
        if (!m.reject) {
          pr.becomeProbe();
          this.logger.debug(`${this.id} snapshot succeeded, resumed sending replication messages to ${m.from} [${pr}]`);
        } else {
          // The snapshot never arrived: probe from match again, not from the snapshot.
          pr.pendingSnapshot = 0n;
          pr.becomeProbe();
          this.logger.debug(`${this.id} snapshot failed, resumed sending replication messages to ${m.from} [${pr}]`);
        }
        // Wait for the follower's append response (or a heartbeat interval) before sending more.
        pr.msgAppProbesPaused = true;
        return;
      case "MsgUnreachable":
        // While streaming optimistically, an unreachable peer has probably lost a MsgApp.
        if (pr.state === "replicate") pr.becomeProbe();
        this.logger.debug(`${this.id} failed to send message to ${m.from} because it is unreachable [${pr}]`);
        return;
      case "MsgTransferLeader": {
        if (pr.isLearner) {
          this.logger.info(`${this.id} is learner. Ignored transferring leadership`);
          return;
        }
        const transferee = m.from;
        const last = this.leadTransferee;
        if (last !== NONE) {
          if (last === transferee) {
            this.logger.info(
              `${this.id} [term ${this.term}] transfer leadership to ${transferee} is in progress, ignores request to same node ${transferee}`,
            );
            return;
          }
          this.abortLeaderTransfer();
          this.logger.info(`${this.id} [term ${this.term}] abort previous transferring leadership to ${last}`);
        }
        if (transferee === this.id) {
          this.logger.info(`${this.id} is already leader. Ignored transferring leadership to self`);
          return;
        }
        this.logger.info(`${this.id} [term ${this.term}] starts to transfer leadership to ${transferee}`);
        // The transfer must finish within an election timeout.
        this.electionElapsed = 0;
        this.leadTransferee = transferee;
        if (pr.match === this.raftLog.lastIndex()) {
          this.send({ to: transferee, type: "MsgTimeoutNow" });
          this.logger.info(`${this.id} sends MsgTimeoutNow to ${transferee} immediately as ${transferee} already has up-to-date log`);
        } else {
          this.sendAppend(transferee);
        }
        return;
      }
      default:
        return;
    }
  }

  /** Shared by candidate and pre-candidate; each only counts its own kind of vote response. */
  private stepCandidate(m: Message): void {
    const myVoteRespType = this.state === "preCandidate" ? "MsgPreVoteResp" : "MsgVoteResp";
    switch (m.type) {
      case "MsgProp":
        this.logger.info(`${this.id} no leader at term ${this.term}; dropping proposal`);
        throw new RaftError("ErrProposalDropped", "no leader");
      case "MsgApp":
        this.becomeFollower(m.term, m.from); // m.term == this.term: a leader won this term
        this.handleAppendEntries(m);
        return;
      case "MsgHeartbeat":
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case "MsgSnap":
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case "MsgPreVoteResp":
      case "MsgVoteResp": {
        if (m.type !== myVoteRespType) return; // a stale answer from our pre-candidacy
        const { granted, rejected, result } = this.poll(m.from, m.type, !m.reject);
        this.logger.info(`${this.id} has received ${granted} ${m.type} votes and ${rejected} vote rejections`);
        if (result === "won") {
          if (this.state === "preCandidate") {
            this.campaign("election");
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === "lost") {
          // A pre-vote response may carry a future term; stay at ours.
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      case "MsgTimeoutNow":
        this.logger.debug(`${this.id} [term ${this.term} state ${this.state}] ignored MsgTimeoutNow from ${m.from}`);
        return;
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case "MsgProp":
        if (this.lead === NONE) {
          this.logger.info(`${this.id} no leader at term ${this.term}; dropping proposal`);
          throw new RaftError("ErrProposalDropped", "no leader");
        }
        if (this.disableProposalForwarding) {
          this.logger.info(`${this.id} not forwarding to leader ${this.lead} at term ${this.term}; dropping proposal`);
          throw new RaftError("ErrProposalDropped", "proposal forwarding disabled");
        }
        this.send({ ...m, to: this.lead, term: 0n, from: m.from === NONE ? this.id : m.from });
        return;
      case "MsgApp":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case "MsgHeartbeat":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case "MsgSnap":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case "MsgTransferLeader":
        if (this.lead === NONE) {
          this.logger.info(`${this.id} no leader at term ${this.term}; dropping leader transfer msg`);
          return;
        }
        this.send({ ...m, to: this.lead, term: 0n });
        return;
      case "MsgTimeoutNow":
        this.logger.info(
          `${this.id} [term ${this.term}] received MsgTimeoutNow from ${m.from} and starts an election to get leadership.`,
        );
        // No pre-vote: the current leader asked for this election.
        this.hup("transfer");
        return;
      case "MsgReadIndex":
        if (this.lead === NONE) {
          this.logger.info(`${this.id} no leader at term ${this.term}; dropping index reading msg`);
          return;
        }
        this.send({ ...m, to: this.lead, term: 0n, from: m.from === NONE ? this.id : m.from });
        return;
      case "MsgReadIndexResp":
        this.readStates.push({ index: m.index, requestCtx: m.context ?? new Uint8Array(0) });
        return;
      default:
        return;
    }
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      // Everything up to our commit index is settled; tell the leader where we are.
      this.send({ to: m.from, type: "MsgAppResp", index: this.raftLog.committed });
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send({ to: m.from, type: "MsgAppResp", index: lastNew });
      return;
    }
    this.logger.debug(
      `${this.id} [logterm: ${this.raftLog.termOrZero(m.index)}, index: ${m.index}] rejected MsgApp [logterm: ${m.logTerm}, index: ${m.index}] from ${m.from}`,
    );
    // Hint at the largest (index, term) that might match: the last index <= m.index
    // whose term is <= m.logTerm. This skips a divergent tail of higher terms at once.
    const hintIndex = m.index < this.raftLog.lastIndex() ? m.index : this.raftLog.lastIndex();
    const hint = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    this.send({ to: m.from, type: "MsgAppResp", index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term });
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    this.send(
      m.context === undefined
        ? { to: m.from, type: "MsgHeartbeatResp" }
        : { to: m.from, type: "MsgHeartbeatResp", context: m.context },
    );
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (s === undefined) {
      this.logger.warn(`${this.id} received MsgSnap without a snapshot from ${m.from}`);
      return;
    }
    const { index, term } = s.metadata;
    if (this.restore(s)) {
      this.logger.info(`${this.id} [commit: ${this.raftLog.committed}] restored snapshot [index: ${index}, term: ${term}]`);
      this.send({ to: m.from, type: "MsgAppResp", index: this.raftLog.lastIndex() });
    } else {
      this.logger.info(`${this.id} [commit: ${this.raftLog.committed}] ignored snapshot [index: ${index}, term: ${term}]`);
      this.send({ to: m.from, type: "MsgAppResp", index: this.raftLog.committed });
    }
  }

  /** Installs a leader's snapshot; false if it is stale or already covered by the log. */
  private restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== "follower") {
      // Defense in depth: only followers install snapshots.
      this.logger.warn(`${this.id} attempted to restore snapshot as ${this.state}; should never happen`);
      this.becomeFollower(this.term + 1n, NONE);
      return false;
    }
    const cs = s.metadata.confState;
    if (!cs.voters.includes(this.id) && !cs.learners.includes(this.id)) {
      this.logger.warn(`${this.id} attempted to restore snapshot but it is not in the ConfState; should never happen`);
      return false;
    }
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the snapshot's last entry: just move the commit index.
      this.logger.info(
        `${this.id} [commit: ${this.raftLog.committed}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}] ` +
          `fast-forwarded commit to snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`,
      );
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.logger.info(`log [${this.raftLog}] starts to restore snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
    this.raftLog.restore(s);
    this.trk = new ProgressTracker(this.trk.maxInflight, this.trk.maxInflightBytes);
    restoreConfState(this.trk, cs, this.raftLog.lastIndex());
    this.switchToConfig();
    this.logger.info(
      `${this.id} [commit: ${this.raftLog.committed}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}] ` +
        `restored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`,
    );
    return true;
  }

  /** Whether this node may campaign: it is a voter and not waiting to install a snapshot. */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasPendingSnapshot();
  }

  /**
   * Applies a committed membership change (called by the application when it applies
   * the entry). A change that would leave no voters is ignored on every node alike,
   * since it is already in the log.
   */
  applyConfChange(cc: ConfChange): ConfState {
    try {
      applyChange(this.trk, cc, this.raftLog.lastIndex());
    } catch (err) {
      if (!isRaftError(err, "ErrInvalid")) throw err;
      this.logger.warn(`${this.id} ignoring invalid conf change ${cc.type} ${cc.nodeId}: ${err.message}`);
      return this.trk.confState();
    }
    return this.switchToConfig();
  }

  /** Reacts to a new configuration (after a conf change or a snapshot restore). */
  private switchToConfig(): ConfState {
    this.logger.info(`${this.id} switched to configuration ${this.trk.describeConfig()}`);
    const cs = this.trk.confState();
    const pr = this.trk.progress.get(this.id);
    this.isLearner = pr !== undefined && pr.isLearner;
    if ((pr === undefined || this.isLearner) && this.state === "leader") {
      // Removed (or demoted) while leading: step down so the rest elect a leader
      // (etcd's StepDownOnRemoval; the others campaign after their election timeout).
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.state !== "leader" || cs.voters.length === 0) return cs;
    if (this.maybeCommit()) {
      // A smaller quorum may commit more right away.
      this.bcastAppend();
    } else {
      // Start replicating to new members without waiting for the next proposal.
      this.trk.visit((id) => {
        if (id !== this.id) this.maybeSendAppend(id, false);
      });
    }
    if (this.leadTransferee !== NONE && !this.trk.voters.has(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  private loadState(hs: HardState): void {
    if (hs.commit < this.raftLog.committed || hs.commit > this.raftLog.lastIndex()) {
      throw new Error(`${this.id} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`);
    }
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  private pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.rand.intn(this.electionTimeout);
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrZero(this.raftLog.committed) === this.term;
  }

  private startReadIndex(m: Message): void {
    const ctx = m.context ?? new Uint8Array(0);
    this.readOnly.addRequest(this.raftLog.committed, m);
    // The leader acks its own heartbeat round.
    this.readOnly.recvAck(this.id, ctx);
    this.bcastHeartbeatWithCtx(ctx);
  }

  /** Answers a confirmed read: to the local application, or to the follower that asked. */
  private respondToReadIndex(req: Message, readIndex: bigint): void {
    const ctx = req.context ?? new Uint8Array(0);
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: ctx });
      return;
    }
    this.send({ to: req.from, type: "MsgReadIndexResp", index: readIndex, context: ctx });
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (!this.committedEntryInCurrentTerm()) return;
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of pending) this.startReadIndex(m);
  }

  private increaseUncommittedSize(ents: readonly Entry[]): boolean {
    const s = payloadsSize(ents);
    // An empty tail accepts any proposal; empty entries are never refused.
    if (this.maxUncommittedSize > 0 && this.uncommittedSize > 0 && s > 0 && this.uncommittedSize + s > this.maxUncommittedSize) {
      return false;
    }
    this.uncommittedSize += s;
    return true;
  }

  private reduceUncommittedSize(s: number): void {
    this.uncommittedSize = s > this.uncommittedSize ? 0 : this.uncommittedSize - s;
  }

  /** Decodes a conf change entry's payload (for applications applying committed entries). */
  static confChangeOf(e: Entry): ConfChange {
    if (e.type !== "confChange") throw new Error(`entry ${e.index} is not a conf change`);
    return decodeConfChange(e.data);
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
