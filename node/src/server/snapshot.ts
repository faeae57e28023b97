// Snapshot files: a consistent copy of the whole backend, streamed.
//
// Format (etcd-ts snapshot v1): the 16-byte magic "etcd-ts-snap-v1\n", then
// records [u32 BE key length][key][u32 BE value length][value] in key order,
// all read from one LevelDB snapshot (so data, applied index and meta agree),
// then the end marker 0xFFFFFFFF, zero bytes up to a multiple of 512, and the
// sha256 of everything before it (32 bytes), as etcd appends one to its
// database file; etcdctl 3.6 finds that checksum only when the body is a whole
// number of 512-byte blocks (as a bbolt file always is), hence the padding.
//
// The same bytes go to `etcdctl snapshot save` (Maintenance.Snapshot) and to a
// follower behind the compacted raft log (the peer transport's snapshot
// stream). Nothing holds the whole dump: the sender reads records from the
// LevelDB snapshot as the connection drains (dumpChunks), the receiver checks
// each piece as it writes it to its file (SnapshotParser), and a restore reads
// the file record by record into a new database in batches (restoreBackend).

import { createHash, type Hash } from "node:crypto";
import { open as openFile, rename, rm, mkdir, readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Backend, type BackendView, type BatchOp } from "../mvcc/backend.js";
import { nodeFs } from "../wal/fs.js";

export const SNAPSHOT_MAGIC = Buffer.from("etcd-ts-snap-v1\n");
const END = 0xffffffff;
const SHA_BYTES = 32;
/** The dump is handed out in pieces of about this size (the transport splits further). */
const CHUNK = 256 * 1024;
/** Restore batches: written once this many bytes or records are gathered. */
const BATCH_BYTES = 4 * 1024 * 1024;
const BATCH_RECORDS = 10_000;
/** Bigger than any key or value we write (a request is at most ~1.5 MiB + 512 KiB); guards against garbage lengths. */
const MAX_FIELD = 64 * 1024 * 1024;
/** Read size when restoring from a file. */
const READ_BYTES = 1024 * 1024;

const ALL_LO = Buffer.from([0x00]);
const ALL_HI = Buffer.from([0xff]);

function pad512(n: number): number {
  return (512 - (n % 512)) % 512;
}

/**
 * The dump of a view, in pieces of about CHUNK bytes, sha256 trailer included.
 * Reads records as the consumer asks for more (an async generator: a consumer
 * that waits for its socket to drain holds the reader), never the whole dump.
 */
export async function* dumpChunks(view: BackendView, opts: { trailer?: boolean } = {}): AsyncGenerator<Buffer> {
  const sha = createHash("sha256");
  let parts: Buffer[] = [SNAPSHOT_MAGIC];
  let pending = SNAPSHOT_MAGIC.length;
  let body = 0;
  const flush = (): Buffer => {
    const b = Buffer.concat(parts, pending);
    sha.update(b);
    body += b.length;
    parts = [];
    pending = 0;
    return b;
  };
  for await (const [k, v] of view.range(ALL_LO, ALL_HI)) {
    const h = Buffer.allocUnsafe(4);
    h.writeUInt32BE(k.length);
    const h2 = Buffer.allocUnsafe(4);
    h2.writeUInt32BE(v.length);
    parts.push(h, k, h2, v);
    pending += 8 + k.length + v.length;
    if (pending >= CHUNK) yield flush();
  }
  const end = Buffer.alloc(4, 0xff);
  parts.push(end, Buffer.alloc(pad512(body + pending + end.length)));
  pending += end.length + pad512(body + pending + end.length);
  const last = flush();
  yield (opts.trailer ?? true) ? Buffer.concat([last, sha.digest()]) : last;
}

/** Bytes dumpChunks(view) yields before the trailer, counted from the same view (one more pass over it, values not kept). */
export async function dumpSize(view: BackendView): Promise<number> {
  let n = SNAPSHOT_MAGIC.length;
  for await (const [k, v] of view.range(ALL_LO, ALL_HI)) n += 8 + k.length + v.length;
  n += 4;
  return n + pad512(n);
}

/**
 * A snapshot of the backend as it is now, read lazily from one LevelDB
 * snapshot; released when the chunks are consumed or abandoned. `withSize`
 * first counts the body's exact size (the Snapshot RPC's remaining_bytes) with
 * one more pass over the same view; otherwise total is -1. `trailer: false`
 * leaves the sha256 off (the RPC sends it as a message of its own).
 */
export async function snapshotStream(
  backend: Backend,
  opts: { withSize?: boolean; trailer?: boolean } = {},
): Promise<{ total: bigint; chunks: AsyncGenerator<Buffer> }> {
  const view = await backend.view();
  let total = -1n;
  try {
    if (opts.withSize ?? false) total = BigInt(await dumpSize(view));
  } catch (e) {
    await view.close();
    throw e;
  }
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      yield* dumpChunks(view, { trailer: opts.trailer ?? true });
    } finally {
      await view.close();
    }
  }
  return { total, chunks: chunks() };
}

type State = "magic" | "klen" | "key" | "vlen" | "value" | "pad" | "sha" | "done";

/**
 * Checks a snapshot as its bytes arrive, in any pieces: magic, records, end
 * marker, zero padding, sha256, nothing after. With `onRecord` it also hands
 * out each record (key and value copied out of the pieces). Throws on the
 * first byte that does not fit; end() throws if the snapshot is incomplete.
 * A record is handed out before the checksum is known: a restore must not
 * make records visible until end() succeeded.
 */
export class SnapshotParser {
  private state: State = "magic";
  private need = SNAPSHOT_MAGIC.length;
  /** Fixed-size fields and padding land here; keys and values get buffers of their own (they are handed out). */
  private readonly scratch = Buffer.alloc(512);
  private acc: Buffer = this.scratch;
  private got = 0;
  private key: Buffer = Buffer.alloc(0);
  private readonly sha: Hash = createHash("sha256");
  /** Bytes consumed so far. */
  offset = 0;
  records = 0;

  constructor(
    private readonly what: string,
    private readonly onRecord?: (key: Buffer, value: Buffer) => void,
  ) {}

  push(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.state === "done") throw this.fail(`${chunk.length - off} bytes after the checksum`);
      const take = Math.min(this.need - this.got, chunk.length - off);
      const piece = chunk.subarray(off, off + take);
      if (this.state !== "sha") this.sha.update(piece);
      this.acc.set(piece, this.got);
      this.got += take;
      off += take;
      this.offset += take;
      if (this.got === this.need) this.step();
    }
  }

  /** The snapshot is complete and its checksum matched. */
  end(): void {
    if (this.state !== "done") throw this.fail(`cut short (in ${this.state})`);
  }

  get complete(): boolean {
    return this.state === "done";
  }

  private expect(state: State, n: number): void {
    this.state = state;
    this.need = n;
    this.got = 0;
    this.acc = n <= this.scratch.length && state !== "key" && state !== "value" ? this.scratch : Buffer.allocUnsafe(n);
  }

  private step(): void {
    const a = this.acc.subarray(0, this.need);
    switch (this.state) {
      case "magic":
        if (!a.equals(SNAPSHOT_MAGIC)) throw this.fail("not an etcd-ts snapshot");
        this.expect("klen", 4);
        return;
      case "klen": {
        const n = a.readUInt32BE(0);
        if (n === END) {
          const pad = pad512(this.offset);
          if (pad > 0) this.expect("pad", pad);
          else this.expect("sha", SHA_BYTES);
          return;
        }
        if (n > MAX_FIELD) throw this.fail(`key length ${n} is not plausible`);
        this.expect("key", n);
        if (n === 0) this.step();
        return;
      }
      case "key":
        this.key = a;
        this.expect("vlen", 4);
        return;
      case "vlen": {
        const n = a.readUInt32BE(0);
        if (n > MAX_FIELD) throw this.fail(`value length ${n} is not plausible`);
        this.expect("value", n);
        if (n === 0) this.step();
        return;
      }
      case "value":
        this.records++;
        this.onRecord?.(this.key, a);
        this.expect("klen", 4);
        return;
      case "pad":
        if (a.some((b) => b !== 0)) throw this.fail("padding after the end marker is not zero");
        this.expect("sha", SHA_BYTES);
        return;
      case "sha": {
        const want = this.sha.digest();
        if (!a.equals(want)) throw this.fail("sha256 mismatch");
        this.state = "done";
        return;
      }
      case "done":
        return;
    }
  }

  private fail(why: string): Error {
    return new Error(`${this.what}: invalid snapshot at byte ${this.offset}: ${why}`);
  }
}

/**
 * Writes a snapshot arriving in pieces to `path` (through `<path>.tmp`,
 * fsynced, renamed, the directory fsynced), checking it as it goes; a snapshot that does not check
 * out is refused and nothing is left behind. Returns its size in bytes.
 */
export async function receiveSnapshotFile(path: string, payload: AsyncIterable<Uint8Array>): Promise<number> {
  const tmp = `${path}.tmp`;
  const parser = new SnapshotParser(path);
  const fh = await openFile(tmp, "w", 0o600);
  let ok = false;
  try {
    for await (const chunk of payload) {
      parser.push(chunk);
      await fh.write(chunk);
    }
    parser.end();
    await fh.sync();
    ok = true;
  } finally {
    await fh.close();
    if (!ok) await rm(tmp, { force: true });
  }
  await rename(tmp, path);
  // The name must be durable before raft records the snapshot in the WAL: after a
  // power cut a start finds the marker and restores from this file (a `.tmp` is
  // deleted as an unfinished receive).
  await nodeFs.syncDir(dirname(path));
  return parser.offset;
}

/**
 * Replaces the backend with the snapshot in `path`: reads the file record by
 * record (checked as it goes) into a new database built beside the live one,
 * in batches; `fixed` records (this member's identity) replace the file's own.
 * Only once the whole file checked out (sha256 included) is the new database
 * swapped in (Backend.swapIn), so a bad or cut file leaves the backend as it
 * was, and a crash at any point leaves either the old or the new database.
 */
export async function restoreBackend(backend: Backend, path: string, fixed: readonly BatchOp[]): Promise<{ records: number; bytes: number }> {
  const skip = new Set(fixed.map((op) => op.key.toString("hex")));
  const skipFirst = new Set(fixed.map((op) => op.key[0])); // a cheap test before the hex one, per record
  let records = 0;
  let bytes = 0;
  await backend.build(async (write) => {
    let batch: BatchOp[] = [];
    let batchBytes = 0;
    const parser = new SnapshotParser(path, (key, value) => {
      records++;
      if (skipFirst.has(key[0]!) && skip.has(key.toString("hex"))) return;
      batch.push({ type: "put", key, value });
      batchBytes += key.length + value.length;
    });
    const fh = await openFile(path, "r");
    try {
      const buf = Buffer.allocUnsafe(READ_BYTES);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, READ_BYTES, null);
        if (bytesRead === 0) break;
        parser.push(buf.subarray(0, bytesRead));
        bytes += bytesRead;
        if (batchBytes >= BATCH_BYTES || batch.length >= BATCH_RECORDS) {
          await write(batch);
          batch = [];
          batchBytes = 0;
        }
      }
    } finally {
      await fh.close();
    }
    parser.end();
    await write([...batch, ...fixed]);
  });
  await backend.swapIn();
  return { records, bytes };
}

/** `member/snap/<index in 16 hex digits>.snap.db`: a snapshot received from the leader. */
export function snapDbName(index: bigint): string {
  return `${index.toString(16).padStart(16, "0")}.snap.db`;
}

/**
 * Deletes received snapshot files that are applied or obsolete (index <=
 * applied: raft never restores one at or below what is applied) and, with
 * `leftovers` (at start, before the peer port listens), the `.tmp` files of
 * interrupted receives. etcd renames a received `.snap.db` into place as its
 * backend, so it is gone once applied; ours is copied into the backend, so it
 * is deleted instead. Returns the names removed.
 */
export async function purgeSnapDbs(snapDir: string, applied: bigint, opts: { leftovers: boolean }): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(snapDir);
  } catch {
    return [];
  }
  const gone: string[] = [];
  for (const name of names) {
    const m = /^([0-9a-f]{16})\.snap\.db(\.tmp)?$/.exec(name);
    if (m === null) continue;
    if (m[2] !== undefined ? !opts.leftovers : BigInt(`0x${m[1]}`) > applied) continue;
    await rm(join(snapDir, name), { force: true });
    gone.push(name);
  }
  return gone;
}

export async function ensureSnapDir(snapDir: string): Promise<void> {
  await mkdir(snapDir, { recursive: true, mode: 0o700 });
}
