// Applies log entries (InternalRequest) to the store, the lessor and the
// alarms, in log order. This is the replicated state machine: given the same
// entries, every member reaches the same state and the same responses.
//
// Every request is checked completely before it changes anything (etcd's
// checkTxn/checkPut), so a request either applies whole or fails with an
// error and no effect. An exception after a change has been made means the
// in-memory state can no longer be trusted: the caller treats it as fatal.

import { create } from "@bufbuild/protobuf";
import {
  AlarmMemberSchema,
  AlarmRequest_AlarmAction,
  AlarmResponseSchema,
  AlarmType,
  Compare_CompareResult as CmpResult,
  Compare_CompareTarget as CmpTarget,
  CompactionResponseSchema,
  DeleteRangeResponseSchema,
  LeaseGrantResponseSchema,
  LeaseRevokeResponseSchema,
  PutResponseSchema,
  ResponseHeaderSchema,
  ResponseOpSchema,
  TxnResponseSchema,
  type AlarmMember,
  type Compare,
  type DeleteRangeRequest,
  type PutRequest,
  type RequestOp,
  type ResponseOp,
  type TxnRequest,
  type TxnResponse,
} from "../../gen/etcdserverpb/rpc_pb.js";
import type { InternalRequest } from "../../gen/etcdts/internal_pb.js";
import type { KeyValue } from "../../gen/mvccpb/kv_pb.js";
import type { Message } from "@bufbuild/protobuf";
import { Errors } from "../errors.js";
import type { Lessor } from "../lease/lessor.js";
import { NS_ALARM, type BatchOp } from "../mvcc/backend.js";
import { keyStr } from "../mvcc/key_index.js";
import { rangeBounds, type MvccStore, type WriteTxn } from "../mvcc/store.js";
import { executeRange } from "./range.js";

/** What applying one entry produced. */
export interface ApplyResult {
  /** The response (header.revision set; cluster/member/term filled by the API edge). */
  resp?: Message;
  err?: Error;
  /** A compaction to run physically once this entry is durable. */
  compactRev?: bigint;
}

/** Raised alarms, persisted in the backend under 'a'. */
export class AlarmStore {
  private readonly alarms = new Map<string, AlarmMember>();

  static keyOf(member: bigint, type: AlarmType): Buffer {
    const b = Buffer.allocUnsafe(13);
    b[0] = NS_ALARM;
    b.writeBigUInt64BE(member, 1);
    b.writeUInt32BE(type, 9);
    return b;
  }

  clear(): void {
    this.alarms.clear();
  }

  load(key: Buffer): void {
    const m = create(AlarmMemberSchema, { memberID: key.readBigUInt64BE(1), alarm: key.readUInt32BE(9) });
    this.alarms.set(key.toString("hex"), m);
  }

  activate(member: bigint, type: AlarmType, ops: BatchOp[]): AlarmMember | undefined {
    const k = AlarmStore.keyOf(member, type);
    const id = k.toString("hex");
    if (this.alarms.has(id)) return undefined;
    const m = create(AlarmMemberSchema, { memberID: member, alarm: type });
    this.alarms.set(id, m);
    ops.push({ type: "put", key: k, value: Buffer.alloc(0) });
    return m;
  }

  deactivate(member: bigint, type: AlarmType, ops: BatchOp[]): AlarmMember | undefined {
    const k = AlarmStore.keyOf(member, type);
    const m = this.alarms.get(k.toString("hex"));
    if (m === undefined) return undefined;
    this.alarms.delete(k.toString("hex"));
    ops.push({ type: "del", key: k });
    return m;
  }

  /** All alarms (type NONE) or those of one type. */
  get(type: AlarmType = AlarmType.NONE): AlarmMember[] {
    return [...this.alarms.values()].filter((a) => type === AlarmType.NONE || a.alarm === type);
  }

  has(type: AlarmType): boolean {
    return this.get(type).length > 0;
  }
}

function header(rev: bigint) {
  return create(ResponseHeaderSchema, { revision: rev });
}

function cmpBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class Applier {
  constructor(
    private readonly store: MvccStore,
    private readonly lessor: Lessor,
    readonly alarms: AlarmStore,
  ) {}

  async apply(entry: InternalRequest, ops: BatchOp[]): Promise<ApplyResult> {
    const r = entry.request;
    try {
      switch (r.case) {
        case "put": {
          this.checkSpace();
          this.checkPut(r.value);
          const w = this.store.beginWrite(ops);
          const prev = this.put(w, r.value);
          const rev = w.end();
          return { resp: create(PutResponseSchema, { header: header(rev), prevKv: r.value.prevKv ? prev : undefined }) };
        }
        case "deleteRange": {
          const w = this.store.beginWrite(ops);
          const resp = this.deleteRange(w, r.value);
          resp.header = header(w.end());
          return { resp };
        }
        case "txn":
          return { resp: await this.txn(r.value, ops) };
        case "compaction": {
          this.store.scheduleCompaction(r.value.revision, ops);
          return { resp: create(CompactionResponseSchema, { header: header(this.store.currentRev) }), compactRev: r.value.revision };
        }
        case "leaseGrant": {
          if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.NoSpace;
          const l = this.lessor.grant(r.value.ID, r.value.TTL, ops);
          return { resp: create(LeaseGrantResponseSchema, { header: header(this.store.currentRev), ID: l.id, TTL: l.ttl }) };
        }
        case "leaseRevoke": {
          const l = this.lessor.lookup(r.value.ID);
          if (l === undefined) throw Errors.LeaseNotFound;
          const w = this.store.beginWrite(ops);
          // Sorted, so every member deletes in the same order.
          for (const k of [...l.keys].sort()) {
            const kb = Buffer.from(k, "latin1");
            w.deleteRange(kb, new Uint8Array(0));
          }
          this.lessor.revoke(l.id, ops);
          return { resp: create(LeaseRevokeResponseSchema, { header: header(w.end()) }) };
        }
        case "alarm": {
          const a = r.value;
          const resp = create(AlarmResponseSchema, { header: header(this.store.currentRev) });
          if (a.action === AlarmRequest_AlarmAction.GET) resp.alarms = this.alarms.get(a.alarm);
          else if (a.action === AlarmRequest_AlarmAction.ACTIVATE) {
            if (a.alarm === AlarmType.NONE) return { resp };
            const m = this.alarms.activate(a.memberID, a.alarm, ops);
            if (m !== undefined) resp.alarms = [m];
          } else if (a.action === AlarmRequest_AlarmAction.DEACTIVATE) {
            const m = this.alarms.deactivate(a.memberID, a.alarm, ops);
            if (m !== undefined) resp.alarms = [m];
          }
          return { resp };
        }
        case "leaseCheckpoint":
          return { resp: create(LeaseRevokeResponseSchema, { header: header(this.store.currentRev) }) };
        default:
          throw new Error("applier: empty request");
      }
    } catch (err) {
      return { err: err as Error };
    }
  }

  private checkSpace(): void {
    if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.NoSpace;
  }

  private checkPut(p: PutRequest): void {
    if (p.ignoreValue || p.ignoreLease) {
      const cur = this.currentValue(p.key);
      if (cur === undefined) throw Errors.KeyNotFound;
    }
    if (p.lease !== 0n && !p.ignoreLease && this.lessor.lookup(p.lease) === undefined) throw Errors.LeaseNotFound;
  }

  private currentValue(key: Uint8Array): KeyValue | undefined {
    const ki = this.store.index.getIndex(keyStr(key)) as { latest?: KeyValue } | undefined;
    return ki?.latest;
  }

  private put(w: WriteTxn, p: PutRequest): KeyValue | undefined {
    const prev = w.current(p.key);
    const value = p.ignoreValue ? prev!.value : p.value;
    const lease = p.ignoreLease ? prev!.lease : p.lease;
    w.put(p.key, value, lease);
    return prev;
  }

  private deleteRange(w: WriteTxn, d: DeleteRangeRequest) {
    const deleted = w.deleteRange(d.key, d.rangeEnd);
    return create(DeleteRangeResponseSchema, { deleted: BigInt(deleted.length), prevKvs: d.prevKv ? deleted : [] });
  }

  // ---- txn ----

  /** Every key in [key, range_end) at the current state; VALUE on no key fails, others compare with zeros. */
  private compareHolds(c: Compare): boolean {
    const kvs: KeyValue[] = [];
    const { start, end } = rangeBounds(c.key, c.rangeEnd);
    this.store.index.visit(start, end, (ki) => {
      const kv = (ki as { latest?: KeyValue }).latest;
      if (kv !== undefined) kvs.push(kv);
    });
    if (kvs.length === 0) {
      if (c.target === CmpTarget.VALUE) return false;
      return this.compareKv(c, undefined);
    }
    return kvs.every((kv) => this.compareKv(c, kv));
  }

  private compareKv(c: Compare, kv: KeyValue | undefined): boolean {
    let r: number;
    const u = c.targetUnion;
    switch (c.target) {
      case CmpTarget.VALUE:
        r = Buffer.compare(kv?.value ?? new Uint8Array(0), u.case === "value" ? u.value : new Uint8Array(0));
        break;
      case CmpTarget.CREATE:
        r = cmpBig(kv?.createRevision ?? 0n, u.case === "createRevision" ? u.value : 0n);
        break;
      case CmpTarget.MOD:
        r = cmpBig(kv?.modRevision ?? 0n, u.case === "modRevision" ? u.value : 0n);
        break;
      case CmpTarget.VERSION:
        r = cmpBig(kv?.version ?? 0n, u.case === "version" ? u.value : 0n);
        break;
      case CmpTarget.LEASE:
        r = cmpBig(kv?.lease ?? 0n, u.case === "lease" ? u.value : 0n);
        break;
      default:
        return false;
    }
    switch (c.result) {
      case CmpResult.EQUAL: return r === 0;
      case CmpResult.NOT_EQUAL: return r !== 0;
      case CmpResult.GREATER: return r > 0;
      case CmpResult.LESS: return r < 0;
      default: return false;
    }
  }

  /** The chosen branch of a txn and of every nested txn in it, decided on the state before the txn. */
  private path(t: TxnRequest): Path {
    const ok = t.compare.every((c) => this.compareHolds(c));
    const ops = ok ? t.success : t.failure;
    return { ok, ops, nested: ops.map((op) => (op.request.case === "requestTxn" ? this.path(op.request.value) : undefined)) };
  }

  private checkPath(p: Path): { writes: boolean } {
    let writes = false;
    p.ops.forEach((op, i) => {
      const r = op.request;
      switch (r.case) {
        case "requestPut":
          writes = true;
          this.checkPut(r.value);
          break;
        case "requestRange": {
          const rev = r.value.revision;
          if (rev > this.store.currentRev) throw Errors.FutureRev;
          if (rev > 0n && rev < this.store.compactRev) throw Errors.Compacted;
          break;
        }
        case "requestDeleteRange":
          break;
        case "requestTxn":
          if (this.checkPath(p.nested[i]!).writes) writes = true;
          break;
        default:
          break;
      }
    });
    return { writes };
  }

  private hasPut(p: Path): boolean {
    return p.ops.some((op, i) => op.request.case === "requestPut" || (op.request.case === "requestTxn" && this.hasPut(p.nested[i]!)));
  }

  private async txn(t: TxnRequest, ops: BatchOp[]): Promise<TxnResponse> {
    const p = this.path(t);
    this.checkPath(p);
    if (this.hasPut(p)) this.checkSpace();
    const w = this.store.beginWrite(ops);
    const resp = await this.runPath(w, p);
    resp.header = header(w.end());
    return resp;
  }

  private async runPath(w: WriteTxn, p: Path): Promise<TxnResponse> {
    // Inner headers carry only a revision, as etcd's: a range the revision it
    // read at, a put the txn's revision, a delete the txn's revision if the txn
    // has changed anything by then; a nested txn's header stays empty.
    const responses: ResponseOp[] = [];
    for (let i = 0; i < p.ops.length; i++) {
      const op: RequestOp = p.ops[i]!;
      const r = op.request;
      switch (r.case) {
        case "requestRange": {
          const rr = await executeRange(r.value, (k, e, o) => w.range(k, e, o));
          responses.push(create(ResponseOpSchema, { response: { case: "responseRange", value: rr } }));
          break;
        }
        case "requestPut": {
          const prev = this.put(w, r.value);
          responses.push(create(ResponseOpSchema, {
            response: { case: "responsePut", value: create(PutResponseSchema, { header: header(w.rev), prevKv: r.value.prevKv ? prev : undefined }) },
          }));
          break;
        }
        case "requestDeleteRange": {
          const dr = this.deleteRange(w, r.value);
          dr.header = header(w.changed ? w.rev : w.rev - 1n);
          responses.push(create(ResponseOpSchema, { response: { case: "responseDeleteRange", value: dr } }));
          break;
        }
        case "requestTxn": {
          const tr = await this.runPath(w, p.nested[i]!);
          responses.push(create(ResponseOpSchema, { response: { case: "responseTxn", value: tr } }));
          break;
        }
        default:
          break;
      }
    }
    return create(TxnResponseSchema, { header: header(0n), succeeded: p.ok, responses });
  }
}

interface Path {
  ok: boolean;
  ops: RequestOp[];
  nested: (Path | undefined)[];
}
