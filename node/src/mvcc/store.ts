// The MVCC key-value store: a state machine over the backend.
//
// Writes come only from the apply loop (server/applier.ts), one WriteTxn at a
// time: each txn sees the state left by the previous one plus its own earlier
// changes, gets one main revision if it changes anything, and stages its
// backend ops into the caller's batch. The caller writes the batch (atomically,
// with the applied log index) and only then calls markDurable(rev): reads
// served outside the apply loop use durableRev, so nobody observes a write
// that could still be lost in a crash.
//
// Reads resolve revisions with the in-memory index; a key's current value is
// cached on its index entry, older values are read from the backend.

import { create } from "@bufbuild/protobuf";
import { KeyValueSchema, type KeyValue } from "../../gen/mvccpb/kv_pb.js";
import { Errors } from "../errors.js";
import { Backend, NS_KV, int64, metaKey, type BatchOp } from "./backend.js";
import { decodeKeyValue, encodeKeyValue } from "./kv_encode.js";
import { KeyIndex, TreeIndex, keyStr, type IndexHit } from "./key_index.js";
import { decodeRev, encodeRev, rev as mkRev, type Revision } from "./revision.js";

const FLAG_PUT = 0;
const META_REV = metaKey("rev");
const FLAG_TOMBSTONE = 1;

/** One change made by a write txn, in sub-revision order; what watchers receive. */
export interface Change {
  readonly kv: KeyValue; // for a delete: key and mod_revision only
  readonly deleted: boolean;
  /** The value before this change (known for changes made since start; not read from history). */
  readonly prev?: KeyValue;
}

export interface RangeOptions {
  /** Read at this revision; <= 0 means the store's readable revision. */
  rev?: bigint;
  /** Return at most this many keys (0 = all); total count is computed regardless. */
  limit?: number;
  countOnly?: boolean;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** Keys in the range at that revision, before limit. */
  count: number;
  /** The store's revision at the time of the read (the header revision). */
  rev: bigint;
}

/** [key, end): end empty = the single key; end "\0" = every key >= key. */
export function rangeBounds(key: Uint8Array, end: Uint8Array): { start: string; end: string | undefined } {
  const start = keyStr(key);
  if (end.length === 0) return { start, end: undefined };
  if (end.length === 1 && end[0] === 0) return { start, end: "" };
  return { start, end: keyStr(end) };
}

function encodeKv(kv: KeyValue, flag: number): Buffer {
  const b = encodeKeyValue(kv, 1);
  b[0] = flag;
  return b;
}

export function decodeKvRecord(v: Buffer): { kv: KeyValue; deleted: boolean } {
  return { kv: decodeKeyValue(v.subarray(1)), deleted: v[0] === FLAG_TOMBSTONE };
}

/** A stored record's KeyValue bytes and whether it is a tombstone, without decoding. */
export function kvRecordBody(v: Buffer): { body: Buffer; deleted: boolean } {
  return { body: v.subarray(1), deleted: v[0] === FLAG_TOMBSTONE };
}

export function kvKey(r: Revision): Buffer {
  return encodeRev(r, NS_KV);
}

/** Hooks the store calls so the lessor can follow key<->lease attachment. */
export interface LeaseHooks {
  attach(lease: bigint, key: string): void;
  detach(lease: bigint, key: string): void;
}

interface IndexEntry extends KeyIndex {
  latest?: KeyValue;
}

export class MvccStore {
  index = new TreeIndex();
  /** Revision of the last applied change (may not be durable yet). */
  currentRev = 1n;
  /** Revision readers may see: everything up to it is on disk. */
  durableRev = 1n;
  /** Compaction revision (-1 = never compacted). Reads below it fail. */
  compactRev = -1n;
  /** Newest compaction whose physical deletion has finished. */
  finishedCompactRev = -1n;
  /** Values staged by applied-but-unflushed txns, by revision key. */
  private readonly pending = new Map<string, KeyValue>();
  /** Revisions applied but not yet handed to watchers, oldest first. */
  private unpublished: { rev: bigint; changes: Change[] }[] = [];
  private compacting: Promise<void> = Promise.resolve();
  leaseHooks: LeaseHooks = { attach() {}, detach() {} };

  private constructor(readonly backend: Backend) {}

  /** Rebuilds the index from the backend and resumes an interrupted compaction. */
  static async open(backend: Backend): Promise<MvccStore> {
    const s = new MvccStore(backend);
    await s.load();
    return s;
  }

  /**
   * Forgets everything in memory and loads the backend again (after the backend
   * was replaced by a snapshot from the leader).
   */
  async reload(): Promise<void> {
    await this.compacting.catch(() => undefined);
    this.index = new TreeIndex();
    this.pending.clear();
    this.unpublished = [];
    this.compacting = Promise.resolve();
    await this.load();
  }

  private async load(): Promise<void> {
    const backend = this.backend;
    let maxRev = 1n;
    await backend.scan(Buffer.from([NS_KV]), Buffer.from([NS_KV + 1]), (batch) => {
      for (const [k, v] of batch) {
        const r = decodeRev(k, 1);
        const { kv, deleted } = decodeKvRecord(v);
        if (kv.modRevision === r.main) kv.modRevision = r.main; // one BigInt for both (see revision.ts)
        if (kv.createRevision === r.main) kv.createRevision = r.main;
        const ki = this.index.ensureLikelyNew(keyStr(kv.key)) as IndexEntry;
        if (deleted) {
          if (ki.live) ki.tombstone(r);
          ki.latest = undefined;
        } else {
          ki.put(r);
          ki.latest = kv;
        }
        if (r.main > maxRev) maxRev = r.main;
      }
    });
    const metaRev = (await backend.getMetaInt("rev")) ?? 1n;
    this.currentRev = this.durableRev = metaRev > maxRev ? metaRev : maxRev;
    this.finishedCompactRev = (await backend.getMetaInt("compact_rev")) ?? -1n;
    const scheduled = (await backend.getMetaInt("scheduled_compact_rev")) ?? -1n;
    this.compactRev = scheduled > this.finishedCompactRev ? scheduled : this.finishedCompactRev;
    if (this.compactRev > 0n) this.index.compact(this.compactRev);
    // Keys whose leases are attached, for the lessor to rebuild its sets.
    if (scheduled > this.finishedCompactRev) this.compacting = this.physicalCompact(scheduled);
  }

  /** Every live key with a lease, for the lessor after restart. */
  *leasedKeys(): Generator<[bigint, string]> {
    const all: [bigint, string][] = [];
    this.index.visit("", "", (ki) => {
      const kv = (ki as IndexEntry).latest;
      if (kv !== undefined && kv.lease !== 0n) all.push([kv.lease, keyStr(kv.key)]);
    });
    yield* all;
  }

  // ---- reads ----

  /**
   * Range at a revision. Outside the apply loop, reads see durableRev; the apply
   * loop passes its own view (currentRev) through WriteTxn.range.
   */
  async range(key: Uint8Array, end: Uint8Array, opts: RangeOptions = {}, view = this.durableRev): Promise<RangeResult> {
    let at = opts.rev ?? 0n;
    if (at > view) throw Errors.FutureRev;
    if (at <= 0n) at = view;
    if (at < this.compactRev) throw Errors.Compacted;
    const { start, end: e } = rangeBounds(key, end);
    const limit = opts.limit ?? 0;
    const hits: { ki: IndexEntry; hit: IndexHit }[] = [];
    let count = 0;
    this.index.visit(start, e, (ki) => {
      const hit = ki.get(at);
      if (hit === undefined) return;
      count++;
      if (!opts.countOnly && (limit <= 0 || hits.length < limit)) hits.push({ ki: ki as IndexEntry, hit });
    });
    if (opts.countOnly) return { kvs: [], count, rev: view };
    const kvs = await this.fetch(hits);
    return { kvs, count, rev: view };
  }

  private async fetch(hits: { ki: IndexEntry; hit: IndexHit }[]): Promise<KeyValue[]> {
    const out = new Array<KeyValue | undefined>(hits.length);
    const missing: number[] = [];
    for (let i = 0; i < hits.length; i++) {
      const { ki, hit } = hits[i]!;
      const latest = ki.latest;
      if (latest !== undefined && latest.modRevision === hit.mod.main) {
        out[i] = latest;
        continue;
      }
      const p = this.pending.get(kvKey(hit.mod).toString("latin1"));
      if (p !== undefined) out[i] = p;
      else missing.push(i);
    }
    if (missing.length > 0) {
      const vals = await this.backend.getMany(missing.map((i) => kvKey(hits[i]!.hit.mod)));
      for (let j = 0; j < missing.length; j++) {
        const v = vals[j];
        // Physically compacted while we read: the revision is gone.
        if (v === undefined) throw Errors.Compacted;
        out[missing[j]!] = decodeKvRecord(v).kv;
      }
    }
    return out as KeyValue[];
  }

  /**
   * The changes made at revisions [from, to], in order, read from the backend;
   * at most limitRevs revisions. more = stopped at the limit; last = the last
   * revision returned.
   */
  async changesBetween(from: bigint, to: bigint, limitRevs?: number): Promise<{ changes: Change[]; last: bigint; more: boolean }> {
    const changes: Change[] = [];
    let last = from - 1n;
    let revs = 0;
    let more = false;
    for await (const [k, v] of this.backend.range(kvKey(mkRev(from)), kvKey(mkRev(to + 1n)))) {
      const r = decodeRev(k, 1);
      if (r.main !== last) {
        if (limitRevs !== undefined && revs >= limitRevs) {
          more = true;
          break;
        }
        revs++;
        last = r.main;
      }
      const { kv, deleted } = decodeKvRecord(v);
      changes.push({ kv, deleted });
    }
    return { changes, last, more };
  }

  // ---- writes (apply loop only) ----

  /** Starts the next write txn; ops are appended to `ops`. */
  beginWrite(ops: BatchOp[]): WriteTxn {
    return new WriteTxn(this, ops);
  }

  /** @internal called by WriteTxn */
  stage(r: Revision, kv: KeyValue, deleted: boolean, ops: BatchOp[]): void {
    const k = kvKey(r);
    ops.push({ type: "put", key: k, value: encodeKv(kv, deleted ? FLAG_TOMBSTONE : FLAG_PUT) });
    this.pending.set(k.toString("latin1"), kv);
  }

  /**
   * Records the store's current revision in a batch. A batch needs only the
   * last one (it is written atomically), so a txn after the first in the same
   * batch overwrites the earlier meta op in place instead of adding one: an
   * apply batch of N puts writes N + 2 ops, not 2N + 1.
   */
  stageMeta(ops: BatchOp[]): void {
    const op: BatchOp = { type: "put", key: META_REV, value: int64(this.currentRev) };
    const slot = this.metaSlot;
    if (slot !== undefined && slot.ops === ops && ops[slot.i] === slot.op) {
      ops[slot.i] = op;
      slot.op = op;
      return;
    }
    this.metaSlot = { ops, i: ops.length, op };
    ops.push(op);
  }
  /** Where stageMeta last put the revision, to overwrite it within the same batch. */
  private metaSlot: { ops: BatchOp[]; i: number; op: BatchOp } | undefined;

  /**
   * Called by the apply loop once the batch holding revisions <= rev is on
   * disk; returns the newly durable revisions' changes, for watchers.
   */
  markDurable(rev: bigint): { rev: bigint; changes: Change[] }[] {
    this.durableRev = rev;
    this.pending.clear();
    const out = this.unpublished;
    this.unpublished = [];
    return out;
  }

  /** @internal called by WriteTxn.end */
  recordChanges(rev: bigint, changes: Change[]): void {
    this.unpublished.push({ rev, changes });
  }

  /**
   * Validates and records a compaction at `rev` (apply loop). The scheduled
   * revision goes into this batch; the physical deletion runs after the batch
   * is durable, via startPhysicalCompaction().
   */
  scheduleCompaction(rev: bigint, ops: BatchOp[]): void {
    if (rev <= this.compactRev) throw Errors.Compacted;
    if (rev > this.currentRev) throw Errors.FutureRev;
    this.compactRev = rev;
    this.index.compact(rev);
    ops.push({ type: "put", key: metaKey("scheduled_compact_rev"), value: int64(rev) });
  }

  /** Starts (chains) the physical deletion for a durable scheduled compaction. Resolves when done. */
  startPhysicalCompaction(rev: bigint): Promise<void> {
    this.compacting = this.compacting.then(() => this.physicalCompact(rev));
    return this.compacting;
  }

  /** Waits for any compaction in progress. */
  compactionDone(): Promise<void> {
    return this.compacting;
  }

  /**
   * Deletes, in batches of 1000, every revision <= rev that the index no longer
   * references, then records the finished compaction. Safe to rerun after a crash.
   */
  private async physicalCompact(rev: bigint): Promise<void> {
    let from = kvKey(mkRev(0n));
    const end = kvKey(mkRev(rev + 1n));
    for (;;) {
      const ops: BatchOp[] = [];
      let lastKey: Buffer | undefined;
      for await (const [k, v] of this.backend.range(from, end, { limit: 1000 })) {
        lastKey = k;
        const r = decodeRev(k, 1);
        const { kv } = decodeKvRecord(v);
        const ki = this.index.getIndex(keyStr(kv.key));
        if (ki === undefined || !ki.has(r)) ops.push({ type: "del", key: k });
      }
      if (lastKey === undefined) break;
      await this.backend.write(ops, false);
      from = Buffer.concat([lastKey, Buffer.from([0])]);
      // yield to the event loop between batches
      await new Promise((r) => setImmediate(r));
    }
    await this.backend.write([{ type: "put", key: metaKey("compact_rev"), value: int64(rev) }], true);
    if (rev > this.finishedCompactRev) this.finishedCompactRev = rev;
  }
}

/**
 * One atomic write: every change gets main revision = store.currentRev + 1 and
 * the next sub revision. end() commits the revision if anything changed.
 */
export class WriteTxn {
  readonly changes: Change[] = [];
  private readonly beginRev: bigint;

  constructor(
    private readonly store: MvccStore,
    private readonly ops: BatchOp[],
  ) {
    this.beginRev = store.currentRev;
  }

  /** The revision this txn's changes get. */
  get rev(): bigint {
    return this.beginRev + 1n;
  }

  /** True once this txn has changed anything. */
  get changed(): boolean {
    return this.changes.length > 0;
  }

  /** Reads see this txn's own earlier changes. */
  range(key: Uint8Array, end: Uint8Array, opts: RangeOptions = {}): Promise<RangeResult> {
    return this.store.range(key, end, opts, this.changed ? this.beginRev + 1n : this.beginRev);
  }

  /** The current value of one key as this txn sees it (synchronous: current state is cached). */
  current(key: Uint8Array): KeyValue | undefined {
    const ki = this.store.index.getIndex(keyStr(key)) as IndexEntry | undefined;
    return ki?.latest;
  }

  put(key: Uint8Array, value: Uint8Array, lease: bigint): void {
    const ks = keyStr(key);
    const ki = this.store.index.ensure(ks) as IndexEntry;
    const prev = ki.latest;
    const r = mkRev(this.rev, BigInt(this.changes.length));
    const kv = create(KeyValueSchema, {
      key: Buffer.from(key),
      value: Buffer.from(value),
      createRevision: prev !== undefined ? prev.createRevision : r.main,
      modRevision: r.main,
      version: prev !== undefined ? prev.version + 1n : 1n,
      lease,
    });
    ki.put(r);
    ki.latest = kv;
    this.store.stage(r, kv, false, this.ops);
    if (prev !== undefined && prev.lease !== 0n && prev.lease !== lease) this.store.leaseHooks.detach(prev.lease, ks);
    if (lease !== 0n && (prev === undefined || prev.lease !== lease)) this.store.leaseHooks.attach(lease, ks);
    this.changes.push(prev === undefined ? { kv, deleted: false } : { kv, deleted: false, prev });
  }

  /** Deletes every live key in [key, end); returns the deleted key-values (before deletion). */
  deleteRange(key: Uint8Array, end: Uint8Array): KeyValue[] {
    const { start, end: e } = rangeBounds(key, end);
    const victims: IndexEntry[] = [];
    this.store.index.visit(start, e, (ki) => {
      if ((ki as IndexEntry).latest !== undefined) victims.push(ki as IndexEntry);
    });
    const deleted: KeyValue[] = [];
    for (const ki of victims) {
      const prev = ki.latest!;
      const r = mkRev(this.rev, BigInt(this.changes.length));
      const tomb = create(KeyValueSchema, { key: ki.key, modRevision: r.main });
      ki.tombstone(r);
      ki.latest = undefined;
      this.store.stage(r, tomb, true, this.ops);
      if (prev.lease !== 0n) this.store.leaseHooks.detach(prev.lease, ki.name);
      this.changes.push({ kv: tomb, deleted: true, prev });
      deleted.push(prev);
    }
    return deleted;
  }

  /** Finishes the txn; returns the store revision after it. */
  end(): bigint {
    if (this.changes.length > 0) {
      this.store.currentRev = this.beginRev + 1n;
      this.store.stageMeta(this.ops);
      this.store.recordChanges(this.store.currentRev, this.changes);
    }
    return this.store.currentRev;
  }
}
