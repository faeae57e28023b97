// RaftLogStore: the durable raft log as the driver uses it — the seam where the
// WAL (node/src/wal, being finished separately) plugs in. Its shape is the
// Wal's: save(hardState, entries) is durable when it resolves; saveSnapshot
// records a snapshot marker; releaseTo lets old records go.
//
// FileLogStore is a small stand-in behind that seam: one append-only file of
// checksummed records, fsynced on every save. It is durable (a save resolves
// only after fdatasync) and replay cuts a torn tail, but it never shrinks
// (releaseTo is a no-op) and re-reads the whole file at open. Swap it for the
// real Wal when that lands.
//
// Record: u32 length | u32 crc32(payload) | payload (JSON, bytes as base64).

import { open, mkdir, readFile, type FileHandle } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { Entry, HardState, SnapshotMetadata } from "../raft/index.js";

export interface LogMeta {
  readonly memberId: bigint;
  readonly clusterId: bigint;
}

export interface LogState {
  readonly hardState: HardState | undefined;
  /** The latest snapshot marker (index 0 when none). */
  readonly snapshot: SnapshotMetadata;
  /** Entries after the snapshot, in order, conflicting suffixes already replaced. */
  readonly entries: Entry[];
}

/** The contract the raft driver needs from durable log storage. */
export interface RaftLogStore {
  /**
   * Appends entries (replacing any suffix from entries[0].index on) and records
   * the hard state. Durable when the returned promise resolves.
   */
  save(hs: HardState | undefined, entries: readonly Entry[]): Promise<void>;
  /** Records that a snapshot at meta.index exists (entries up to it may be released). Durable on resolve. */
  saveSnapshot(meta: SnapshotMetadata, opts?: { replacesLog?: boolean }): Promise<void>;
  /** Records at or below `index` are no longer needed (the backend is fsynced past it). */
  releaseTo(index: bigint): Promise<void>;
  close(): Promise<void>;
}

const ZERO_SNAP: SnapshotMetadata = { index: 0n, term: 0n, confState: { voters: [], learners: [] } };
const FILE = "log";

type Rec =
  | { t: "meta"; member: string; cluster: string }
  | { t: "hs"; term: string; vote: string; commit: string }
  | { t: "ents"; e: { i: string; t: string; k: 0 | 1; d: string }[] }
  | { t: "snap"; i: string; term: string; v: string[]; l: string[]; r?: 1 };

export class FileLogStore implements RaftLogStore {
  private closed = false;
  private chain: Promise<void> = Promise.resolve();

  private constructor(private readonly fh: FileHandle) {}

  static exists(dir: string): boolean {
    return existsSync(join(dir, FILE));
  }

  static async create(dir: string, meta: LogMeta): Promise<FileLogStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const fh = await open(join(dir, FILE), "wx", 0o600);
    const s = new FileLogStore(fh);
    await s.write([{ t: "meta", member: meta.memberId.toString(), cluster: meta.clusterId.toString() }]);
    return s;
  }

  static async open(dir: string): Promise<{ store: FileLogStore; meta: LogMeta; state: LogState }> {
    const path = join(dir, FILE);
    const buf = await readFile(path);
    let off = 0;
    let meta: LogMeta | undefined;
    let hs: HardState | undefined;
    let snap = ZERO_SNAP;
    let ents: Entry[] = [];
    while (off + 8 <= buf.length) {
      const len = buf.readUInt32LE(off);
      const sum = buf.readUInt32LE(off + 4);
      if (off + 8 + len > buf.length) break; // torn tail
      const payload = buf.subarray(off + 8, off + 8 + len);
      if (crc32(payload) >>> 0 !== sum) {
        // A bad record followed by more data is corruption, not a torn write.
        if (off + 8 + len < buf.length) throw new Error(`raft log ${path}: corrupt record at offset ${off}`);
        break;
      }
      off += 8 + len;
      const r = JSON.parse(payload.toString("utf8")) as Rec;
      switch (r.t) {
        case "meta":
          meta = { memberId: BigInt(r.member), clusterId: BigInt(r.cluster) };
          break;
        case "hs":
          hs = { term: BigInt(r.term), vote: BigInt(r.vote), commit: BigInt(r.commit) };
          break;
        case "snap":
          snap = { index: BigInt(r.i), term: BigInt(r.term), confState: { voters: r.v.map(BigInt), learners: r.l.map(BigInt) } };
          // A snapshot from the leader replaces the whole log; a local one only compacts it.
          ents = r.r === 1 ? [] : ents.filter((e) => e.index > snap.index);
          break;
        case "ents": {
          const add: Entry[] = r.e.map((e) => ({
            index: BigInt(e.i),
            term: BigInt(e.t),
            type: e.k === 1 ? ("confChange" as const) : ("normal" as const),
            data: new Uint8Array(Buffer.from(e.d, "base64")),
          }));
          const first = add[0];
          if (first !== undefined) ents = ents.filter((e) => e.index < first.index).concat(add);
          break;
        }
      }
    }
    if (meta === undefined) throw new Error(`raft log ${path}: no metadata record`);
    const fh = await open(path, "r+");
    if (off < buf.length) await fh.truncate(off); // cut the torn tail before appending
    const store = new FileLogStore(fh);
    store.size = off;
    ents = ents.filter((e) => e.index > snap.index);
    return { store, meta, state: { hardState: hs, snapshot: snap, entries: ents } };
  }

  private size = 0;

  async save(hs: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    const recs: Rec[] = [];
    if (entries.length > 0) {
      recs.push({
        t: "ents",
        e: entries.map((e) => ({ i: e.index.toString(), t: e.term.toString(), k: e.type === "confChange" ? 1 : 0, d: Buffer.from(e.data).toString("base64") })),
      });
    }
    if (hs !== undefined) recs.push({ t: "hs", term: hs.term.toString(), vote: hs.vote.toString(), commit: hs.commit.toString() });
    if (recs.length > 0) await this.write(recs);
  }

  async saveSnapshot(m: SnapshotMetadata, opts: { replacesLog?: boolean } = {}): Promise<void> {
    const rec: Rec = { t: "snap", i: m.index.toString(), term: m.term.toString(), v: m.confState.voters.map(String), l: m.confState.learners.map(String) };
    if (opts.replacesLog === true) rec.r = 1;
    await this.write([rec]);
  }

  async releaseTo(_index: bigint): Promise<void> {
    // The stand-in keeps everything.
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain.catch(() => undefined);
    await this.fh.close();
  }

  private write(recs: Rec[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error("raft log: closed"));
    const parts: Buffer[] = [];
    for (const r of recs) {
      const p = Buffer.from(JSON.stringify(r), "utf8");
      const h = Buffer.allocUnsafe(8);
      h.writeUInt32LE(p.length, 0);
      h.writeUInt32LE(crc32(p) >>> 0, 4);
      parts.push(h, p);
    }
    const buf = Buffer.concat(parts);
    const p = this.chain.then(async () => {
      await this.fh.write(buf, 0, buf.length, this.size);
      this.size += buf.length;
      await this.fh.datasync();
    });
    this.chain = p.catch(() => undefined);
    return p;
  }
}
