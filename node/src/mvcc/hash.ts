// HashKV with etcd's exact hash, so `etcdctl endpoint hashkv` and corruption
// checks compare our members with each other and with etcd.
//
// etcd hashes its bbolt "key" bucket: CRC-32C (Castagnoli) over the bucket
// name "key", then, in revision order, each record's key and value as etcd
// stores them:
//   key   = main (8 bytes BE) "_" sub (8 bytes BE), plus "t" for a tombstone;
//   value = the marshalled mvccpb.KeyValue (a tombstone stores only its key).
// Records after the hash revision are left out; records at or below the
// compact revision are hashed only if a compaction at the hash revision would
// keep them (when any key exists), and a tombstone exactly at the compact
// revision is left out (etcd versions differ on whether compaction deletes it).

import { create, toBinary } from "@bufbuild/protobuf";
import { KeyValueSchema } from "../../gen/mvccpb/kv_pb.js";
import type { Revision } from "./revision.js";

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Incremental CRC-32C: pass the previous result to continue a stream (0 to start). */
export function crc32c(data: Uint8Array, prev = 0): number {
  let c = ~prev >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export interface HashInput {
  readonly compactRev: bigint;
  readonly rev: bigint;
  /** Revisions (as "main_sub") a compaction at `rev` would keep; empty when no key exists. */
  readonly keep: ReadonlySet<string>;
}

export class KvHasher {
  private h = crc32c(Buffer.from("key"));
  constructor(private readonly input: HashInput) {}

  /**
   * Feed records in revision order. `body` is the record's stored KeyValue
   * encoding (the same bytes etcd stores for a put); a tombstone is hashed as
   * etcd stores it, a KeyValue holding only the key.
   */
  add(r: Revision, body: Uint8Array, tombstone: boolean, key: () => Uint8Array): void {
    const { compactRev, rev, keep } = this.input;
    if (r.main > rev) return;
    if (r.main <= compactRev && keep.size > 0 && !keep.has(`${r.main}_${r.sub}`)) return;
    if (r.main === compactRev && tombstone) return;
    const k = Buffer.alloc(tombstone ? 18 : 17);
    k.writeBigInt64BE(r.main, 0);
    k[8] = 0x5f; // "_"
    k.writeBigInt64BE(r.sub, 9);
    if (tombstone) k[17] = 0x74; // "t"
    const v = tombstone ? toBinary(KeyValueSchema, create(KeyValueSchema, { key: key() })) : body;
    this.h = crc32c(v, crc32c(k, this.h));
  }

  get hash(): number {
    return this.h;
  }
}
