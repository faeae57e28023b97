// The durable backend: one LevelDB (classic-level) database per member.
//
// Key layout (every key starts with a one-byte namespace):
//   'k' + rev(16)       -> flags(1) + mvccpb.KeyValue bytes   (every change, in revision order)
//   'l' + leaseID(8)    -> lease record (see lessor.ts)
//   'a' + member(8) + type(4) -> empty                         (raised alarms)
//   'm' + name          -> meta values (big-endian int64 unless noted)
// Meta names: "consistent_index" (the last applied log index), "rev" (current
// store revision), "compact_rev" (finished compaction), "scheduled_compact_rev",
// "term", "cluster_id", "member_id".
//
// Durability contract: write(ops, {sync: true}) returns only after LevelDB has
// fsynced its log, and every write is one atomic batch, so the applied index
// stored with the data always describes exactly the data present.
//
// Ordering and visibility contract: writes reach LevelDB one at a time, in the
// order write() was called (each waits for the one before: two batches on
// libuv's thread pool could otherwise land in either order, and
// consistent_index must only move forward). A write is visible from the moment
// write() is called: every read (get, getMany, range, view) first waits for
// the writes called before it. So a caller need not await a write before
// answering for it (the apply loop does not: the raft log is its durability
// point), and nobody reads the database without what was written before.

//
// Replacing the whole database (a snapshot from the leader): a new database is
// built beside it in `<dir>.restore` (see build()), then swapIn() closes the
// live one, renames `<dir>` -> `<dir>.old` and `<dir>.restore` -> `<dir>`
// (directory fsynced after each), reopens and deletes `<dir>.old`. A crash
// between the two renames leaves no `<dir>` and a complete `<dir>.restore`:
// open() finishes the swap. A `<dir>.restore` beside a live `<dir>` is an
// unfinished build and is deleted (the restore runs again from its file).

import { ClassicLevel } from "classic-level";
import { existsSync } from "node:fs";
import { open as openFile, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";

export const NS_KV = 0x6b; // 'k'
export const NS_LEASE = 0x6c; // 'l'
export const NS_ALARM = 0x61; // 'a'
export const NS_META = 0x6d; // 'm'

export type BatchOp =
  | { type: "put"; key: Buffer; value: Buffer }
  | { type: "del"; key: Buffer };

export function metaKey(name: string): Buffer {
  return Buffer.concat([Buffer.from([NS_META]), Buffer.from(name, "utf8")]);
}

export function int64(v: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(v);
  return b;
}

export function uint64(v: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(v);
  return b;
}

/** A read-only view of the database as it was when the view was taken. Close it when done. */
export interface BackendView {
  range(gte: Buffer, lt: Buffer): AsyncGenerator<[Buffer, Buffer]>;
  close(): Promise<void>;
}

/** Entries per read of scan(). */
const SCAN_BATCH = 1000;

/** How long swapIn() waits for running reads before it closes the database under them. */
const SWAP_DRAIN_MS = 5000;

async function openDb(dir: string): Promise<ClassicLevel<Buffer, Buffer>> {
  const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: "buffer", valueEncoding: "buffer" });
  try {
    await db.open();
  } catch (err) {
    const cause = String((err as { cause?: unknown }).cause ?? "");
    if (cause.includes("lock")) throw new Error(`data directory ${dir} is in use by another process (${cause})`, { cause: err });
    throw err;
  }
  return db;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await openFile(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class Backend {
  /** Operations and iterators running on `db`; swapIn() waits for them. */
  private active = 0;
  private drained: (() => void) | undefined;
  /** Set while swapIn() replaces the database: new operations wait for it. */
  private swapping: Promise<void> | undefined;
  /** The last write called (settled, never rejecting): the next write and every read wait for it. */
  private writes: Promise<void> = Promise.resolve();
  /** Writes called and not finished (so a read with none in flight takes no extra tick). */
  private writesInFlight = 0;

  private constructor(
    readonly dir: string,
    private db: ClassicLevel<Buffer, Buffer>,
  ) {}

  static async open(dir: string): Promise<Backend> {
    await Backend.recoverSwap(dir);
    return new Backend(dir, await openDb(dir));
  }

  /** Finishes or discards a swap a crash interrupted (see the top of this file). */
  private static async recoverSwap(dir: string): Promise<void> {
    const next = `${dir}.restore`;
    const old = `${dir}.old`;
    if (!existsSync(dir) && existsSync(next)) {
      await rename(next, dir);
      await syncDir(dirname(dir));
    } else if (existsSync(next)) {
      await rm(next, { recursive: true, force: true });
    }
    if (existsSync(old) && existsSync(dir)) await rm(old, { recursive: true, force: true });
  }

  /**
   * Builds a new database in `<dir>.restore` (replacing any unfinished one) by
   * calling `fill` with a writer; the last write is synced. swapIn() then puts
   * it in place of this one.
   */
  async build(fill: (write: (ops: BatchOp[]) => Promise<void>) => Promise<void>): Promise<void> {
    const next = `${this.dir}.restore`;
    await rm(next, { recursive: true, force: true });
    const db = await openDb(next);
    let ok = false;
    try {
      await fill(async (ops) => {
        // writeBatch: abstract-level's per-op preparation was most of a restore's time.
        if (ops.length > 0) await writeBatch(db, ops, false);
      });
      // One synced write flushes LevelDB's log with everything before it.
      await db.batch([{ type: "put", key: metaKey("restore_sync"), value: Buffer.alloc(0) }, { type: "del", key: metaKey("restore_sync") }], { sync: true });
      ok = true;
    } finally {
      await db.close();
      if (!ok) await rm(next, { recursive: true, force: true });
    }
  }

  /**
   * Replaces the live database with the one build() made. Operations that start
   * meanwhile wait; running ones are waited for (up to SWAP_DRAIN_MS, then the
   * database is closed under them and they fail).
   */
  async swapIn(): Promise<void> {
    if (this.swapping !== undefined) throw new Error("backend: a swap is already running");
    await this.writes; // writes called before the swap go to the database being replaced
    let done!: () => void;
    this.swapping = new Promise<void>((r) => (done = r));
    try {
      if (this.active > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, SWAP_DRAIN_MS);
          this.drained = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.drained = undefined;
      }
      await this.db.close();
      const next = `${this.dir}.restore`;
      const old = `${this.dir}.old`;
      await rm(old, { recursive: true, force: true });
      await rename(this.dir, old);
      await syncDir(dirname(this.dir));
      // ---- a crash here leaves only <dir>.restore: open() finishes the swap ----
      await rename(next, this.dir);
      await syncDir(dirname(this.dir));
      this.db = await openDb(this.dir);
      await rm(old, { recursive: true, force: true });
    } finally {
      this.swapping = undefined;
      done();
    }
  }

  /** Counts an operation in; waits only while a swap runs (undefined otherwise, so the hot path takes no extra tick). */
  private enter(): Promise<void> | undefined {
    if (this.swapping === undefined) {
      this.active++;
      return undefined;
    }
    return (async () => {
      while (this.swapping !== undefined) await this.swapping;
      this.active++;
    })();
  }

  private leave(): void {
    if (--this.active === 0) this.drained?.();
  }

  async close(): Promise<void> {
    await this.writes;
    while (this.swapping !== undefined) await this.swapping;
    await this.db.close();
  }

  /** Resolves once every write called so far is in the database; undefined when none is in flight. */
  private written(): Promise<void> | undefined {
    return this.writesInFlight > 0 ? this.writes : undefined;
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    const w = this.written();
    if (w !== undefined) await w;
    const wait = this.enter();
    if (wait !== undefined) await wait;
    try {
      const v = await this.db.get(key);
      return v ?? undefined;
    } finally {
      this.leave();
    }
  }

  async getMany(keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    if (keys.length === 0) return [];
    const w = this.written();
    if (w !== undefined) await w;
    const wait = this.enter();
    if (wait !== undefined) await wait;
    try {
      const vs = await this.db.getMany(keys);
      return vs.map((v) => v ?? undefined);
    } finally {
      this.leave();
    }
  }

  async getMetaInt(name: string): Promise<bigint | undefined> {
    const v = await this.get(metaKey(name));
    return v === undefined ? undefined : v.readBigInt64BE();
  }

  /**
   * One atomic batch, after every write called before it. Visible to reads at
   * once (they wait for it); the promise resolves when it is in the database,
   * and with sync when it is on disk. `ops` must not change after the call.
   */
  write(ops: BatchOp[], sync: boolean): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    this.writesInFlight++;
    const done = this.writes.then(async () => {
      const wait = this.enter();
      if (wait !== undefined) await wait;
      try {
        await writeBatch(this.db, ops, sync);
      } finally {
        this.leave();
      }
    });
    const settled = (): void => void this.writesInFlight--;
    this.writes = done.then(settled, settled);
    return done;
  }

  /**
   * Calls `fn` with every entry of [gte, lt), in key order and in batches, over one
   * consistent snapshot holding every write called before the scan (taken once
   * those have landed): range() for a whole key space. The next
   * batch is read (on libuv's thread pool) while `fn` handles this one, so reading
   * the database and handling what was read overlap; a member's start-up load of
   * every record is mostly one or the other. If `fn` throws, the scan stops and
   * the error is thrown once the read in flight is over.
   */
  async scan(gte: Buffer, lt: Buffer, fn: (batch: [Buffer, Buffer][]) => void): Promise<void> {
    await this.written();
    await this.enter();
    const it = this.db.iterator({ gte, lt });
    let next: Promise<[Buffer, Buffer][]> | undefined;
    try {
      next = it.nextv(SCAN_BATCH) as Promise<[Buffer, Buffer][]>;
      for (;;) {
        const batch = await next;
        next = undefined;
        if (batch.length === 0) break;
        next = it.nextv(SCAN_BATCH) as Promise<[Buffer, Buffer][]>;
        fn(batch);
      }
    } finally {
      if (next !== undefined) await next.catch(() => undefined);
      await it.close();
      this.leave();
    }
  }

  /**
   * Iterates [gte, lt) in key order over one consistent snapshot holding every
   * write called before it (taken once those have landed, so a write called
   * meanwhile may be in it too). The iterator is closed when the loop ends or throws.
   */
  async *range(gte: Buffer, lt: Buffer, opts: { limit?: number; reverse?: boolean } = {}): AsyncGenerator<[Buffer, Buffer]> {
    await this.written();
    await this.enter();
    try {
      yield* iterate(this.db.iterator({ gte, lt, limit: opts.limit ?? -1, reverse: opts.reverse ?? false }));
    } finally {
      this.leave();
    }
  }

  /**
   * A LevelDB snapshot: every range() on it reads the database as it was now,
   * however long the reads take (a snapshot dump reads it twice: sizes, then
   * bytes). It counts as a running read until closed.
   */
  async view(): Promise<BackendView> {
    await this.written();
    await this.enter();
    const db = this.db;
    const snapshot = db.snapshot();
    let closed = false;
    return {
      range: (gte, lt) => iterate(db.iterator({ gte, lt, snapshot })),
      close: async () => {
        if (closed) return;
        closed = true;
        try {
          await snapshot.close();
        } finally {
          this.leave();
        }
      },
    };
  }

  /** Bytes the database occupies on disk (all files in its directory). */
  async sizeOnDisk(): Promise<bigint> {
    await this.enter(); // the directory is renamed away during swapIn
    try {
      return await this.sizeOf(() => true);
    } finally {
      this.leave();
    }
  }

  private async sizeOf(want: (name: string) => boolean): Promise<bigint> {
    let total = 0n;
    for (const name of await readdir(this.dir)) {
      if (!want(name)) continue;
      try {
        total += BigInt((await stat(join(this.dir, name))).size);
      } catch {
        // files come and go during LevelDB compactions
      }
    }
    return total;
  }

  /**
   * Bytes of live data: LevelDB's table files plus its write-ahead log (data
   * not yet compacted into tables). Obsolete files are deleted by LevelDB, so
   * this excludes only its bookkeeping files (LOG, MANIFEST, LOCK, CURRENT).
   */
  async sizeInUse(): Promise<bigint> {
    await this.enter();
    try {
      return await this.sizeOf((name) => name.endsWith(".ldb") || name.endsWith(".sst") || name.endsWith(".log"));
    } finally {
      this.leave();
    }
  }

  /** Rewrites the whole key space, dropping deleted data: etcd's "defragment". */
  async defragment(): Promise<void> {
    await this.written();
    await this.enter();
    try {
      await this.db.compactRange(Buffer.from([0x00]), Buffer.from([0xff]));
    } finally {
      this.leave();
    }
  }
}

/** What writeBatch needs of classic-level beyond its public API. */
interface DirectBatch {
  readonly status: string;
  _batch(ops: readonly BatchOp[], options: { sync: boolean }): Promise<void>;
}

/**
 * One atomic LevelDB batch through classic-level's own `_batch` (abstract-level's
 * "private API for implementors", which the public `batch()` ends in), skipping
 * abstract-level's per-operation preparation: it clones every op, looks up its
 * encodings, validates and re-encodes key and value, and cost about 15 µs of CPU
 * per op (a put writes two), more than the rest of the apply. That work is a
 * no-op for us: every key and value is already a Buffer in the database's
 * encoding (BatchOp's type says so), no prewrite hook or write listener is
 * installed, and the native side reads exactly {type, key, value}. The public
 * path is kept for a database that is not open (it throws the proper error;
 * the native call would not check).
 */
function writeBatch(db: ClassicLevel<Buffer, Buffer>, ops: readonly BatchOp[], sync: boolean): Promise<void> {
  const direct = db as unknown as DirectBatch;
  if (direct.status !== "open" || typeof direct._batch !== "function") return db.batch(ops as BatchOp[], { sync });
  return direct._batch(ops, { sync });
}

type Iter = ReturnType<ClassicLevel<Buffer, Buffer>["iterator"]>;

async function* iterate(it: Iter): AsyncGenerator<[Buffer, Buffer]> {
  try {
    for (;;) {
      const batch = await it.nextv(1000);
      if (batch.length === 0) return;
      for (const e of batch) yield e as [Buffer, Buffer];
    }
  } finally {
    await it.close();
  }
}

/** The smallest key greater than every key with this prefix. */
export function prefixEnd(prefix: Buffer): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      b[i]! += 1;
      return b.subarray(0, i + 1);
    }
  }
  return Buffer.from([0xff, 0xff]);
}
