// Record framing and payload codecs of the WAL. The format is specified in the
// doc comment at the top of wal.ts; this file implements it and nothing else.

import { crc32 } from "node:zlib";
import type { ConfState, Entry, HardState, SnapshotMetadata } from "../raft/types.js";

export const HEADER_SIZE = 16;
export const ALIGN = 8;
/** Largest payload of one record; a bigger length field is damage, not data. */
export const MAX_PAYLOAD = 512 * 1024 * 1024;
export const FORMAT_VERSION = 1;

export const RecordType = {
  metadata: 1,
  entry: 2,
  hardState: 3,
  snapshot: 4,
} as const;
export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType];

/** flags bit 0: the last record of its batch (the batch's commit point). */
export const FLAG_END = 1;
/** Snapshot-marker flags bit 0: the snapshot replaced the log (a restore), rather than compacting it. */
export const SNAP_REPLACES_LOG = 1;

export function frameSize(payloadLen: number): number {
  return (HEADER_SIZE + payloadLen + ALIGN - 1) & ~(ALIGN - 1);
}

/** One decoded, checksum-verified record. `payload` is a view into the segment buffer. */
export interface Frame {
  readonly type: RecordTypeCode;
  readonly flags: number;
  readonly batch: number;
  readonly payload: Buffer;
  /** File offset of the record's first byte. */
  readonly offset: number;
  /** File offset just past the record (including padding). */
  readonly end: number;
}

/** Scratch for the checksum's prefix: seq, offset and the length field, hashed in one call. */
const seedBuf = Buffer.alloc(20);

/**
 * The record checksum: CRC-32 (IEEE, zlib's) over, in order, the segment sequence
 * number and the record's file offset (both u64 LE, not stored), the length field
 * (bytes 0..4), header bytes 8..16, and the payload. Binding the position means a
 * record only validates where it was written.
 */
function recordCrc(seq: bigint, offset: number, buf: Buffer, at: number, payloadLen: number): number {
  seedBuf.writeBigUInt64LE(seq, 0);
  seedBuf.writeUInt32LE(offset >>> 0, 8);
  seedBuf.writeUInt32LE(Math.floor(offset / 0x100000000), 12);
  seedBuf[16] = buf[at]!;
  seedBuf[17] = buf[at + 1]!;
  seedBuf[18] = buf[at + 2]!;
  seedBuf[19] = buf[at + 3]!;
  return crc32(buf.subarray(at + 8, at + HEADER_SIZE + payloadLen), crc32(seedBuf));
}

/** A record to be written: its type and a writer that fills exactly `size` payload bytes. */
export interface RecordSpec {
  readonly type: RecordTypeCode;
  readonly size: number;
  write(buf: Buffer, at: number): void;
}

/**
 * Encodes one batch: the records in order, all carrying `batch`, the last one
 * flagged END. `fileOffset` is where the first byte will land in segment `seq`.
 */
export function encodeBatch(seq: bigint, fileOffset: number, batch: number, recs: readonly RecordSpec[]): Buffer {
  let total = 0;
  for (const r of recs) total += frameSize(r.size);
  const out = Buffer.alloc(total); // zero-filled: padding and reserved bytes are zero
  let at = 0;
  recs.forEach((r, i) => {
    out.writeUInt32LE(r.size, at);
    out[at + 8] = r.type;
    out[at + 9] = i === recs.length - 1 ? FLAG_END : 0;
    out.writeUInt32LE(batch, at + 12);
    r.write(out, at + HEADER_SIZE);
    out.writeUInt32LE(recordCrc(seq, fileOffset + at, out, at, r.size), at + 4);
    at += frameSize(r.size);
  });
  return out;
}

/**
 * Decodes the record at `off` of segment `seq` (whose content is `buf`, from file
 * offset 0). Returns the frame, or a reason why there is no valid record there.
 */
export function tryFrame(buf: Buffer, off: number, seq: bigint): Frame | string {
  if (buf.length - off < HEADER_SIZE) return `${buf.length - off} bytes left, too few for a record header`;
  const len = buf.readUInt32LE(off);
  const type = buf[off + 8]!;
  const flags = buf[off + 9]!;
  if (type < RecordType.metadata || type > RecordType.snapshot) return `invalid record type ${type}`;
  if ((flags & ~FLAG_END) !== 0) return `invalid record flags ${flags}`;
  if (buf.readUInt16LE(off + 10) !== 0) return "nonzero reserved header bytes";
  if (len > MAX_PAYLOAD) return `record length ${len} over the limit`;
  const end = off + frameSize(len);
  if (end > buf.length) return `record of ${len} bytes runs past the end of the file (${buf.length - off} bytes left)`;
  const stored = buf.readUInt32LE(off + 4);
  if (recordCrc(seq, off, buf, off, len) !== stored) return "checksum mismatch";
  for (let p = off + HEADER_SIZE + len; p < end; p++) if (buf[p] !== 0) return "nonzero padding";
  return {
    type: type as RecordTypeCode,
    flags,
    batch: buf.readUInt32LE(off + 12),
    payload: buf.subarray(off + HEADER_SIZE, off + HEADER_SIZE + len),
    offset: off,
    end,
  };
}

// ---- payloads ----

export interface MetadataRecord {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  /** Sequence number of the segment this record heads. */
  readonly seq: bigint;
  /** Last index and its term of the log when the segment was started. */
  readonly tailIndex: bigint;
  readonly tailTerm: bigint;
}

export function metadataSpec(m: MetadataRecord): RecordSpec {
  return {
    type: RecordType.metadata,
    size: 48,
    write(b, at) {
      b.writeUInt32LE(FORMAT_VERSION, at);
      b.writeBigUInt64LE(m.memberId, at + 8);
      b.writeBigUInt64LE(m.clusterId, at + 16);
      b.writeBigUInt64LE(m.seq, at + 24);
      b.writeBigUInt64LE(m.tailIndex, at + 32);
      b.writeBigUInt64LE(m.tailTerm, at + 40);
    },
  };
}

/** Payload decoders return a reason string when the (checksum-valid) payload is malformed. */
export function decodeMetadata(p: Buffer): MetadataRecord | string {
  if (p.length !== 48) return `metadata record of ${p.length} bytes`;
  const version = p.readUInt32LE(0);
  if (version !== FORMAT_VERSION) return `unsupported WAL format version ${version}`;
  return {
    memberId: p.readBigUInt64LE(8),
    clusterId: p.readBigUInt64LE(16),
    seq: p.readBigUInt64LE(24),
    tailIndex: p.readBigUInt64LE(32),
    tailTerm: p.readBigUInt64LE(40),
  };
}

const ENTRY_FIXED = 17;

export function entrySpec(e: Entry): RecordSpec {
  return {
    type: RecordType.entry,
    size: ENTRY_FIXED + e.data.length,
    write(b, at) {
      b.writeBigUInt64LE(e.term, at);
      b.writeBigUInt64LE(e.index, at + 8);
      b[at + 16] = e.type === "confChange" ? 1 : 0;
      b.set(e.data, at + ENTRY_FIXED);
    },
  };
}

export function entryPayloadSize(e: Entry): number {
  return ENTRY_FIXED + e.data.length;
}

/** Just the position of an entry, without copying its data. */
export function peekEntry(p: Buffer): { index: bigint; term: bigint } | string {
  if (p.length < ENTRY_FIXED) return `entry record of ${p.length} bytes`;
  if (p[16] !== 0 && p[16] !== 1) return `invalid entry type ${p[16]}`;
  return { term: p.readBigUInt64LE(0), index: p.readBigUInt64LE(8) };
}

/**
 * The entry. Its data is a view into the segment buffer, not a copy: copying every
 * entry costs an allocation each and dominated replay time. The buffer must be one
 * the caller owns and never reuses (replay reads each segment into a fresh buffer);
 * a live entry keeps its segment's buffer alive, which costs at most about one
 * segment of memory per segment still in the log.
 */
export function decodeEntry(p: Buffer): Entry {
  return {
    term: p.readBigUInt64LE(0),
    index: p.readBigUInt64LE(8),
    type: p[16] === 1 ? "confChange" : "normal",
    data: new Uint8Array(p.buffer, p.byteOffset + ENTRY_FIXED, p.length - ENTRY_FIXED),
  };
}

export function hardStateSpec(hs: HardState): RecordSpec {
  return {
    type: RecordType.hardState,
    size: 24,
    write(b, at) {
      b.writeBigUInt64LE(hs.term, at);
      b.writeBigUInt64LE(hs.vote, at + 8);
      b.writeBigUInt64LE(hs.commit, at + 16);
    },
  };
}

export function decodeHardState(p: Buffer): HardState | string {
  if (p.length !== 24) return `hard state record of ${p.length} bytes`;
  return { term: p.readBigUInt64LE(0), vote: p.readBigUInt64LE(8), commit: p.readBigUInt64LE(16) };
}

export interface MarkerRecord {
  readonly snapshot: SnapshotMetadata;
  readonly replacesLog: boolean;
}

/** Shared by the WAL's snapshot marker and the snapshot file header. */
export function confStateSize(cs: ConfState): number {
  return 8 * (cs.voters.length + cs.learners.length);
}

export function snapshotSpec(m: MarkerRecord): RecordSpec {
  const cs = m.snapshot.confState;
  return {
    type: RecordType.snapshot,
    size: 32 + confStateSize(cs),
    write(b, at) {
      b.writeBigUInt64LE(m.snapshot.index, at);
      b.writeBigUInt64LE(m.snapshot.term, at + 8);
      b.writeUInt32LE(m.replacesLog ? SNAP_REPLACES_LOG : 0, at + 16);
      b.writeUInt32LE(cs.voters.length, at + 20);
      b.writeUInt32LE(cs.learners.length, at + 24);
      let p = at + 32;
      for (const id of [...cs.voters, ...cs.learners]) {
        b.writeBigUInt64LE(id, p);
        p += 8;
      }
    },
  };
}

export function decodeSnapshot(p: Buffer): MarkerRecord | string {
  if (p.length < 32) return `snapshot marker of ${p.length} bytes`;
  const flags = p.readUInt32LE(16);
  if ((flags & ~SNAP_REPLACES_LOG) !== 0) return `invalid snapshot marker flags ${flags}`;
  const nv = p.readUInt32LE(20);
  const nl = p.readUInt32LE(24);
  if (p.readUInt32LE(28) !== 0) return "nonzero reserved snapshot marker bytes";
  if (p.length !== 32 + 8 * (nv + nl)) return `snapshot marker of ${p.length} bytes for ${nv} voters and ${nl} learners`;
  const voters: bigint[] = [];
  const learners: bigint[] = [];
  let at = 32;
  for (let i = 0; i < nv; i++, at += 8) voters.push(p.readBigUInt64LE(at));
  for (let i = 0; i < nl; i++, at += 8) learners.push(p.readBigUInt64LE(at));
  return {
    snapshot: { index: p.readBigUInt64LE(0), term: p.readBigUInt64LE(8), confState: { voters, learners } },
    replacesLog: (flags & SNAP_REPLACES_LOG) !== 0,
  };
}

export function confStateEqual(a: ConfState, b: ConfState): boolean {
  return (
    a.voters.length === b.voters.length &&
    a.learners.length === b.learners.length &&
    a.voters.every((v, i) => v === b.voters[i]) &&
    a.learners.every((v, i) => v === b.learners[i])
  );
}

export function snapshotMetadataEqual(a: SnapshotMetadata, b: SnapshotMetadata): boolean {
  return a.index === b.index && a.term === b.term && confStateEqual(a.confState, b.confState);
}

export function hex16(n: bigint): string {
  return n.toString(16).padStart(16, "0");
}
