// The in-memory index from user key to the revisions at which it changed.
//
// A key's life is a list of generations. A generation starts with the put that
// creates the key and ends with its delete (the tombstone), which is the last
// revision of that generation; a new, empty generation then follows.
//
// Example: put(a)@2, put(a)@3, del(a)@4, put(a)@6
//   generations: [{created 2, ver 3, revs [2,3,4(tombstone)]}, {created 6, ver 1, revs [6]}]
//   get(a, at=3) -> rev 3, version 2;  get(a, at=5) -> not found;  get(a, at=7) -> rev 6, version 1
//
// Compaction at C keeps, per generation, the newest revision <= C (the state
// at C) and everything after it; a generation whose tombstone is < C is
// dropped entirely (the key did not exist at C). A tombstone exactly at C is
// kept, so that a watcher starting at C still sees that delete.
//
// Invariants: revs of a generation are strictly increasing; only the last
// generation may be empty; ver counts every revision ever added to the
// generation (compaction trims revs, not ver), so version(revs[i]) = ver - (len-1-i).

import btree from "sorted-btree";
import { ONE, type Revision } from "./revision.js";

// sorted-btree is CommonJS: under Node's ESM loader the default import is the
// exports object, whose .default is the class.
const BTree = btree.default;
type BTreeT<K, V> = import("sorted-btree").default<K, V>;

interface Generation {
  ver: bigint;
  created: Revision;
  revs: Revision[];
}

export interface IndexHit {
  /** The revision of the change visible at the asked revision. */
  mod: Revision;
  created: Revision;
  version: bigint;
}

export class KeyIndex {
  readonly generations: Generation[] = [];
  /** `name` is the key as the index orders it (keyStr: latin1). */
  constructor(readonly name: string) {}

  /**
   * The key's bytes, made on each call: only deletes need them, and one Buffer
   * kept per key was a measurable part of the index's memory with many keys.
   */
  get key(): Buffer {
    return Buffer.from(this.name, "latin1");
  }

  /** The newest revision recorded (a put or tombstone), or undefined if empty. */
  get modified(): Revision | undefined {
    for (let i = this.generations.length - 1; i >= 0; i--) {
      const g = this.generations[i]!;
      if (g.revs.length > 0) return g.revs[g.revs.length - 1];
    }
    return undefined;
  }

  /** True when the key currently exists (its last generation is open and non-empty). */
  get live(): boolean {
    const g = this.generations[this.generations.length - 1];
    return g !== undefined && g.revs.length > 0;
  }

  put(r: Revision): void {
    let g = this.generations[this.generations.length - 1];
    if (g === undefined) {
      g = { ver: 0n, created: r, revs: [] };
      this.generations.push(g);
    }
    if (g.revs.length === 0) g.created = r;
    g.revs.push(r);
    g.ver = g.ver === 0n ? ONE : g.ver + 1n;
  }

  /** Records a delete at r. Requires the key to be live. */
  tombstone(r: Revision): void {
    if (!this.live) throw new Error(`key_index: tombstone on a key that is not live: ${this.name}`);
    this.put(r);
    this.generations.push({ ver: 0n, created: r, revs: [] });
  }

  /** The key's state at revision `at` (by main revision), or undefined if it did not exist then. */
  get(at: bigint): IndexHit | undefined {
    const gens = this.generations;
    for (let gi = gens.length - 1; gi >= 0; gi--) {
      const g = gens[gi]!;
      const revs = g.revs;
      if (revs.length === 0 || revs[0]!.main > at) continue;
      const closed = gi < gens.length - 1;
      // newest rev with main <= at (binary search)
      let lo = 0, hi = revs.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (revs[mid]!.main <= at) lo = mid; else hi = mid - 1;
      }
      if (closed && lo === revs.length - 1) return undefined; // the tombstone: deleted at `at`
      return { mod: revs[lo]!, created: g.created, version: g.ver - BigInt(revs.length - 1 - lo) };
    }
    return undefined;
  }

  /** True if revision r is still referenced by this index (not compacted away). */
  has(r: Revision): boolean {
    for (const g of this.generations) {
      for (const x of g.revs) if (x.main === r.main && x.sub === r.sub) return true;
    }
    return false;
  }

  /**
   * The revision a compaction at `at` would keep as the key's state at `at`,
   * in etcd's terms (keyIndex.keep): in the first generation whose last
   * revision is at or after `at` (else the last generation), the newest
   * revision <= at — unless that is the tombstone closing the generation, in
   * which case nothing. Used by HashKV, whose hash must equal etcd's.
   */
  keepAt(at: bigint): Revision | undefined {
    const gens = this.generations;
    if (gens.length === 0 || (gens.length === 1 && gens[0]!.revs.length === 0)) return undefined;
    let gi = 0;
    while (gi < gens.length - 1) {
      const g = gens[gi]!;
      const last = g.revs[g.revs.length - 1];
      if (last !== undefined && last.main >= at) break;
      gi++;
    }
    const g = gens[gi]!;
    for (let i = g.revs.length - 1; i >= 0; i--) {
      const r = g.revs[i]!;
      if (r.main <= at) return i === g.revs.length - 1 && gi !== gens.length - 1 ? undefined : r;
    }
    return undefined;
  }

  /** Compacts at C (see the type comment). Returns true if the index is now empty. */
  compact(c: bigint): boolean {
    const gens = this.generations;
    const kept: Generation[] = [];
    for (let gi = 0; gi < gens.length; gi++) {
      const g = gens[gi]!;
      const closed = gi < gens.length - 1;
      if (g.revs.length === 0) {
        if (!closed) kept.push(g);
        continue;
      }
      const last = g.revs[g.revs.length - 1]!;
      if (closed && last.main < c) continue; // the whole generation died before C
      let i = 0;
      while (i + 1 < g.revs.length && g.revs[i + 1]!.main <= c) i++;
      if (i > 0) g.revs = g.revs.slice(i);
      kept.push(g);
    }
    gens.length = 0;
    gens.push(...kept);
    return gens.length === 0 || (gens.length === 1 && gens[0]!.revs.length === 0);
  }
}

/** Binary keys as latin1 strings: JS string order on them is byte order. */
export function keyStr(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString("latin1");
}

export class TreeIndex {
  private readonly tree: BTreeT<string, KeyIndex> = new BTree<string, KeyIndex>();

  get size(): number {
    return this.tree.size;
  }

  getIndex(k: string): KeyIndex | undefined {
    return this.tree.get(k);
  }

  /** The index for k, created if missing. */
  ensure(k: string): KeyIndex {
    let ki = this.tree.get(k);
    if (ki === undefined) {
      ki = new KeyIndex(k);
      this.tree.set(k, ki);
    }
    return ki;
  }

  /**
   * ensure(), for a caller that expects k to be new (a start-up load, where most
   * keys have one record): one insert attempt instead of a lookup and an insert.
   */
  ensureLikelyNew(k: string): KeyIndex {
    const ki = new KeyIndex(k);
    return this.tree.setIfNotPresent(k, ki) ? ki : this.tree.get(k)!;
  }

  delete(k: string): void {
    this.tree.delete(k);
  }

  /**
   * Visits key indexes in [start, end) in key order; end === undefined means a
   * single key, end === "" means "to the end of the key space". Stop early by
   * returning false from fn.
   */
  visit(start: string, end: string | undefined, fn: (ki: KeyIndex) => boolean | void): void {
    if (end === undefined) {
      const ki = this.tree.get(start);
      if (ki !== undefined) fn(ki);
      return;
    }
    let stopped = false;
    const hi = end === "" ? undefined : end;
    // forRange with includeHigh=false visits [lo, hi)
    if (hi === undefined) {
      for (const [, ki] of this.tree.entries(start)) {
        if (fn(ki) === false) { stopped = true; break; }
      }
    } else {
      if (start >= hi) return;
      this.tree.forRange(start, hi, false, (_k, ki) => {
        if (stopped) return { break: true };
        if (fn(ki) === false) { stopped = true; return { break: true }; }
        return undefined;
      });
    }
  }

  /** The revisions ("main_sub") a compaction at `at` would keep (etcd's treeIndex.Keep). */
  keep(at: bigint): Set<string> {
    const out = new Set<string>();
    for (const [, ki] of this.tree.entries()) {
      const r = ki.keepAt(at);
      if (r !== undefined) out.add(`${r.main}_${r.sub}`);
    }
    return out;
  }

  /** Compacts every key index at c; drops keys left empty. */
  compact(c: bigint): void {
    const empty: string[] = [];
    this.tree.forEachPair((k, ki) => {
      if (ki.compact(c)) empty.push(k);
    });
    for (const k of empty) this.tree.delete(k);
  }
}
