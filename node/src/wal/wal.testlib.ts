// Shared helpers of the WAL tests: entries, a reference model of what a sequence of
// calls means, and state fingerprints to compare a replay against the model.

import { posix } from "node:path";
import { EMPTY_HARD_STATE, isEmptyHardState, type Entry, type HardState, type SnapshotMetadata } from "../raft/types.js";
import { SimFs } from "./sim_fs.js";
import type { WalState } from "./wal.js";

export const META = { memberId: 0x8e9e05c52164694dn, clusterId: 0xcdf818194e3a8c32n };
export const ZERO_SNAP: SnapshotMetadata = { index: 0n, term: 0n, confState: { voters: [], learners: [] } };

export function ent(index: bigint | number, term: bigint | number, data = `e${index}`): Entry {
  return { index: BigInt(index), term: BigInt(term), type: "normal", data: new TextEncoder().encode(data) };
}

export function ents(from: number, to: number, term: number, tag = ""): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(ent(i, term, `${tag}${i}`));
  return out;
}

export function hs(term: number | bigint, vote: number | bigint, commit: number | bigint): HardState {
  return { term: BigInt(term), vote: BigInt(vote), commit: BigInt(commit) };
}

export function snapMeta(index: number | bigint, term: number | bigint, voters: bigint[] = [1n, 2n, 3n]): SnapshotMetadata {
  return { index: BigInt(index), term: BigInt(term), confState: { voters, learners: [] } };
}

/** The log a sequence of calls describes, computed the obvious way. */
export class Model {
  /** The newest hard state given (what the next call is checked against). */
  hardState: HardState = EMPTY_HARD_STATE;
  /**
   * The hard state replay gives back: a save without entries that changes only the
   * commit index is not written (raft's must-sync rule); the next written batch
   * (entries, a marker, or a term or vote change) carries the newest one.
   */
  durableHardState: HardState = EMPTY_HARD_STATE;
  snapshot: SnapshotMetadata = ZERO_SNAP;
  entries: Entry[] = [];

  clone(): Model {
    const m = new Model();
    m.hardState = this.hardState;
    m.durableHardState = this.durableHardState;
    m.snapshot = this.snapshot;
    m.entries = [...this.entries];
    return m;
  }

  static from(s: WalState): Model {
    const m = new Model();
    m.hardState = s.hardState;
    m.durableHardState = s.hardState;
    m.snapshot = s.snapshot;
    m.entries = [...s.entries];
    return m;
  }

  get lastIndex(): bigint {
    return this.snapshot.index + BigInt(this.entries.length);
  }

  termAt(i: bigint): bigint | undefined {
    if (i === this.snapshot.index) return this.snapshot.term;
    return this.entries[Number(i - this.snapshot.index - 1n)]?.term;
  }

  save(h: HardState | undefined, es: readonly Entry[]): void {
    const first = es[0];
    if (first !== undefined) {
      this.entries.length = Number(first.index - this.snapshot.index - 1n);
      this.entries.push(...es);
    }
    const prev = this.hardState;
    if (h !== undefined && !isEmptyHardState(h)) this.hardState = h;
    const h2 = this.hardState;
    if (es.length > 0 || h2.term !== prev.term || h2.vote !== prev.vote) this.durableHardState = h2;
  }

  saveSnapshot(m: SnapshotMetadata): void {
    if (this.termAt(m.index) === m.term) this.entries = this.entries.slice(Number(m.index - this.snapshot.index));
    else this.entries = [];
    this.snapshot = m;
    this.durableHardState = this.hardState;
  }

  key(): string {
    return stateKey({ hardState: this.durableHardState, snapshot: this.snapshot, entries: this.entries });
  }
}

/** A printable fingerprint of a log state, for equality checks with readable diffs. */
export function stateKey(s: { hardState: HardState; snapshot: SnapshotMetadata; entries: readonly Entry[] }): string {
  const h = s.hardState;
  const sn = s.snapshot;
  const es = s.entries.map((e) => `${e.term}/${e.index}${e.type === "confChange" ? "c" : ""}:${Buffer.from(e.data).toString("hex")}`);
  return `hs ${h.term}/${h.vote}/${h.commit} snap ${sn.term}/${sn.index}[${sn.confState.voters.join(",")}|${sn.confState.learners.join(",")}] ents ${es.join(" ")}`;
}

/** A new SimFs holding durable copies of every file under `dir` of `from` (as they are now). */
export async function copyFs(from: SimFs, dir: string, edit?: (name: string, data: Uint8Array) => Uint8Array | undefined): Promise<SimFs> {
  const to = new SimFs();
  await to.mkdirp(dir);
  for (let d = posix.dirname(dir); ; d = posix.dirname(d)) {
    await to.syncDir(d);
    if (d === "/") break;
  }
  for (const n of await from.readdir(dir)) {
    const data = await from.readFile(posix.join(dir, n));
    const out = edit === undefined ? data : edit(n, data);
    if (out !== undefined) to.setBytes(posix.join(dir, n), out);
  }
  return to;
}

export async function segmentNames(fs: { readdir(d: string): Promise<string[]> }, dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((n) => n.endsWith(".wal"));
}

/** A fresh SimFs with a durable parent directory for the WAL. */
export async function simWithDir(parent = "/data"): Promise<SimFs> {
  const fs = new SimFs();
  await fs.mkdirp(parent);
  await fs.syncDir("/");
  return fs;
}
