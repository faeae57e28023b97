// Raft messages on the wire: the consensus core's TypeScript objects <-> the
// etcdts.raft protobuf (node/proto/etcdts/raft.proto), and the length-prefixed
// frames the peer streams carry.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ConfStateSchema,
  EntrySchema,
  EntryType as PbEntryType,
  HardStateSchema,
  MessageSchema,
  MessageType as PbMessageType,
  SnapshotMetadataSchema,
  SnapshotSchema,
  type ConfState as PbConfState,
  type Entry as PbEntry,
  type Message as PbMessage,
  type Snapshot as PbSnapshot,
} from "../../gen/etcdts/raft_pb.js";
import type { ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot } from "../raft/index.js";

// Explicit tables (not array positions) so that reordering the core's list can't
// silently change the wire numbers.
const TYPE_TO_PB: Record<MessageType, PbMessageType> = {
  MsgHup: PbMessageType.MSG_HUP,
  MsgBeat: PbMessageType.MSG_BEAT,
  MsgProp: PbMessageType.MSG_PROP,
  MsgApp: PbMessageType.MSG_APP,
  MsgAppResp: PbMessageType.MSG_APP_RESP,
  MsgVote: PbMessageType.MSG_VOTE,
  MsgVoteResp: PbMessageType.MSG_VOTE_RESP,
  MsgSnap: PbMessageType.MSG_SNAP,
  MsgHeartbeat: PbMessageType.MSG_HEARTBEAT,
  MsgHeartbeatResp: PbMessageType.MSG_HEARTBEAT_RESP,
  MsgUnreachable: PbMessageType.MSG_UNREACHABLE,
  MsgSnapStatus: PbMessageType.MSG_SNAP_STATUS,
  MsgCheckQuorum: PbMessageType.MSG_CHECK_QUORUM,
  MsgTransferLeader: PbMessageType.MSG_TRANSFER_LEADER,
  MsgTimeoutNow: PbMessageType.MSG_TIMEOUT_NOW,
  MsgReadIndex: PbMessageType.MSG_READ_INDEX,
  MsgReadIndexResp: PbMessageType.MSG_READ_INDEX_RESP,
  MsgPreVote: PbMessageType.MSG_PRE_VOTE,
  MsgPreVoteResp: PbMessageType.MSG_PRE_VOTE_RESP,
};
const PB_TO_TYPE = new Map<number, MessageType>(
  (Object.entries(TYPE_TO_PB) as [MessageType, PbMessageType][]).map(([k, v]) => [v, k]),
);

const ENTRY_TYPE_TO_PB: Record<EntryType, PbEntryType> = {
  normal: PbEntryType.ENTRY_NORMAL,
  confChange: PbEntryType.ENTRY_CONF_CHANGE,
};

export class CodecError extends Error {
  override name = "CodecError";
}

function entryToPb(e: Entry): PbEntry {
  return create(EntrySchema, { term: e.term, index: e.index, type: ENTRY_TYPE_TO_PB[e.type], data: e.data });
}

function entryFromPb(e: PbEntry): Entry {
  let type: EntryType;
  if (e.type === PbEntryType.ENTRY_NORMAL) type = "normal";
  else if (e.type === PbEntryType.ENTRY_CONF_CHANGE) type = "confChange";
  else throw new CodecError(`unknown entry type ${e.type as number}`);
  return { term: e.term, index: e.index, type, data: e.data };
}

function confStateToPb(cs: ConfState): PbConfState {
  return create(ConfStateSchema, { voters: [...cs.voters], learners: [...cs.learners] });
}

function confStateFromPb(cs: PbConfState | undefined): ConfState {
  return { voters: cs?.voters ?? [], learners: cs?.learners ?? [] };
}

function snapshotToPb(s: Snapshot): PbSnapshot {
  return create(SnapshotSchema, {
    data: s.data,
    metadata: create(SnapshotMetadataSchema, {
      index: s.metadata.index,
      term: s.metadata.term,
      confState: confStateToPb(s.metadata.confState),
    }),
  });
}

function snapshotFromPb(s: PbSnapshot): Snapshot {
  const md = s.metadata;
  return {
    data: s.data,
    metadata: { index: md?.index ?? 0n, term: md?.term ?? 0n, confState: confStateFromPb(md?.confState) },
  };
}

/** The protobuf form of a raft message (exported for tests and tools). */
export function messageToPb(m: Message): PbMessage {
  const pb = create(MessageSchema, {
    type: TYPE_TO_PB[m.type],
    to: m.to,
    from: m.from,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    entries: m.entries.map(entryToPb),
    commit: m.commit,
    reject: m.reject,
    rejectHint: m.rejectHint,
  });
  if (m.snapshot !== undefined) pb.snapshot = snapshotToPb(m.snapshot);
  if (m.context !== undefined) pb.context = m.context;
  return pb;
}

export function messageFromPb(pb: PbMessage): Message {
  const type = PB_TO_TYPE.get(pb.type);
  if (type === undefined) throw new CodecError(`unknown message type ${pb.type as number}`);
  const out: {
    -readonly [K in keyof Message]: Message[K];
  } = {
    type,
    to: pb.to,
    from: pb.from,
    term: pb.term,
    logTerm: pb.logTerm,
    index: pb.index,
    entries: pb.entries.map(entryFromPb),
    commit: pb.commit,
    reject: pb.reject,
    rejectHint: pb.rejectHint,
  };
  // Keys are absent (not undefined) when unset, exactly as raft's msg() builds them.
  if (pb.snapshot !== undefined) out.snapshot = snapshotFromPb(pb.snapshot);
  if (pb.context !== undefined) out.context = pb.context;
  return out;
}

/** Encodes one raft message as etcdts.raft.Message. */
export function encodeMessage(m: Message): Uint8Array {
  return toBinary(MessageSchema, messageToPb(m));
}

/**
 * Decodes an etcdts.raft.Message. Byte fields (entry data, context, snapshot data)
 * are views into `b`: pass a buffer the message may own (FrameDecoder does).
 */
export function decodeMessage(b: Uint8Array): Message {
  let pb: PbMessage;
  try {
    pb = fromBinary(MessageSchema, b);
  } catch (err) {
    throw new CodecError(`malformed raft message: ${(err as Error).message}`);
  }
  return messageFromPb(pb);
}

export function encodeHardState(hs: HardState): Uint8Array {
  return toBinary(HardStateSchema, create(HardStateSchema, { term: hs.term, vote: hs.vote, commit: hs.commit }));
}

export function decodeHardState(b: Uint8Array): HardState {
  const pb = fromBinary(HardStateSchema, b);
  return { term: pb.term, vote: pb.vote, commit: pb.commit };
}

export function encodeEntry(e: Entry): Uint8Array {
  return toBinary(EntrySchema, entryToPb(e));
}

export function decodeEntry(b: Uint8Array): Entry {
  return entryFromPb(fromBinary(EntrySchema, b));
}

export function encodeSnapshot(s: Snapshot): Uint8Array {
  return toBinary(SnapshotSchema, snapshotToPb(s));
}

export function decodeSnapshot(b: Uint8Array): Snapshot {
  return snapshotFromPb(fromBinary(SnapshotSchema, b));
}

export function encodeConfState(cs: ConfState): Uint8Array {
  return toBinary(ConfStateSchema, confStateToPb(cs));
}

export function decodeConfState(b: Uint8Array): ConfState {
  return confStateFromPb(fromBinary(ConfStateSchema, b));
}

// ---- Frames ----
//
// A frame is a 4-byte big-endian length followed by that many bytes. On a message
// stream each frame is one encoded Message; a zero-length frame is a keepalive
// (a real message is never empty: it always names its sender and target).

export const FRAME_HEADER_BYTES = 4;

/** Largest frame length the 4-byte prefix could describe. */
const MAX_U32 = 0xffffffff;

/** The frame for one payload: length prefix and payload in one buffer. */
export function frame(payload: Uint8Array): Buffer {
  if (payload.length > MAX_U32) throw new CodecError(`frame of ${payload.length} bytes is too large`);
  const out = Buffer.allocUnsafeSlow(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** A keepalive frame (length 0). */
export const KEEPALIVE_FRAME: Buffer = Buffer.alloc(FRAME_HEADER_BYTES);

/** Just the 4-byte length prefix (for writing a large payload after it without copying). */
export function frameHeader(length: number): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > MAX_U32) throw new CodecError(`bad frame length ${length}`);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  out.writeUInt32BE(length, 0);
  return out;
}

/**
 * Incremental frame parser for a byte stream. push() returns the complete frames
 * found so far. Each returned frame is a fresh buffer of its own (never a view into
 * a larger read buffer or Node's shared pool), so a decoded message that lives on
 * in the raft log keeps only its own bytes alive.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Length of the frame being assembled, once its prefix has arrived; -1 before. */
  private want = -1;

  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes received but not yet returned as a frame. */
  get buffered(): number {
    return this.pendingBytes;
  }

  push(chunk: Buffer): Uint8Array[] {
    if (chunk.length === 0) return [];
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const out: Uint8Array[] = [];
    for (;;) {
      if (this.want < 0) {
        if (this.pendingBytes < FRAME_HEADER_BYTES) break;
        const len = this.peekLength();
        if (len > this.maxFrameBytes) {
          throw new CodecError(`frame of ${len} bytes exceeds the limit of ${this.maxFrameBytes}`);
        }
        this.consume(FRAME_HEADER_BYTES, undefined);
        this.want = len;
      }
      if (this.pendingBytes < this.want) break;
      const body = new Uint8Array(this.want);
      this.consume(this.want, body);
      this.want = -1;
      out.push(body);
    }
    return out;
  }

  private peekLength(): number {
    const first = this.pending[0]!;
    if (first.length >= FRAME_HEADER_BYTES) return first.readUInt32BE(0);
    const hdr = Buffer.alloc(FRAME_HEADER_BYTES);
    let got = 0;
    for (const b of this.pending) {
      const n = Math.min(b.length, FRAME_HEADER_BYTES - got);
      b.copy(hdr, got, 0, n);
      got += n;
      if (got === FRAME_HEADER_BYTES) break;
    }
    return hdr.readUInt32BE(0);
  }

  /** Removes n bytes from the front, copying them into `into` when given. */
  private consume(n: number, into: Uint8Array | undefined): void {
    let off = 0;
    let i = 0;
    while (n > 0) {
      const first = this.pending[i]!;
      const take = Math.min(first.length, n);
      if (into !== undefined) into.set(first.subarray(0, take), off);
      off += take;
      n -= take;
      this.pendingBytes -= take;
      if (take === first.length) i++;
      else this.pending[i] = first.subarray(take);
    }
    // One splice, not a shift per piece: a large frame may arrive in many small reads.
    if (i > 0) this.pending.splice(0, i);
  }
}
