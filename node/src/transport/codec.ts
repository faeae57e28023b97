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
import { lenSize, putScalar, putVarint32, scalarSize } from "../mvcc/kv_encode.js";

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
  if (m.snapshot !== undefined) return toBinary(MessageSchema, messageToPb(m));
  const b = writeMessage(m, 0);
  return new Uint8Array(b.buffer, b.byteOffset, b.length); // toBinary's type, not a Buffer

}

/** encodeMessage's bytes as a frame (length prefix and message in one buffer). */
export function encodeMessageFrame(m: Message): Buffer {
  if (m.snapshot !== undefined) return frame(toBinary(MessageSchema, messageToPb(m)));
  return writeMessage(m, FRAME_HEADER_BYTES);
}

/**
 * Decodes an etcdts.raft.Message. Byte fields (entry data, context, snapshot data)
 * are views into `b`: pass a buffer the message may own (FrameDecoder does).
 */
export function decodeMessage(b: Uint8Array): Message {
  return readMessage(b) ?? decodeMessageReflect(b);
}

/** decodeMessage through protobuf-es: messages with a snapshot, and anything readMessage does not expect. */
function decodeMessageReflect(b: Uint8Array): Message {
  let pb: PbMessage;
  try {
    pb = fromBinary(MessageSchema, b);
  } catch (err) {
    throw new CodecError(`malformed raft message: ${(err as Error).message}`);
  }
  return messageFromPb(pb);
}

// ---- Messages by hand ----
//
// Every raft message is encoded once and decoded once on its way, and
// protobuf-es's reflection (create, then toBinary walking the descriptors; the
// same in reverse) cost about 8 µs to encode and 3 µs to decode a one-entry
// MsgApp even in a warm loop, more in a member. These write and read the same
// bytes directly: writeMessage's output is toBinary's (codec.test.ts compares
// them on random messages), and readMessage gives what messageFromPb(fromBinary)
// gives. A message carrying a snapshot (MsgSnap: rare, and its payload streams
// separately) goes through protobuf-es both ways; so does anything on the wire
// readMessage does not expect (an unknown field, another wire type, a truncated
// field), for protobuf-es's handling and error.
//
//   Message  1 type enum, 2 to, 3 from, 4 term, 5 log_term, 6 index (uint64s),
//            7 entries (repeated Entry), 8 commit, 9 snapshot, 10 reject bool,
//            11 reject_hint, 12 context (optional bytes: written when present,
//            even empty)
//   Entry    1 term, 2 index, 3 type enum, 4 data bytes
// (proto3: zero values are not written, in field order.)

function entryBodySize(e: Entry): number {
  let n = scalarSize(e.term) + scalarSize(e.index);
  if (e.type !== "normal") n += 2;
  if (e.data.length > 0) n += 1 + lenSize(e.data.length) + e.data.length;
  return n;
}

/**
 * The bytes of a message without a snapshot, after `prefix` bytes; a prefix of
 * FRAME_HEADER_BYTES holds the frame's length.
 */
function writeMessage(m: Message, prefix: number): Buffer {
  const type = TYPE_TO_PB[m.type];
  let n = type === 0 ? 0 : 1 + lenSize(type);
  n += scalarSize(m.to) + scalarSize(m.from) + scalarSize(m.term) + scalarSize(m.logTerm) + scalarSize(m.index);
  const ents = m.entries;
  // One entry is the common case (a put); its size is kept rather than computed twice.
  const one = ents.length === 1 ? entryBodySize(ents[0]!) : 0;
  for (const e of ents) {
    const s = ents.length === 1 ? one : entryBodySize(e);
    n += 1 + lenSize(s) + s;
  }
  n += scalarSize(m.commit);
  if (m.reject) n += 2;
  n += scalarSize(m.rejectHint);
  const ctx = m.context;
  if (ctx !== undefined) n += 1 + lenSize(ctx.length) + ctx.length;
  if (n > MAX_U32) throw new CodecError(`frame of ${n} bytes is too large`);

  // Not from Node's shared pool: a frame queued for an unreachable peer would keep
  // a whole pool block alive, unseen by the queue's byte count.
  const b = Buffer.allocUnsafeSlow(prefix + n);
  if (prefix === FRAME_HEADER_BYTES) b.writeUInt32BE(n, 0);
  let at = prefix;
  if (type !== 0) {
    b[at++] = 0x08;
    at = putVarint32(b, at, type);
  }
  at = putScalar(b, at, 0x10, m.to);
  at = putScalar(b, at, 0x18, m.from);
  at = putScalar(b, at, 0x20, m.term);
  at = putScalar(b, at, 0x28, m.logTerm);
  at = putScalar(b, at, 0x30, m.index);
  for (const e of ents) {
    b[at++] = 0x3a;
    at = putVarint32(b, at, ents.length === 1 ? one : entryBodySize(e));
    at = putScalar(b, at, 0x08, e.term);
    at = putScalar(b, at, 0x10, e.index);
    if (e.type !== "normal") {
      b[at++] = 0x18;
      b[at++] = ENTRY_TYPE_TO_PB[e.type];
    }
    if (e.data.length > 0) {
      b[at++] = 0x22;
      at = putVarint32(b, at, e.data.length);
      b.set(e.data, at);
      at += e.data.length;
    }
  }
  at = putScalar(b, at, 0x40, m.commit);
  if (m.reject) {
    b[at++] = 0x50;
    b[at++] = 1;
  }
  at = putScalar(b, at, 0x58, m.rejectHint);
  if (ctx !== undefined) {
    b[at++] = 0x62;
    at = putVarint32(b, at, ctx.length);
    b.set(ctx, at);
    at += ctx.length;
  }
  if (at !== prefix + n) throw new Error(`encodeMessage: wrote ${at - prefix} bytes, sized ${n}`);
  return b;
}

/** A read position in a byte range; `bad` is set (and zeros returned) on a truncated or overlong varint. */
class Cursor {
  bad = false;
  constructor(
    readonly b: Uint8Array,
    public at: number,
    readonly end: number,
  ) {}

  /** A varint that fits a double exactly (tags, lengths, enums, bools). */
  small(): number {
    let v = 0;
    let shift = 0;
    let byte: number;
    do {
      if (this.at >= this.end || shift > 28) {
        this.bad = true;
        return 0;
      }
      byte = this.b[this.at++]!;
      v += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte >= 0x80);
    return v;
  }

  /** A uint64 varint, as two 32-bit halves. */
  u64(): bigint {
    let lo = 0;
    let hi = 0;
    let i = 0;
    let byte: number;
    do {
      if (this.at >= this.end || i >= 10) {
        this.bad = true;
        return 0n;
      }
      byte = this.b[this.at++]!;
      const bits = byte & 0x7f;
      const pos = 7 * i;
      if (pos < 28) lo |= bits << pos;
      else if (pos === 28) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (pos - 32);
      i++;
    } while (byte >= 0x80);
    lo >>>= 0;
    hi >>>= 0;
    return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** A length-delimited field's bytes, as a view. */
  bytes(): Uint8Array {
    const len = this.small();
    if (this.bad || len > this.end - this.at) {
      this.bad = true;
      return EMPTY_BYTES;
    }
    const v = this.b.subarray(this.at, this.at + len); // a Buffer's is a Buffer, as with fromBinary
    this.at += len;
    return v;
  }
}

const EMPTY_BYTES = new Uint8Array(0);

const PB_TYPE_TO_TYPE: (MessageType | undefined)[] = [];
for (const [k, v] of Object.entries(TYPE_TO_PB) as [MessageType, number][]) PB_TYPE_TO_TYPE[v] = k;

function readEntry(c: Cursor, end: number): Entry | undefined {
  let term = 0n;
  let index = 0n;
  let type: EntryType = "normal";
  let data: Uint8Array | undefined;
  const sub = new Cursor(c.b, c.at, end);
  while (sub.at < end) {
    const tag = sub.small();
    if (tag === 0x08) term = sub.u64();
    else if (tag === 0x10) index = sub.u64();
    else if (tag === 0x18) {
      const t = sub.small();
      if (t === 0) type = "normal";
      else if (t === 1) type = "confChange";
      else return undefined;
    } else if (tag === 0x22) data = sub.bytes();
    else return undefined;
    if (sub.bad) return undefined;
  }
  c.at = end;
  // An entry without data gets an array of its own, as fromBinary gives it.
  return { term, index, type, data: data ?? new Uint8Array(0) };
}

/**
 * The message in `b`, or undefined for anything but the fields above in their wire
 * types (and field 9). Exported for tests only: use decodeMessage.
 */
export function readMessage(b: Uint8Array): Message | undefined {
  let type: MessageType | undefined = "MsgHup";
  let to = 0n;
  let from = 0n;
  let term = 0n;
  let logTerm = 0n;
  let index = 0n;
  const entries: Entry[] = [];
  let commit = 0n;
  let reject = false;
  let rejectHint = 0n;
  let context: Uint8Array | undefined;
  const c = new Cursor(b, 0, b.length);
  while (c.at < c.end) {
    const tag = c.small();
    switch (tag) {
      case 0x08:
        type = PB_TYPE_TO_TYPE[c.small()];
        if (type === undefined) return undefined;
        break;
      case 0x10:
        to = c.u64();
        break;
      case 0x18:
        from = c.u64();
        break;
      case 0x20:
        term = c.u64();
        break;
      case 0x28:
        logTerm = c.u64();
        break;
      case 0x30:
        index = c.u64();
        break;
      case 0x3a: {
        const len = c.small();
        if (c.bad || len > c.end - c.at) return undefined;
        const e = readEntry(c, c.at + len);
        if (e === undefined) return undefined;
        entries.push(e);
        break;
      }
      case 0x40:
        commit = c.u64();
        break;
      case 0x50:
        reject = c.u64() !== 0n;
        break;
      case 0x58:
        rejectHint = c.u64();
        break;
      case 0x62:
        context = c.bytes();
        break;
      default:
        return undefined;
    }
    if (c.bad) return undefined;
  }
  const out: { -readonly [K in keyof Message]: Message[K] } = { type, to, from, term, logTerm, index, entries, commit, reject, rejectHint };
  if (context !== undefined) out.context = context;
  return out;
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
