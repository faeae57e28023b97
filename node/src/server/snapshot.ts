// Snapshot files: a consistent copy of the whole backend, streamed.
//
// Format (etcd-ts snapshot v1): the 16-byte magic "etcd-ts-snap-v1\n", then
// records [u32 BE key length][key][u32 BE value length][value] in key order,
// all read from one LevelDB snapshot (so data, applied index and meta agree),
// then the end marker 0xFFFFFFFF and zero bytes up to a multiple of 512.
// The Snapshot RPC appends the sha256 of those bytes, as etcd appends one to
// its database file; etcdctl 3.6 finds that checksum only when the body is a
// whole number of 512-byte blocks (as a bbolt file always is), hence the
// padding. Members also stream this dump to a follower
// behind the compacted raft log (server.ts restoreFromFile reads it back).

import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EtcdServer } from "./server.js";

export const SNAPSHOT_MAGIC = Buffer.from("etcd-ts-snap-v1\n");
const CHUNK = 32 * 1024;
const END_MARKER = Buffer.from([0xff, 0xff, 0xff, 0xff]);

/**
 * Writes the dump to a temporary file first (so remaining_bytes is known and
 * memory stays flat), then yields it in 32 KiB chunks and removes it.
 */
export async function snapshotChunks(s: EtcdServer): Promise<{ total: bigint; chunks: AsyncGenerator<Buffer> }> {
  const dir = await mkdtemp(join(tmpdir(), "etcdts-snap-"));
  const path = join(dir, "snapshot.db");
  const fh = await open(path, "w", 0o600);
  let total = 0;
  try {
    const parts: Buffer[] = [SNAPSHOT_MAGIC];
    let pending = SNAPSHOT_MAGIC.length;
    for await (const [k, v] of s.backend.range(Buffer.from([0x00]), Buffer.from([0xff]))) {
      const h = Buffer.allocUnsafe(4);
      h.writeUInt32BE(k.length);
      const h2 = Buffer.allocUnsafe(4);
      h2.writeUInt32BE(v.length);
      parts.push(h, k, h2, v);
      pending += 8 + k.length + v.length;
      if (pending >= 1 << 20) {
        const b = Buffer.concat(parts);
        await fh.write(b);
        total += b.length;
        parts.length = 0;
        pending = 0;
      }
    }
    parts.push(END_MARKER);
    pending += END_MARKER.length;
    const pad = (512 - ((total + pending) % 512)) % 512;
    parts.push(Buffer.alloc(pad));
    const b = Buffer.concat(parts);
    await fh.write(b);
    total += b.length;
  } finally {
    await fh.close();
  }
  async function* chunks(): AsyncGenerator<Buffer> {
    const rh = await open(path, "r");
    try {
      for (;;) {
        const buf = Buffer.allocUnsafe(CHUNK);
        const { bytesRead } = await rh.read(buf, 0, CHUNK, null);
        if (bytesRead === 0) return;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await rh.close();
      await rm(dir, { recursive: true, force: true });
    }
  }
  return { total: BigInt(total), chunks: chunks() };
}

/**
 * The records of a whole snapshot body (magic, records, end marker, padding;
 * anything after the padding, such as the RPC's sha256, is ignored). Throws on
 * a body that is not ours or is cut short: a restore must never apply part of
 * a snapshot.
 */
export function* snapshotRecords(buf: Buffer, what: string): Generator<[Buffer, Buffer]> {
  if (!buf.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) throw new Error(`${what}: not an etcd-ts snapshot`);
  let off = SNAPSHOT_MAGIC.length;
  const cut = () => new Error(`${what}: snapshot cut short at byte ${off} of ${buf.length}`);
  for (;;) {
    if (off + 4 > buf.length) throw cut();
    const kl = buf.readUInt32BE(off);
    if (kl === 0xffffffff) return;
    if (off + 4 + kl + 4 > buf.length) throw cut();
    const key = buf.subarray(off + 4, off + 4 + kl);
    off += 4 + kl;
    const vl = buf.readUInt32BE(off);
    if (off + 4 + vl > buf.length) throw cut();
    const value = buf.subarray(off + 4, off + 4 + vl);
    off += 4 + vl;
    yield [key, value];
  }
}
