/**
 * The write-ahead log: raft's hard state, entries and snapshot markers, made
 * durable before the member acts on them.
 *
 * ## On-disk format (version 1)
 *
 * A WAL is a directory of segment files named `<seq>-<tail>.wal`, both 16 lower-case
 * hex digits: `seq` numbers the segments 0, 1, 2, ... without gaps (released
 * segments leave a gap only at the front), `tail` is the log's last index when the
 * segment was started. Nothing else in the directory is read; `*.wal.tmp` files are
 * segments whose creation did not finish, and open() deletes them.
 *
 * A segment is a sequence of records, each starting at a multiple of 8 bytes:
 *
 *     0  u32 LE  payload length L (at most 512 MiB)
 *     4  u32 LE  CRC-32 (IEEE) of: the segment's seq (u64 LE), the record's file
 *                offset (u64 LE), bytes 0..4, bytes 8..16 and the payload
 *     8  u8      type: 1 metadata, 2 entry, 3 hard state, 4 snapshot marker
 *     9  u8      flags: bit 0 = END, the last record of its batch
 *    10  u16     reserved, zero
 *    12  u32 LE  batch number: 0 for the segment's header, then 1, 2, ... in file order
 *    16  L bytes payload, then zero padding to the next multiple of 8
 *
 * The checksum covers the record's position, so a record is only valid where it was
 * written: stale or misplaced bytes never validate.
 *
 * Records form batches: consecutive records with one batch number, the last one
 * flagged END. A batch is the unit of atomicity: replay applies a batch only when
 * its END record is intact, so a crash never leaves half of one. Every append to a
 * segment is exactly one batch followed by one fdatasync; the writer joins all
 * calls that arrive while the previous batch is being written (group commit).
 *
 * Payloads (all integers LE):
 * - metadata (48 bytes): u32 format version (1), u32 zero, u64 member id, u64 cluster
 *   id, u64 seq (equal to the file's), u64 tail index, u64 tail term.
 * - entry (17 + n bytes): u64 term, u64 index, u8 kind (0 normal, 1 conf change), data.
 * - hard state (24 bytes): u64 term, u64 vote, u64 commit.
 * - snapshot marker (32 + 8(v + l) bytes): u64 index, u64 term, u32 flags (bit 0: the
 *   snapshot replaced the log rather than compacting it), u32 v, u32 l, u32 zero,
 *   then v voter ids and l learner ids (u64 each).
 *
 * Batch 0 of every segment is its header: a metadata record, then the latest
 * snapshot marker (if any was ever written) and the latest hard state (if not
 * empty). So any segment restates everything replay needs to start from it, and the
 * segments before it can be deleted once a snapshot covers them.
 *
 * Log rules (log_state.ts): an entry at index i replaces entries >= i (raft's
 * conflict truncation) and must not leave a gap; a marker compacts the log up to its
 * index, or replaces the log when the log has no entry with its index and term.
 *
 * ## Durability
 *
 * save() and saveSnapshot() resolve only after their batch is fdatasync'ed, with one
 * exception, raft's "must sync" rule (etcd's wal.Save does the same): a save that
 * brings no entries and changes only the hard state's commit index writes nothing
 * and resolves at once. The commit index is volatile in raft (a restarted member
 * learns it again from the leader; entries it had applied past the replayed commit
 * are skipped by the state machine's consistent index), so it need not cost an
 * fsync; the newest hard state rides along with the next batch that is written.
 * Every batch that is written is synced before the next one starts, which keeps
 * the recovery rule below true. A new
 * segment is written to `<name>.tmp`, synced, renamed and the directory synced
 * before any batch goes into it. create() builds the first segment in `<dir>.tmp`
 * and renames the directory into place. A failed write, fsync, rename or unlink
 * leaves the disk in an unknown state (after a failed fsync the kernel may drop the
 * dirty pages and report success next time), so the instance fails for good: every
 * later call throws WalFailedError, and the member must restart and replay.
 *
 * ## Recovery (open)
 *
 * Only one kind of damage is normal after a crash: the last segment ends in a torn
 * batch (cut short, zero-filled or garbled) that was being written when the power
 * went. open() cuts the last segment after its last complete batch (truncate +
 * fsync) and reports it in `repairedTail`. Because a batch is written only after
 * the previous one was synced, a torn tail holds pieces of one batch only: if any
 * valid record of another batch follows the damage, the damage is in data that was
 * once durable and open() refuses with WalCorruptError. It also refuses damage in a
 * sealed segment, a missing segment, records out of order, a header that does not
 * restate the log, and a log that does not reach back to its snapshot. Damage to the
 * very last batch cannot be told from a torn write and is cut like one.
 */

import { posix } from "node:path";
import { EMPTY_HARD_STATE, hardStateEqual, isEmptyHardState, type Entry, type HardState, type SnapshotMetadata } from "../raft/types.js";
import { WalClosedError, WalCorruptError, WalError, WalExistsError, WalFailedError, WalMetadataMismatchError, WalNotFoundError } from "./errors.js";
import { nodeFs, type Fs, type FsFile } from "./fs.js";
import { LogState } from "./log_state.js";
import {
  decodeEntry,
  decodeHardState,
  decodeMetadata,
  decodeSnapshot,
  encodeBatch,
  entrySpec,
  FLAG_END,
  hardStateSpec,
  hex16,
  metadataSpec,
  peekEntry,
  RecordType,
  snapshotSpec,
  tryFrame,
  type Frame,
  type MetadataRecord,
  type RecordSpec,
} from "./record.js";

export interface WalMetadata {
  readonly memberId: bigint;
  readonly clusterId: bigint;
}

export interface WalLogger {
  warn(o: object, m: string): void;
  info(o: object, m: string): void;
}

export interface WalOptions {
  fs?: Fs;
  /** A segment is sealed and a new one started once it reaches this size. Default 64 MiB. */
  segmentBytes?: number;
  logger?: WalLogger;
}

export interface WalState {
  hardState: HardState;
  snapshot: SnapshotMetadata;
  /** The entries after snapshot.index, in order. */
  entries: Entry[];
  /** Set when open() cut a torn batch off the end of the last segment. */
  repairedTail?: { file: string; offset: number; droppedBytes: number };
}

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

const SEGMENT_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;
const MAX_BATCH = 0xffffffff;

export function segmentName(seq: bigint, tail: bigint): string {
  return `${hex16(seq)}-${hex16(tail)}.wal`;
}

function parseSegmentName(name: string): { seq: bigint; tail: bigint } | undefined {
  const m = SEGMENT_RE.exec(name);
  if (m === null) return undefined;
  return { seq: BigInt("0x" + m[1]!), tail: BigInt("0x" + m[2]!) };
}

/** `a/b/` and `a//b` name the same directory as `a/b`; the temp name `<dir>.tmp` needs the plain form. */
function normDir(dir: string): string {
  const d = posix.normalize(dir);
  return d.length > 1 && d.endsWith("/") ? d.slice(0, -1) : d;
}

interface Segment {
  readonly seq: bigint;
  readonly tail: bigint;
  readonly path: string;
}

/** One call waiting for its batch: what it adds, and how to tell it the outcome. */
interface Pending {
  readonly marker: { meta: SnapshotMetadata; replacesLog: boolean } | undefined;
  readonly entries: readonly Entry[];
  readonly hs: HardState | undefined;
  /** A commit-only hard state: written only if its batch is written anyway. */
  readonly lazy?: boolean;
  resolve(): void;
  reject(err: unknown): void;
}

const noopLogger: WalLogger = { warn() {}, info() {} };

function headerSpecs(meta: MetadataRecord, snap: SnapshotMetadata, hs: HardState): RecordSpec[] {
  const recs = [metadataSpec(meta)];
  if (snap.index > 0n) recs.push(snapshotSpec({ snapshot: snap, replacesLog: false }));
  if (!isEmptyHardState(hs)) recs.push(hardStateSpec(hs));
  return recs;
}

export class Wal {
  private readonly fs: Fs;
  private readonly segmentBytes: number;
  private readonly log: WalLogger;
  /** The log including calls not yet durable: what new calls are checked against. */
  private readonly state: LogState;
  /** Live segments, oldest first; the last one is open for appending. */
  private readonly segments: Segment[];
  private file: FsFile;
  private offset: number;
  private nextBatch: number;
  /** The log as of the batches already handed to the disk: what a new segment's header restates. */
  private written: { last: bigint; lastTerm: bigint; snap: SnapshotMetadata; hs: HardState };
  /** Index of the latest durable snapshot marker (what releaseTo may rely on). */
  private durableSnapIndex: bigint;
  private queue: Pending[] = [];
  /** Observes each batch's fdatasync, in seconds (etcd_disk_wal_fsync_duration_seconds). */
  onFsync: ((seconds: number) => void) | undefined;
  /** A commit-only hard state not written yet (see Durability): the next written batch carries it. */
  private unwrittenHs: HardState | undefined;
  private flushing: Promise<void> | undefined;
  private releasing: Promise<void> = Promise.resolve();
  private failure: WalFailedError | undefined;
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly meta: WalMetadata,
    init: { fs: Fs; segmentBytes: number; log: WalLogger; state: LogState; segments: Segment[]; file: FsFile; offset: number; nextBatch: number },
  ) {
    this.fs = init.fs;
    this.segmentBytes = init.segmentBytes;
    this.log = init.log;
    this.state = init.state;
    this.segments = init.segments;
    this.file = init.file;
    this.offset = init.offset;
    this.nextBatch = init.nextBatch;
    const s = init.state;
    this.written = { last: s.lastIndex, lastTerm: s.lastTerm() ?? s.snapshot.term, snap: s.snapshot, hs: s.hardState };
    this.durableSnapIndex = s.snapshot.index;
  }

  /** Whether `dir` holds a WAL (at least one segment file). */
  static async exists(dir: string, fs: Fs = nodeFs): Promise<boolean> {
    return (await fs.readdir(dir)).some((n) => SEGMENT_RE.test(n));
  }

  /**
   * Creates a WAL in `dir` (which must be absent or empty) holding only its header.
   * Atomic: the segment is written in `<dir>.tmp`, synced, and the directory renamed
   * into place, then the parent synced (and the grandparent, in case mkdirp just made
   * the parent).
   */
  static async create(dirIn: string, meta: WalMetadata, opts: WalOptions = {}): Promise<Wal> {
    const fs = opts.fs ?? nodeFs;
    const dir = normDir(dirIn);
    const parent = posix.dirname(dir);
    const base = posix.basename(dir);
    if (await Wal.exists(dir, fs)) throw new WalExistsError(dir);
    await fs.mkdirp(parent);
    if (parent !== posix.dirname(parent)) await fs.syncDir(posix.dirname(parent));
    const dirExists = (await fs.readdir(parent)).includes(base);
    if (dirExists && (await fs.readdir(dir)).length > 0) throw new WalError(`wal: ${dir} is not empty and holds no WAL; refusing to create one there`);
    const tmp = `${dir}.tmp`;
    await removeTree(fs, tmp);
    await fs.mkdirp(tmp);
    const name = segmentName(0n, 0n);
    const file = await fs.create(posix.join(tmp, name));
    const header = encodeBatch(0n, 0, 0, headerSpecs({ ...meta, seq: 0n, tailIndex: 0n, tailTerm: 0n }, { index: 0n, term: 0n, confState: { voters: [], learners: [] } }, EMPTY_HARD_STATE));
    await file.append(header);
    await file.sync();
    await fs.syncDir(tmp);
    if (dirExists) await fs.rmdir(dir);
    await fs.rename(tmp, dir);
    await fs.syncDir(parent);
    const log = opts.logger ?? noopLogger;
    log.info({ dir, memberId: hex16(meta.memberId), clusterId: hex16(meta.clusterId) }, "created write-ahead log");
    return new Wal(dir, { memberId: meta.memberId, clusterId: meta.clusterId }, {
      fs,
      segmentBytes: opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES,
      log,
      state: new LogState(false),
      segments: [{ seq: 0n, tail: 0n, path: posix.join(dir, name) }],
      file,
      offset: header.length,
      nextBatch: 1,
    });
  }

  /**
   * Replays the WAL in `dir`. `expect`, when given, must match the stored member and
   * cluster ids (else WalMetadataMismatchError). Repairs a torn tail (see the top of
   * this file) and throws WalCorruptError for anything else invalid.
   */
  static async open(dirIn: string, expect: WalMetadata | undefined, opts: WalOptions = {}): Promise<{ wal: Wal; meta: WalMetadata; state: WalState }> {
    const fs = opts.fs ?? nodeFs;
    const dir = normDir(dirIn);
    const log = opts.logger ?? noopLogger;
    const names = await fs.readdir(dir);
    const segments: Segment[] = [];
    for (const n of names) {
      const p = parseSegmentName(n);
      if (p !== undefined) segments.push({ ...p, path: posix.join(dir, n) });
    }
    if (segments.length === 0) throw new WalNotFoundError(dir);
    segments.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
    for (let i = 1; i < segments.length; i++) {
      const s = segments[i]!;
      const prev = segments[i - 1]!;
      if (s.seq === prev.seq) throw new WalCorruptError(s.path, 0, `two segments with sequence number ${s.seq}`);
      if (s.seq !== prev.seq + 1n) throw new WalCorruptError(s.path, 0, `segment ${prev.seq + 1n} is missing before segment ${s.seq}`);
    }
    const leftovers = names.filter((n) => n.endsWith(".wal.tmp"));
    for (const n of leftovers) await fs.unlink(posix.join(dir, n));
    if (leftovers.length > 0) await fs.syncDir(dir);

    const state = new LogState(true);
    let meta: WalMetadata | undefined;
    let tail: { end: number; nextBatch: number; dropped: number } | undefined;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i]!;
      const raw = await fs.readFile(seg.path);
      const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
      const r = replaySegment(seg, buf, state, i === 0, i === segments.length - 1, meta);
      if (meta === undefined) {
        meta = r.meta;
        if (expect !== undefined && (expect.memberId !== meta.memberId || expect.clusterId !== meta.clusterId)) {
          throw new WalMetadataMismatchError(expect, meta);
        }
      }
      tail = { end: r.end, nextBatch: r.nextBatch, dropped: buf.length - r.end };
    }
    if (meta === undefined || tail === undefined) throw new WalNotFoundError(dir);
    const first = segments[0]!;
    if (state.lo !== state.snapshot.index) {
      throw new WalCorruptError(first.path, 0, `entries ${state.snapshot.index + 1n}..${state.lo} are missing: the log starts after released segments that no snapshot marker covers`);
    }
    const last = segments[segments.length - 1]!;
    let repairedTail: WalState["repairedTail"];
    if (tail.dropped > 0) {
      await fs.truncate(last.path, tail.end);
      repairedTail = { file: last.path, offset: tail.end, droppedBytes: tail.dropped };
      log.warn(repairedTail, "cut a torn batch off the end of the write-ahead log");
    }
    const file = await fs.openAppend(last.path);
    if (tail.dropped > 0) await file.sync();
    const entries = state.entries ?? [];
    state.entries = undefined; // the writer only needs the terms
    const wal = new Wal(dir, meta, {
      fs,
      segmentBytes: opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES,
      log,
      state,
      segments,
      file,
      offset: tail.end,
      nextBatch: tail.nextBatch,
    });
    const out: WalState = { hardState: state.hardState, snapshot: state.snapshot, entries };
    if (repairedTail !== undefined) out.repairedTail = repairedTail;
    return { wal, meta: { memberId: meta.memberId, clusterId: meta.clusterId }, state: out };
  }

  /** The last index of the log, counting calls that have not resolved yet. */
  lastIndex(): bigint {
    return this.state.lastIndex;
  }

  /**
   * Appends `entries` (replacing any entries at or after the first one's index) and
   * records `hs`; resolves once durable — except that a save of no entries whose hard
   * state differs from the last one only in `commit` resolves at once without writing
   * (raft's must-sync rule; see Durability at the top). Throws RangeError (and writes nothing) if
   * the entries do not fit the log: a gap, at or below the snapshot, a term below its
   * predecessor's, or a hard state whose term or commit goes backwards.
   */
  save(hs: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    const bad = this.unusable();
    if (bad !== undefined) return Promise.reject(bad);
    const h = hs === undefined || isEmptyHardState(hs) ? undefined : hs;
    try {
      this.state.validateSave(h ?? EMPTY_HARD_STATE, entries, undefined);
    } catch (err) {
      return Promise.reject(err);
    }
    for (const e of entries) this.mustApply(this.state.appendEntry(e.index, e.term, undefined));
    const prev = this.state.hardState;
    const changed = h !== undefined && !hardStateEqual(h, prev);
    if (changed) this.state.hardState = h;
    if (entries.length === 0 && (!changed || (h.term === prev.term && h.vote === prev.vote))) {
      // Nothing that must be durable: no entries, and term and vote unchanged.
      if (!changed) return this.enqueue(undefined, [], undefined); // a barrier, as before
      if (this.flushing === undefined) {
        this.unwrittenHs = h;
        return Promise.resolve();
      }
      // Batches are on their way: stay in call order behind them (see writeGroup).
      return this.enqueue(undefined, [], h, true);
    }
    return this.enqueue(undefined, entries, changed ? h : undefined);
  }

  /**
   * Records that the state machine has a snapshot at `meta.index`: the log now starts
   * after it. If the log holds meta.index with meta.term, earlier entries are
   * compacted; otherwise the log is replaced (a snapshot received from the leader).
   * Resolves once durable.
   */
  saveSnapshot(meta: SnapshotMetadata): Promise<void> {
    const bad = this.unusable();
    if (bad !== undefined) return Promise.reject(bad);
    let replacesLog: boolean;
    try {
      replacesLog = this.state.validateSave(EMPTY_HARD_STATE, [], meta).replacesLog;
    } catch (err) {
      return Promise.reject(err);
    }
    this.mustApply(this.state.applyMarker(meta, replacesLog));
    return this.enqueue({ meta, replacesLog }, [], undefined);
  }

  /**
   * Deletes the oldest sealed segments that replay no longer needs: a segment goes
   * when every live entry in it is <= `index` and a durable snapshot marker covers
   * them (i.e. the next segment's tail index is <= both). The open segment stays.
   */
  releaseTo(index: bigint): Promise<void> {
    const bad = this.unusable();
    if (bad !== undefined) return Promise.reject(bad);
    const run = this.releasing.then(() => this.release(index));
    this.releasing = run.catch(() => undefined);
    return run;
  }

  /** Waits for pending calls, then closes the segment. Later calls throw WalClosedError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flushing?.catch(() => undefined);
    await this.releasing;
    await this.file.close();
  }

  // ---- internals ----

  private unusable(): Error | undefined {
    if (this.closed) return new WalClosedError();
    return this.failure;
  }

  private mustApply(reason: string | undefined): void {
    if (reason !== undefined) throw new Error(`wal: internal error: a validated change was refused: ${reason}`);
  }

  private fail(err: unknown): WalFailedError {
    if (this.failure === undefined) {
      this.failure = err instanceof WalFailedError ? err : new WalFailedError(err);
      this.log.warn({ dir: this.dir, err: String(err) }, "write-ahead log failed; restart the member");
    }
    return this.failure;
  }

  private enqueue(marker: Pending["marker"], entries: readonly Entry[], hs: HardState | undefined, lazy = false): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ marker, entries, hs, lazy, resolve, reject });
      // Start on a microtask, so that calls made in the same tick share the batch.
      if (this.flushing === undefined) this.flushing = Promise.resolve().then(() => this.flush());
    });
  }

  /** Writes queued calls, one batch and one fdatasync per round, until the queue is empty. */
  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue;
        this.queue = [];
        try {
          if (this.failure !== undefined) throw this.failure;
          await this.writeGroup(group);
        } catch (err) {
          const f = this.fail(err);
          for (const p of group) p.reject(f);
          continue;
        }
        for (const p of group) p.resolve();
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async writeGroup(group: readonly Pending[]): Promise<void> {
    const recs: RecordSpec[] = [];
    const w = this.written;
    let { last, lastTerm, snap, hs } = w;
    // The commit-only hard state left unwritten before this group (older than all of it).
    const carried = this.unwrittenHs;
    this.unwrittenHs = undefined;
    // Commit-only hard states after the group's last call that must be durable are not
    // written either: the newest waits for the next written batch, as in save().
    // (unwrittenHs is set only here or in save() while no batch is in flight, so it is
    // always older than any queued call.)
    let lastDurable = -1;
    group.forEach((p, i) => {
      if (p.marker !== undefined || p.entries.length > 0 || (p.hs !== undefined && !p.lazy)) lastDurable = i;
    });
    for (let i = lastDurable + 1; i < group.length; i++) if (group[i]!.hs !== undefined) this.unwrittenHs = group[i]!.hs;
    if (lastDurable < 0) {
      this.unwrittenHs ??= carried;
      return;
    }
    const calls = group.slice(0, lastDurable + 1);
    if (carried !== undefined) {
      // The commit the log skipped writing goes first: it is older than every call of
      // this batch, and replay must see it before a marker or hard state that follows it.
      recs.push(hardStateSpec(carried));
      hs = carried;
    }
    for (const p of calls) {
      if (p.marker !== undefined) {
        recs.push(snapshotSpec({ snapshot: p.marker.meta, replacesLog: p.marker.replacesLog }));
        snap = p.marker.meta;
        if (p.marker.replacesLog) {
          last = snap.index;
          lastTerm = snap.term;
        }
      }
      for (const e of p.entries) recs.push(entrySpec(e));
      const le = p.entries[p.entries.length - 1];
      if (le !== undefined) {
        last = le.index;
        lastTerm = le.term;
      }
      if (p.hs !== undefined) {
        recs.push(hardStateSpec(p.hs));
        hs = p.hs;
      }
    }
    if (recs.length === 0) return; // a barrier: everything before it is already durable
    // Roll only a segment holding more than its header, so a tiny segmentBytes cannot make empty segments.
    if ((this.offset >= this.segmentBytes && this.nextBatch > 1) || this.nextBatch >= MAX_BATCH) await this.roll();
    const seg = this.segments[this.segments.length - 1]!;
    const buf = encodeBatch(seg.seq, this.offset, this.nextBatch, recs);
    this.written = { last, lastTerm, snap, hs };
    await this.file.append(buf);
    this.offset += buf.length;
    this.nextBatch++;
    const t0 = performance.now();
    await this.file.sync();
    this.onFsync?.((performance.now() - t0) / 1000);
    this.durableSnapIndex = snap.index;
  }

  /** Seals the current segment (already synced) and starts the next one. */
  private async roll(): Promise<void> {
    const cur = this.segments[this.segments.length - 1]!;
    const seq = cur.seq + 1n;
    const w = this.written;
    const name = segmentName(seq, w.last);
    const path = posix.join(this.dir, name);
    const tmp = `${path}.tmp`;
    const f = await this.fs.create(tmp);
    const header = encodeBatch(seq, 0, 0, headerSpecs({ ...this.meta, seq, tailIndex: w.last, tailTerm: w.lastTerm }, w.snap, w.hs));
    try {
      await f.append(header);
      await f.sync();
      await this.fs.rename(tmp, path);
      await this.fs.syncDir(this.dir);
    } catch (err) {
      await f.close().catch(() => undefined);
      throw err;
    }
    await this.file.close();
    this.file = f;
    this.offset = header.length;
    this.nextBatch = 1;
    this.segments.push({ seq, tail: w.last, path });
    this.log.info({ file: path }, "started a new write-ahead log segment");
  }

  private async release(index: bigint): Promise<void> {
    const bad = this.unusable();
    if (bad !== undefined) throw bad;
    // Keep from the newest segment k whose tail is covered; drop the ones before it.
    let k = 0;
    for (let i = this.segments.length - 1; i > 0; i--) {
      const t = this.segments[i]!.tail;
      if (t <= index && t <= this.durableSnapIndex) {
        k = i;
        break;
      }
    }
    // One unlink and one directory sync at a time: a crash leaves a contiguous run.
    for (let i = 0; i < k; i++) {
      const seg = this.segments[0]!;
      try {
        await this.fs.unlink(seg.path);
        await this.fs.syncDir(this.dir);
      } catch (err) {
        throw this.fail(err);
      }
      this.segments.shift();
      this.log.info({ file: seg.path }, "released a write-ahead log segment");
    }
  }
}

/** Removes `dir` and the files in it, if it exists (a leftover of a create that did not finish). */
async function removeTree(fs: Fs, dir: string): Promise<void> {
  const parent = posix.dirname(dir);
  if (!(await fs.readdir(parent)).includes(posix.basename(dir))) return;
  for (const n of await fs.readdir(dir)) await fs.unlink(posix.join(dir, n));
  await fs.rmdir(dir);
}

/**
 * Replays one segment into `state`. Returns the segment's metadata, where its valid
 * content ends and the next batch number. Only the last segment may end in a torn
 * batch; everything else invalid throws.
 */
function replaySegment(
  seg: Segment,
  buf: Buffer,
  state: LogState,
  isFirst: boolean,
  isLast: boolean,
  known: WalMetadata | undefined,
): { meta: MetadataRecord; end: number; nextBatch: number } {
  const corrupt = (offset: number, reason: string): WalCorruptError => new WalCorruptError(seg.path, offset, reason);
  let meta: MetadataRecord | undefined;
  let batch: Frame[] = [];
  let batchNo = 0;
  let committed = 0; // end of the last complete batch
  let off = 0;
  for (;;) {
    if (off === buf.length) {
      if (batch.length === 0) break;
      if (!isLast) throw corrupt(committed, "the sealed segment ends inside a batch");
      break; // torn: the batch never got its END record
    }
    const f = tryFrame(buf, off, seg.seq);
    if (typeof f === "string") {
      if (!isLast) throw corrupt(off, f);
      checkTornTail(seg, buf, off, batchNo, f);
      break;
    }
    if (f.batch !== batchNo) throw corrupt(off, `record of batch ${f.batch} where batch ${batchNo} was expected`);
    batch.push(f);
    off = f.end;
    if ((f.flags & FLAG_END) === 0) continue;
    if (batchNo === 0) meta = applyHeader(seg, batch, state, isFirst, known);
    else applyBatch(seg, batch, state);
    batch = [];
    batchNo++;
    committed = off;
  }
  if (meta === undefined) throw corrupt(0, "the segment has no complete header");
  return { meta, end: committed, nextBatch: batchNo };
}

/**
 * The last segment has a bad record at `bad`. It is a torn tail only if no valid
 * record of any batch but `batchNo` (the one being written) follows it.
 */
function checkTornTail(seg: Segment, buf: Buffer, bad: number, batchNo: number, why: string): void {
  if (batchNo === 0) throw new WalCorruptError(seg.path, bad, `${why} (in the segment header, which is synced before the segment is used)`);
  for (let y = bad + 8; y + 16 <= buf.length; ) {
    const f = tryFrame(buf, y, seg.seq);
    if (typeof f === "string") {
      y += 8;
      continue;
    }
    if (f.batch !== batchNo) {
      throw new WalCorruptError(seg.path, bad, `${why}, and a valid record of batch ${f.batch} follows at offset ${y}: damage to data that was once durable`);
    }
    y = f.end;
  }
}

function applyHeader(seg: Segment, recs: readonly Frame[], state: LogState, isFirst: boolean, known: WalMetadata | undefined): MetadataRecord {
  const corrupt = (offset: number, reason: string): WalCorruptError => new WalCorruptError(seg.path, offset, reason);
  const r0 = recs[0]!;
  if (r0.type !== RecordType.metadata) throw corrupt(r0.offset, "the segment does not start with a metadata record");
  const meta = decodeMetadata(r0.payload);
  if (typeof meta === "string") throw corrupt(r0.offset, meta);
  if (meta.seq !== seg.seq) throw corrupt(r0.offset, `header says segment ${meta.seq}, the file name says ${seg.seq}`);
  if (meta.tailIndex !== seg.tail) throw corrupt(r0.offset, `header says tail index ${meta.tailIndex}, the file name says ${seg.tail}`);
  if (known !== undefined && (known.memberId !== meta.memberId || known.clusterId !== meta.clusterId)) {
    throw corrupt(r0.offset, `segment belongs to member ${hex16(meta.memberId)} of cluster ${hex16(meta.clusterId)}, unlike the first segment`);
  }
  let marker: SnapshotMetadata | undefined;
  let hs: HardState | undefined;
  let i = 1;
  let r = recs[i];
  if (r !== undefined && r.type === RecordType.snapshot) {
    const m = decodeSnapshot(r.payload);
    if (typeof m === "string") throw corrupt(r.offset, m);
    marker = m.snapshot;
    r = recs[++i];
  }
  if (r !== undefined && r.type === RecordType.hardState) {
    const h = decodeHardState(r.payload);
    if (typeof h === "string") throw corrupt(r.offset, h);
    hs = h;
    r = recs[++i];
  }
  if (r !== undefined) throw corrupt(r.offset, `unexpected record of type ${r.type} in the segment header`);
  const why = isFirst ? state.startAt(meta, marker, hs) : state.checkHeader(meta, marker, hs);
  if (why !== undefined) throw corrupt(r0.offset, why);
  return meta;
}

function applyBatch(seg: Segment, recs: readonly Frame[], state: LogState): void {
  for (const r of recs) {
    let why: string | undefined;
    switch (r.type) {
      case RecordType.entry: {
        const p = peekEntry(r.payload);
        if (typeof p === "string") why = p;
        else why = state.appendEntry(p.index, p.term, decodeEntry(r.payload));
        break;
      }
      case RecordType.hardState: {
        const h = decodeHardState(r.payload);
        if (typeof h === "string") why = h;
        else if (h.term < state.hardState.term) why = `hard state term ${h.term} is below the previous ${state.hardState.term}`;
        else if (h.commit < state.hardState.commit) why = `hard state commit ${h.commit} is below the previous ${state.hardState.commit}`;
        else state.hardState = h;
        break;
      }
      case RecordType.snapshot: {
        const m = decodeSnapshot(r.payload);
        if (typeof m === "string") why = m;
        else why = state.applyMarker(m.snapshot, m.replacesLog);
        break;
      }
      default:
        why = `unexpected record of type ${r.type} after the segment header`;
    }
    if (why !== undefined) throw new WalCorruptError(seg.path, r.offset, why);
  }
}
