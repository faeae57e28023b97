// Cluster membership as the apply loop keeps it: the members (with their peer
// and client URLs, learner flag) and the IDs removed for good. It changes only
// by applying committed entries (conf changes, member attribute updates), so
// every member holds the same view at the same applied index, and it is saved
// in the backend in the same batch as the entry that changed it.
//
// IDs are derived as etcd derives them (server/etcdserver/api/membership):
//   member  = first 8 bytes (big-endian) of sha1(sorted peer URLs joined + token [+ unix seconds])
//   cluster = first 8 bytes of sha1(the sorted member IDs, each 8 bytes big-endian)
// so the same flags give the same IDs as etcd.

import { createHash } from "node:crypto";
import { metaKey, type Backend, type BatchOp } from "../mvcc/backend.js";

export interface MemberInfo {
  id: bigint;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

function sha1Id(b: Buffer): bigint {
  return createHash("sha1").update(b).digest().readBigUInt64BE(0);
}

/** etcd's NewMember: `now` (unix seconds) is given for members added at runtime. */
export function memberIdFrom(peerUrls: readonly string[], token: string, nowSec?: number): bigint {
  let s = [...peerUrls].sort().join("") + token;
  if (nowSec !== undefined) s += String(nowSec);
  return sha1Id(Buffer.from(s));
}

export function clusterIdFrom(memberIds: readonly bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const b = Buffer.alloc(8 * sorted.length);
  sorted.forEach((id, i) => b.writeBigUInt64BE(id, 8 * i));
  return sha1Id(b);
}

/** The conf change context we replicate: the member, and the proposer's request id. */
export interface ConfChangeContext {
  member: { id: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean };
  reqId: string;
}

export function encodeCcContext(m: MemberInfo, reqId: bigint): Uint8Array {
  const c: ConfChangeContext = {
    member: { id: m.id.toString(), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner },
    reqId: reqId.toString(),
  };
  return new Uint8Array(Buffer.from(JSON.stringify(c)));
}

export function decodeCcContext(b: Uint8Array | undefined): { member: MemberInfo; reqId: bigint } | undefined {
  if (b === undefined || b.length === 0) return undefined;
  const c = JSON.parse(Buffer.from(b).toString("utf8")) as ConfChangeContext;
  return {
    member: { id: BigInt(c.member.id), name: c.member.name, peerURLs: c.member.peerURLs, clientURLs: c.member.clientURLs, isLearner: c.member.isLearner },
    reqId: BigInt(c.reqId),
  };
}

type Saved = { members: { id: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean }[]; removed: string[] };

export class Membership {
  readonly members = new Map<bigint, MemberInfo>();
  readonly removed = new Set<bigint>();

  static async load(b: Backend): Promise<Membership> {
    const m = new Membership();
    const v = await b.get(metaKey("members"));
    if (v !== undefined) {
      const s = JSON.parse(v.toString("utf8")) as Saved;
      for (const x of s.members) m.members.set(BigInt(x.id), { ...x, id: BigInt(x.id) });
      for (const r of s.removed) m.removed.add(BigInt(r));
    }
    return m;
  }

  /** The batch op that saves the whole view (small: a handful of members). */
  saveOp(): BatchOp {
    const s: Saved = {
      members: [...this.members.values()].map((m) => ({ ...m, id: m.id.toString() })),
      removed: [...this.removed].map(String),
    };
    return { type: "put", key: metaKey("members"), value: Buffer.from(JSON.stringify(s)) };
  }

  /** Members sorted by ID, as etcd lists them. */
  list(): MemberInfo[] {
    return [...this.members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: bigint): MemberInfo | undefined {
    return this.members.get(id);
  }

  add(m: MemberInfo): void {
    this.members.set(m.id, { ...m, peerURLs: [...m.peerURLs], clientURLs: [...m.clientURLs] });
  }

  remove(id: bigint): void {
    this.members.delete(id);
    this.removed.add(id);
  }

  promote(id: bigint): void {
    const m = this.members.get(id);
    if (m !== undefined) m.isLearner = false;
  }

  votingCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (!m.isLearner) n++;
    return n;
  }

  learnerCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (m.isLearner) n++;
    return n;
  }
}
