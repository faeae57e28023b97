// The data the consensus core works on. Shapes follow etcd-io/raft's raftpb so a
// later wire format can map onto them field for field; the code is our own.
//
// Every 64-bit quantity (term, index, node id, commit) is a bigint. Byte sizes
// and tick counts are plain numbers: they are bounded by memory and config.

/** Node id 0 means "nobody" (no leader, no vote). */
export const NONE = 0n;

export type EntryType = "normal" | "confChange";

/** One log entry. `data` is opaque to raft except for confChange entries. */
export interface Entry {
  readonly term: bigint;
  readonly index: bigint;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** What must be on disk before a node may answer for its term and vote. */
export interface HardState {
  readonly term: bigint;
  readonly vote: bigint;
  readonly commit: bigint;
}

export const EMPTY_HARD_STATE: HardState = { term: 0n, vote: NONE, commit: 0n };

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0n && hs.vote === NONE && hs.commit === 0n;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** The membership: voters and learners (single-step changes only, so no joint halves). */
export interface ConfState {
  readonly voters: readonly bigint[];
  readonly learners: readonly bigint[];
}

export interface SnapshotMetadata {
  readonly index: bigint;
  readonly term: bigint;
  readonly confState: ConfState;
}

/** A snapshot of the application's state at `metadata.index`; `data` is opaque to raft. */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

export const EMPTY_SNAPSHOT: Snapshot = {
  metadata: { index: 0n, term: 0n, confState: { voters: [], learners: [] } },
  data: new Uint8Array(0),
};

export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0n;
}

/** Message types, named as in etcd-io/raft's raftpb.MessageType. */
export const MessageTypes = [
  "MsgHup", // local: start an election
  "MsgBeat", // local: leader should broadcast heartbeats
  "MsgProp", // proposal (local, or forwarded by a follower)
  "MsgApp", // append entries
  "MsgAppResp",
  "MsgVote",
  "MsgVoteResp",
  "MsgSnap", // install snapshot
  "MsgHeartbeat",
  "MsgHeartbeatResp",
  "MsgUnreachable", // local: transport reports a peer unreachable
  "MsgSnapStatus", // local: transport reports snapshot delivery result
  "MsgCheckQuorum", // local: leader checks that a quorum is active
  "MsgTransferLeader",
  "MsgTimeoutNow",
  "MsgReadIndex",
  "MsgReadIndexResp",
  "MsgPreVote",
  "MsgPreVoteResp",
] as const;
export type MessageType = (typeof MessageTypes)[number];

/** Message types that never travel between nodes. */
export function isLocalMsg(t: MessageType): boolean {
  return t === "MsgHup" || t === "MsgBeat" || t === "MsgUnreachable" || t === "MsgSnapStatus" || t === "MsgCheckQuorum";
}

export function isResponseMsg(t: MessageType): boolean {
  return (
    t === "MsgAppResp" ||
    t === "MsgVoteResp" ||
    t === "MsgHeartbeatResp" ||
    t === "MsgUnreachable" ||
    t === "MsgPreVoteResp"
  );
}

export function voteRespType(t: MessageType): MessageType {
  if (t === "MsgVote") return "MsgVoteResp";
  if (t === "MsgPreVote") return "MsgPreVoteResp";
  throw new Error(`not a vote message: ${t}`);
}

/**
 * One raft message. Unused fields are zero / empty, as in raftpb.
 *
 * - MsgApp: `index`/`logTerm` identify the entry preceding `entries`; `commit` is the leader's.
 * - MsgAppResp: `index` is the last index the follower now matches (accept), or the rejected
 *   MsgApp's `index` (reject) with `rejectHint`/`logTerm` suggesting where the logs may match.
 * - MsgVote/MsgPreVote: `index`/`logTerm` describe the candidate's last entry; `context` is
 *   CAMPAIGN_TRANSFER for a leadership transfer (which bypasses the leader lease).
 * - MsgHeartbeat/Resp, MsgReadIndex/Resp: `context` carries the read request id.
 */
export interface Message {
  readonly type: MessageType;
  readonly to: bigint;
  readonly from: bigint;
  readonly term: bigint;
  readonly logTerm: bigint;
  readonly index: bigint;
  readonly entries: readonly Entry[];
  readonly commit: bigint;
  readonly snapshot?: Snapshot;
  readonly reject: boolean;
  readonly rejectHint: bigint;
  readonly context?: Uint8Array;
}

export type MessageInit = Partial<Message> & { type: MessageType };

/** Fills the zero values of a message; `from` and `term`, when given, replace m's. */
export function msg(m: MessageInit, from?: bigint, term?: bigint): Message {
  const out: Message = {
    type: m.type,
    to: m.to ?? NONE,
    from: from ?? m.from ?? NONE,
    term: term ?? m.term ?? 0n,
    logTerm: m.logTerm ?? 0n,
    index: m.index ?? 0n,
    entries: m.entries ?? [],
    commit: m.commit ?? 0n,
    reject: m.reject ?? false,
    rejectHint: m.rejectHint ?? 0n,
  };
  if (m.snapshot !== undefined) (out as { snapshot?: Snapshot }).snapshot = m.snapshot;
  if (m.context !== undefined) (out as { context?: Uint8Array }).context = m.context;
  return out;
}

export const CAMPAIGN_TRANSFER = new TextEncoder().encode("CampaignTransfer");

export type StateType = "follower" | "preCandidate" | "candidate" | "leader";

/** Volatile state that the application may want to observe (not persisted). */
export interface SoftState {
  readonly lead: bigint;
  readonly state: StateType;
}

/** A confirmed read: once the application has applied `index`, reads for `requestCtx` are linearizable. */
export interface ReadState {
  readonly index: bigint;
  readonly requestCtx: Uint8Array;
}

// ---- Membership changes (ConfChange v1: one node per change) ----

export type ConfChangeType = "addNode" | "addLearnerNode" | "removeNode" | "updateNode";

export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: bigint;
  /** Opaque to raft; etcd puts the member's URLs here. */
  readonly context?: Uint8Array;
}

const CC_CODES: Record<ConfChangeType, number> = { addNode: 0, removeNode: 1, updateNode: 2, addLearnerNode: 3 };
const CC_BY_CODE: ConfChangeType[] = ["addNode", "removeNode", "updateNode", "addLearnerNode"];

/**
 * Encodes a ConfChange as an entry payload: one type byte (raftpb's ConfChangeType
 * numbers), the node id as 8 bytes big-endian, then the context bytes.
 */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const ctx = cc.context ?? new Uint8Array(0);
  const out = new Uint8Array(9 + ctx.length);
  const view = new DataView(out.buffer);
  out[0] = CC_CODES[cc.type];
  view.setBigUint64(1, cc.nodeId);
  out.set(ctx, 9);
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.length < 9) throw new Error(`conf change payload too short (${data.length} bytes)`);
  const type = CC_BY_CODE[data[0] ?? 255];
  if (type === undefined) throw new Error(`unknown conf change type ${data[0]}`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const nodeId = view.getBigUint64(1);
  const cc: ConfChange = data.length > 9 ? { type, nodeId, context: data.slice(9) } : { type, nodeId };
  return cc;
}

// ---- Sizes ----

/** Bytes counted against MaxSizePerMsg / MaxCommittedSizePerReady: payload plus a fixed header estimate. */
export const ENTRY_OVERHEAD = 16;

export function entrySize(e: Entry): number {
  return e.data.length + ENTRY_OVERHEAD;
}

/** Bytes counted against MaxInflightBytes and MaxUncommittedEntriesSize: the payload only, as etcd does. */
export function payloadSize(e: Entry): number {
  return e.data.length;
}

export function payloadsSize(ents: readonly Entry[]): number {
  let s = 0;
  for (const e of ents) s += e.data.length;
  return s;
}

/**
 * Returns the longest prefix of `ents` whose total entrySize is at most `maxSize`,
 * but always at least one entry (a single large entry must still make progress).
 */
export function limitSize<T extends Entry>(ents: readonly T[], maxSize: number): T[] {
  if (ents.length === 0) return [];
  let size = entrySize(ents[0]!);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entrySize(ents[n]!);
    if (size > maxSize) break;
  }
  return ents.slice(0, n);
}

export function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

export function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
