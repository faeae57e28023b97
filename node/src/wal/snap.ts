// The snapshotter: raft's snapshot record (metadata plus the small opaque `data`
// the application hands raft), one file per snapshot. The application's database
// is not in here; it is the state machine's own durable backend.
//
// File `<term>-<index>.snap` (16 hex digits each), all integers LE:
//
//     0  8  magic "ETSSNAP\0"
//     8  4  CRC-32 (IEEE) of bytes 12..end
//    12  4  format version (1)
//    16  4  metadata length M
//    20  4  zero
//    24  8  data length D
//    32  M  metadata, encoded as the WAL's snapshot marker payload (flags zero)
//  32+M  D  data
//
// save() is atomic: the file is written as `<name>.tmp`, synced, renamed and the
// directory synced, so a crash leaves either no file or a complete one. A file that
// fails its checks anyway (disk damage) is renamed to `<name>.broken` by load(),
// which then falls back to the next newest snapshot, as etcd does.

import { posix } from "node:path";
import { crc32 } from "node:zlib";
import type { Snapshot, SnapshotMetadata } from "../raft/types.js";
import { SnapCorruptError } from "./errors.js";
import { nodeFs, type Fs } from "./fs.js";
import { decodeSnapshot, hex16, snapshotMetadataEqual, snapshotSpec } from "./record.js";
import type { WalLogger } from "./wal.js";

const MAGIC = Buffer.from("ETSSNAP\0", "latin1");
const HEADER = 32;
const VERSION = 1;
const SNAP_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export interface SnapshotterOptions {
  fs?: Fs;
  logger?: WalLogger;
}

export function snapName(term: bigint, index: bigint): string {
  return `${hex16(term)}-${hex16(index)}.snap`;
}

export function encodeSnapFile(s: Snapshot): Buffer {
  const spec = snapshotSpec({ snapshot: s.metadata, replacesLog: false });
  const out = Buffer.alloc(HEADER + spec.size + s.data.length);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(VERSION, 12);
  out.writeUInt32LE(spec.size, 16);
  out.writeBigUInt64LE(BigInt(s.data.length), 24);
  spec.write(out, HEADER);
  out.set(s.data, HEADER + spec.size);
  out.writeUInt32LE(crc32(out.subarray(12)), 8);
  return out;
}

/** Decodes a snapshot file, or returns why it is not one. */
export function decodeSnapFile(b: Buffer): Snapshot | string {
  if (b.length < HEADER) return `${b.length} bytes, too short for the header`;
  if (!b.subarray(0, 8).equals(MAGIC)) return "bad magic";
  if (crc32(b.subarray(12)) !== b.readUInt32LE(8)) return "checksum mismatch";
  const version = b.readUInt32LE(12);
  if (version !== VERSION) return `unsupported snapshot format version ${version}`;
  const m = b.readUInt32LE(16);
  const d = b.readBigUInt64LE(24);
  if (b.readUInt32LE(20) !== 0) return "nonzero reserved header bytes";
  if (BigInt(HEADER + m) + d !== BigInt(b.length)) return `lengths ${m} + ${d} do not match the file size ${b.length}`;
  const meta = decodeSnapshot(b.subarray(HEADER, HEADER + m));
  if (typeof meta === "string") return meta;
  if (meta.replacesLog) return "snapshot metadata with marker flags set";
  return { metadata: meta.snapshot, data: new Uint8Array(b.subarray(HEADER + m)) };
}

function parseName(n: string): { term: bigint; index: bigint } | undefined {
  const m = SNAP_RE.exec(n);
  return m === null ? undefined : { term: BigInt("0x" + m[1]!), index: BigInt("0x" + m[2]!) };
}

export class Snapshotter {
  private readonly fs: Fs;
  private readonly log: WalLogger | undefined;
  /** Whether this instance has made the directory's own name durable. */
  private dirReady = false;

  constructor(
    private readonly dir: string,
    opts: SnapshotterOptions = {},
  ) {
    this.fs = opts.fs ?? nodeFs;
    this.log = opts.logger;
  }

  /** Writes `<term>-<index>.snap` durably and atomically. */
  async save(s: Snapshot): Promise<void> {
    if (s.metadata.index === 0n) throw new RangeError("snap: refusing to save an empty snapshot (index 0)");
    const name = snapName(s.metadata.term, s.metadata.index);
    const path = posix.join(this.dir, name);
    const tmp = `${path}.tmp`;
    if (!this.dirReady) {
      // The directory may be new: its name lives in the parent, which must be synced too.
      await this.fs.mkdirp(this.dir);
      await this.fs.syncDir(posix.dirname(this.dir));
      this.dirReady = true;
    }
    const f = await this.fs.create(tmp);
    try {
      await f.append(encodeSnapFile(s));
      await f.sync();
    } finally {
      await f.close();
    }
    await this.fs.rename(tmp, path);
    await this.fs.syncDir(this.dir);
  }

  /**
   * The newest valid snapshot (highest index), or undefined if there is none.
   * With `acceptable`, only a snapshot whose metadata equals one of them counts (the
   * caller passes the WAL's snapshot markers, so the snapshot matches the log). A
   * corrupt file is renamed to `.broken` and the next older one tried; if every
   * candidate was corrupt, throws SnapCorruptError for the newest.
   */
  async load(acceptable?: readonly SnapshotMetadata[]): Promise<Snapshot | undefined> {
    const names = await this.fs.readdir(this.dir);
    const tmps = names.filter((n) => n.endsWith(".snap.tmp"));
    for (const n of tmps) await this.fs.unlink(posix.join(this.dir, n));
    const cands = names
      .map((n) => ({ n, p: parseName(n) }))
      .filter((c): c is { n: string; p: { term: bigint; index: bigint } } => c.p !== undefined)
      .filter((c) => acceptable === undefined || acceptable.some((a) => a.index === c.p.index && a.term === c.p.term))
      .sort((a, b) => (a.p.index !== b.p.index ? (a.p.index > b.p.index ? -1 : 1) : a.p.term > b.p.term ? -1 : a.p.term < b.p.term ? 1 : 0));
    let firstBroken: SnapCorruptError | undefined;
    let renamed = tmps.length > 0;
    try {
      for (const c of cands) {
        const path = posix.join(this.dir, c.n);
        const raw = await this.fs.readFile(path);
        const s = decodeSnapFile(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
        let why = typeof s === "string" ? s : undefined;
        if (typeof s !== "string") {
          if (s.metadata.index !== c.p.index || s.metadata.term !== c.p.term) {
            why = `holds snapshot ${s.metadata.term}/${s.metadata.index}, unlike its name`;
          } else if (acceptable !== undefined && !acceptable.some((a) => snapshotMetadataEqual(a, s.metadata))) {
            continue; // same index and term as a marker but another membership: not the one the WAL means
          } else {
            return s;
          }
        }
        const err = new SnapCorruptError(path, why ?? "invalid");
        firstBroken ??= err;
        this.log?.warn({ file: path, reason: err.reason }, "snapshot file is corrupt; renaming it to .broken and trying an older one");
        await this.fs.rename(path, `${path}.broken`);
        renamed = true;
      }
    } finally {
      if (renamed) await this.fs.syncDir(this.dir);
    }
    if (firstBroken !== undefined) throw firstBroken;
    return undefined;
  }

  /** Deletes the snapshot files with an index below `index`. */
  async releaseBefore(index: bigint): Promise<void> {
    let removed = false;
    for (const n of await this.fs.readdir(this.dir)) {
      const p = parseName(n);
      if (p === undefined || p.index >= index) continue;
      await this.fs.unlink(posix.join(this.dir, n));
      removed = true;
    }
    if (removed) await this.fs.syncDir(this.dir);
  }
}
