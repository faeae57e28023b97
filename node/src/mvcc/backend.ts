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

import { ClassicLevel } from "classic-level";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

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

export class Backend {
  private constructor(
    readonly dir: string,
    private readonly db: ClassicLevel<Buffer, Buffer>,
  ) {}

  static async open(dir: string): Promise<Backend> {
    const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: "buffer", valueEncoding: "buffer" });
    try {
      await db.open();
    } catch (err) {
      const cause = String((err as { cause?: unknown }).cause ?? "");
      if (cause.includes("lock")) throw new Error(`data directory ${dir} is in use by another process (${cause})`, { cause: err });
      throw err;
    }
    return new Backend(dir, db);
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    const v = await this.db.get(key);
    return v ?? undefined;
  }

  async getMany(keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    if (keys.length === 0) return [];
    const vs = await this.db.getMany(keys);
    return vs.map((v) => v ?? undefined);
  }

  async getMetaInt(name: string): Promise<bigint | undefined> {
    const v = await this.get(metaKey(name));
    return v === undefined ? undefined : v.readBigInt64BE();
  }

  /** One atomic batch; with sync it is on disk when the promise resolves. */
  async write(ops: BatchOp[], sync: boolean): Promise<void> {
    if (ops.length === 0) return;
    await this.db.batch(ops, { sync });
  }

  /**
   * Iterates [gte, lt) in key order over a consistent snapshot taken at the
   * call. The iterator is closed when the loop ends or throws.
   */
  async *range(gte: Buffer, lt: Buffer, opts: { limit?: number; reverse?: boolean } = {}): AsyncGenerator<[Buffer, Buffer]> {
    const it = this.db.iterator({ gte, lt, limit: opts.limit ?? -1, reverse: opts.reverse ?? false });
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

  /** Bytes the database occupies on disk (all files in its directory). */
  async sizeOnDisk(): Promise<bigint> {
    let total = 0n;
    for (const name of await readdir(this.dir)) {
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
    let total = 0n;
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith(".ldb") && !name.endsWith(".sst") && !name.endsWith(".log")) continue;
      try {
        total += BigInt((await stat(join(this.dir, name))).size);
      } catch {
        // removed by a concurrent LevelDB compaction
      }
    }
    return total;
  }

  /** Rewrites the whole key space, dropping deleted data: etcd's "defragment". */
  async defragment(): Promise<void> {
    await this.db.compactRange(Buffer.from([0x00]), Buffer.from([0xff]));
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
