// Output printers: one per --write-out format, with etcdctl 3.4's exact output.
//
// simple   — etcdctl's human format (printer_simple.go)
// json     — Go's encoding/json of the response structs etcdctl prints: gogo
//            protobuf messages (proto field names, zero values omitted, 64-bit
//            ints as JSON numbers, bytes as base64, enums as numbers), and for
//            lease/watch the clientv3 wrapper structs (see jsonOf* below)
// fields   — `"Name" : value` lines (printer_fields.go)
// protobuf — the raw binary message
// table    — tablewriter tables; only member list and endpoint health/status
//
// Unsupported combinations throw the same errors etcdctl prints.

import { create, ScalarType, toBinary } from "@bufbuild/protobuf";
import type { DescField, DescMessage, DescOneof, Message } from "@bufbuild/protobuf";

import {
  AlarmResponseSchema, AlarmType, DeleteRangeResponseSchema, LeaseRevokeResponseSchema, MemberListResponseSchema,
  PutResponseSchema, RangeResponseSchema, ResponseHeaderSchema, StatusResponseSchema, TxnResponseSchema,
  WatchResponseSchema,
} from "../../gen/etcdserverpb/rpc_pb.js";
import type {
  AlarmMember, AlarmResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
  LeaseRevokeResponse, LeaseTimeToLiveResponse, MemberListResponse, PutResponse, RangeResponse, ResponseHeader,
  StatusResponse, TxnResponse, WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { EventSchema, Event_EventType } from "../../gen/mvccpb/kv_pb.js";
import type { Event, KeyValue } from "../../gen/mvccpb/kv_pb.js";

import { badFeature } from "./exit.js";
import { goJsonString, goQuote, hex64, humanizeBytes, renderTable } from "./gofmt.js";

export const OUTPUT_FORMATS = ["simple", "json", "protobuf", "table", "fields"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** One endpoint's health, as `endpoint health` reports it. */
export interface EpHealth {
  readonly ep: string;
  readonly health: boolean;
  /** Go duration text, e.g. "1.2ms"; "" if never measured. */
  readonly took: string;
  readonly error: string;
}

export interface EpStatus {
  readonly ep: string;
  readonly resp: StatusResponse;
}

/** Where printers write. Bytes go out unchanged (keys and values are arbitrary bytes). */
export interface Sink {
  out(data: string | Uint8Array): void;
  err(data: string): void;
}

export const processSink: Sink = {
  out: (d) => { process.stdout.write(d); },
  err: (d) => { process.stderr.write(d); },
};

export interface Printer {
  get(r: RangeResponse): void;
  put(r: PutResponse): void;
  del(r: DeleteRangeResponse): void;
  txn(r: TxnResponse): void;
  /** One watch response as the Go client delivers it (events, or a progress/cancel notice). */
  watch(r: WatchResponse): void;
  grant(r: LeaseGrantResponse): void;
  revoke(id: bigint, r: LeaseRevokeResponse): void;
  keepAlive(r: LeaseKeepAliveResponse): void;
  timeToLive(r: LeaseTimeToLiveResponse, keys: boolean): void;
  leases(r: LeaseLeasesResponse): void;
  memberList(r: MemberListResponse): void;
  endpointHealth(hs: EpHealth[]): void;
  endpointStatus(ss: EpStatus[]): void;
  alarm(r: AlarmResponse): void;
}

export interface PrinterOptions {
  readonly hex: boolean;
  /** get --print-value-only (simple format only). */
  valueOnly?: boolean;
}

export function newPrinter(format: string, opts: PrinterOptions, sink: Sink = processSink): Printer | undefined {
  switch (format) {
    case "simple": return new SimplePrinter(opts, sink);
    case "json": return new JsonPrinter(sink);
    case "fields": return new FieldsPrinter(sink);
    case "protobuf": return new ProtobufPrinter(sink);
    case "table": return new TablePrinter(sink);
    default: return undefined;
  }
}

const unsupported = (format: string): never => {
  throw badFeature(`${format} not supported as output format`);
};

// ---------------------------------------------------------------------------
// Tables shared by simple and table output

function memberListTable(r: MemberListResponse): { hdr: string[]; rows: string[][] } {
  const hdr = ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"];
  const rows = r.members.map((m) => [
    hex64(m.ID),
    m.name.length === 0 ? "unstarted" : "started",
    m.name,
    m.peerURLs.join(","),
    m.clientURLs.join(","),
    String(m.isLearner),
  ]);
  return { hdr, rows };
}

function endpointStatusTable(ss: EpStatus[]): { hdr: string[]; rows: string[][] } {
  const hdr = ["endpoint", "ID", "version", "db size", "is leader", "is learner", "raft term", "raft index", "raft applied index", "errors"];
  const rows = ss.map(({ ep, resp }) => [
    ep,
    hex64(resp.header?.memberId ?? 0n),
    resp.version,
    humanizeBytes(resp.dbSize < 0n ? 0n : resp.dbSize),
    String(resp.leader === (resp.header?.memberId ?? 0n)),
    String(resp.isLearner),
    String(resp.raftTerm),
    String(resp.raftIndex),
    String(resp.raftAppliedIndex),
    resp.errors.join(", "),
  ]);
  return { hdr, rows };
}

function endpointHealthTable(hs: EpHealth[]): { hdr: string[]; rows: string[][] } {
  return {
    hdr: ["endpoint", "health", "took", "error"],
    rows: hs.map((h) => [h.ep, String(h.health), h.took, h.error]),
  };
}

/** fmt's %+v of an AlarmMember: the message's compact text form ("memberID:1 alarm:NOSPACE "). */
function alarmText(a: AlarmMember): string {
  let s = "";
  if (a.memberID !== 0n) s += `memberID:${a.memberID} `;
  if (a.alarm !== AlarmType.NONE) s += `alarm:${AlarmType[a.alarm] ?? a.alarm} `;
  return s;
}

function eventTypeName(t: Event_EventType): string {
  return Event_EventType[t] ?? String(t);
}

// ---------------------------------------------------------------------------
// simple

class SimplePrinter implements Printer {
  constructor(private readonly opts: PrinterOptions, private readonly sink: Sink) {}

  private line(s: string): void {
    this.sink.out(s + "\n");
  }

  private kv(kv: KeyValue | undefined): void {
    const key = kv?.key ?? new Uint8Array();
    const value = kv?.value ?? new Uint8Array();
    const show = (b: Uint8Array): Uint8Array | string =>
      this.opts.hex ? [...b].map((x) => "\\x" + x.toString(16).padStart(2, "0")).join("") : b;
    if (!this.opts.valueOnly) { this.sink.out(show(key)); this.sink.out("\n"); }
    this.sink.out(show(value));
    this.sink.out("\n");
  }

  get(r: RangeResponse): void {
    for (const kv of r.kvs) this.kv(kv);
  }
  put(r: PutResponse): void {
    this.line("OK");
    if (r.prevKv) this.kv(r.prevKv);
  }
  del(r: DeleteRangeResponse): void {
    this.line(String(r.deleted));
    for (const kv of r.prevKvs) this.kv(kv);
  }
  txn(r: TxnResponse): void {
    this.line(r.succeeded ? "SUCCESS" : "FAILURE");
    for (const op of r.responses) {
      this.line("");
      switch (op.response.case) {
        case "responseDeleteRange": this.del(op.response.value); break;
        case "responsePut": this.put(op.response.value); break;
        case "responseRange": this.get(op.response.value); break;
        default: this.line(`unexpected response ${op.response.case ?? "<nil>"}`);
      }
    }
  }
  watch(r: WatchResponse): void {
    for (const e of r.events) {
      this.line(eventTypeName(e.type));
      if (e.prevKv) this.kv(e.prevKv);
      this.kv(e.kv);
    }
  }
  grant(r: LeaseGrantResponse): void {
    this.line(`lease ${hex64(r.ID, 16)} granted with TTL(${r.TTL}s)`);
  }
  revoke(id: bigint): void {
    this.line(`lease ${hex64(id, 16)} revoked`);
  }
  keepAlive(r: LeaseKeepAliveResponse): void {
    this.line(`lease ${hex64(r.ID, 16)} keepalived with TTL(${r.TTL})`);
  }
  timeToLive(r: LeaseTimeToLiveResponse, keys: boolean): void {
    if (r.grantedTTL === 0n && r.TTL === -1n) {
      this.line(`lease ${hex64(r.ID, 16)} already expired`);
      return;
    }
    let txt = `lease ${hex64(r.ID, 16)} granted with TTL(${r.grantedTTL}s), remaining(${r.TTL}s)`;
    if (keys) txt += `, attached keys([${r.keys.map((k) => Buffer.from(k).toString("latin1")).join(" ")}])`;
    this.sink.out(Buffer.concat([Buffer.from(txt, "latin1"), Buffer.from("\n")]));
  }
  leases(r: LeaseLeasesResponse): void {
    this.line(`found ${r.leases.length} leases`);
    for (const l of r.leases) this.line(hex64(l.ID, 16));
  }
  memberList(r: MemberListResponse): void {
    for (const row of memberListTable(r).rows) this.line(row.join(", "));
  }
  endpointHealth(hs: EpHealth[]): void {
    for (const h of hs) {
      if (h.error === "") this.sink.err(`${h.ep} is healthy: successfully committed proposal: took = ${h.took}\n`);
      else this.sink.err(`${h.ep} is unhealthy: failed to commit proposal: ${h.error}\n`);
    }
  }
  endpointStatus(ss: EpStatus[]): void {
    for (const row of endpointStatusTable(ss).rows) this.line(row.join(", "));
  }
  alarm(r: AlarmResponse): void {
    for (const a of r.alarms) this.line(alarmText(a));
  }
}

// ---------------------------------------------------------------------------
// json

/** Fields added to etcd's protos after 3.4; etcdctl 3.4 does not know them, so never prints them. */
const newerThan34 = new Set(["etcdserverpb.StatusResponse.storageVersion", "etcdserverpb.StatusResponse.dbSizeQuota",
  "etcdserverpb.StatusResponse.downgradeInfo"]);

/** protoc-gen-gogo's Go identifier for a proto name ("response_put" → "ResponsePut"). */
function goName(protoName: string): string {
  return protoName.split("_").filter((p) => p.length > 0).map((p) => (p[0] ?? "").toUpperCase() + p.slice(1)).join("");
}

function scalarJson(type: ScalarType, v: unknown): string {
  switch (type) {
    case ScalarType.STRING: return goJsonString(v as string);
    case ScalarType.BYTES: return `"${Buffer.from(v as Uint8Array).toString("base64")}"`;
    case ScalarType.BOOL: return v ? "true" : "false";
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT: return String(v);
    default: return String(v); // integers, including bigint
  }
}

function isZeroScalar(type: ScalarType, v: unknown): boolean {
  if (type === ScalarType.BYTES) return (v as Uint8Array).length === 0;
  return v === 0 || v === 0n || v === false || v === "";
}

/**
 * encoding/json of a gogo-generated Go struct: fields in declaration order,
 * each under its proto name with omitempty; a oneof as
 * "<OneofGoName>":{"<FieldGoName>":value} (Go's interface field, no omitempty).
 */
export function messageJson(desc: DescMessage, msg: Message): string {
  const rec = msg as unknown as Record<string, unknown>;
  const parts: string[] = [];
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      parts.push(oneofJson(member, rec[member.localName] as { case?: string; value?: unknown }));
      continue;
    }
    if (newerThan34.has(`${desc.typeName}.${member.name}`)) continue;
    const v = rec[member.localName];
    const j = fieldJson(member, v, true);
    if (j !== undefined) parts.push(`${goJsonString(member.name)}:${j}`);
  }
  return `{${parts.join(",")}}`;
}

function oneofJson(oneof: DescOneof, v: { case?: string; value?: unknown } | undefined): string {
  const key = goJsonString(goName(oneof.name));
  if (!v || v.case === undefined) return `${key}:null`;
  const field = oneof.fields.find((f) => f.localName === v.case);
  if (!field) return `${key}:null`;
  return `${key}:{${goJsonString(goName(field.name))}:${fieldJson(field, v.value, false) ?? "null"}}`;
}

/** JSON of one field's value; undefined when omitempty drops it. */
function fieldJson(f: DescField, v: unknown, omitEmpty: boolean): string | undefined {
  switch (f.fieldKind) {
    case "scalar":
      if (omitEmpty && isZeroScalar(f.scalar, v)) return undefined;
      return scalarJson(f.scalar, v);
    case "enum":
      if (omitEmpty && v === 0) return undefined;
      return String(v);
    case "message":
      if (v === undefined) return omitEmpty ? undefined : "null";
      return messageJson(f.message, v as Message);
    case "list": {
      const arr = v as unknown[];
      if (arr.length === 0) return omitEmpty ? undefined : "null";
      const el = (x: unknown): string =>
        f.listKind === "message" ? messageJson(f.message, x as Message)
        : f.listKind === "enum" ? String(x)
        : scalarJson(f.scalar, x);
      return `[${arr.map(el).join(",")}]`;
    }
    case "map":
      return undefined; // etcd's client API has no map fields
  }
}

/** The fields of an embedded *pb.ResponseHeader, flattened into the outer struct (clientv3 lease types). */
function embeddedHeader(h: ResponseHeader | undefined): string[] {
  if (!h) return [];
  const j = messageJson(ResponseHeaderSchema, h);
  return j === "{}" ? [] : [j.slice(1, -1)];
}

const jsonBytesList = (list: Uint8Array[]): string =>
  list.length === 0 ? "null" : `[${list.map((k) => `"${Buffer.from(k).toString("base64")}"`).join(",")}]`;

class JsonPrinter implements Printer {
  constructor(private readonly sink: Sink) {}

  private print(json: string): void {
    this.sink.out(json + "\n");
  }

  get(r: RangeResponse): void { this.print(messageJson(RangeResponseSchema, r)); }
  put(r: PutResponse): void { this.print(messageJson(PutResponseSchema, r)); }
  del(r: DeleteRangeResponse): void { this.print(messageJson(DeleteRangeResponseSchema, r)); }
  txn(r: TxnResponse): void { this.print(messageJson(TxnResponseSchema, r)); }
  /** clientv3.WatchResponse: {Header, Events, CompactRevision, Canceled, Created} (no json tags). */
  watch(r: WatchResponse): void {
    const header = r.header ? messageJson(ResponseHeaderSchema, r.header) : "{}";
    // The Go client always allocates the events slice, so "no events" is [] rather than null.
    const events = `[${r.events.map((e) => messageJson(EventSchema, e)).join(",")}]`;
    this.print(`{"Header":${header},"Events":${events},"CompactRevision":${r.compactRevision},"Canceled":${r.canceled},"Created":${r.created}}`);
  }
  /** clientv3.LeaseGrantResponse: {*ResponseHeader; ID; TTL; Error}. */
  grant(r: LeaseGrantResponse): void {
    this.print(`{${[...embeddedHeader(r.header), `"ID":${r.ID}`, `"TTL":${r.TTL}`, `"Error":${goJsonString(r.error)}`].join(",")}}`);
  }
  revoke(_id: bigint, r: LeaseRevokeResponse): void { this.print(messageJson(LeaseRevokeResponseSchema, r)); }
  /** clientv3.LeaseKeepAliveResponse: {*ResponseHeader; ID; TTL}. */
  keepAlive(r: LeaseKeepAliveResponse): void {
    this.print(`{${[...embeddedHeader(r.header), `"ID":${r.ID}`, `"TTL":${r.TTL}`].join(",")}}`);
  }
  /** clientv3.LeaseTimeToLiveResponse: {*ResponseHeader; id; ttl; granted-ttl; keys}. */
  timeToLive(r: LeaseTimeToLiveResponse): void {
    this.print(`{${[...embeddedHeader(r.header), `"id":${r.ID}`, `"ttl":${r.TTL}`, `"granted-ttl":${r.grantedTTL}`,
      `"keys":${jsonBytesList(r.keys)}`].join(",")}}`);
  }
  /** clientv3.LeaseLeasesResponse: {*ResponseHeader; leases: [{id}]}. */
  leases(r: LeaseLeasesResponse): void {
    const leases = r.leases.length === 0 ? "null" : `[${r.leases.map((l) => `{"id":${l.ID}}`).join(",")}]`;
    this.print(`{${[...embeddedHeader(r.header), `"leases":${leases}`].join(",")}}`);
  }
  memberList(r: MemberListResponse): void { this.print(messageJson(MemberListResponseSchema, r)); }
  endpointHealth(hs: EpHealth[]): void {
    this.print(`[${hs.map((h) => `{"endpoint":${goJsonString(h.ep)},"health":${h.health},"took":${goJsonString(h.took)}` +
      (h.error ? `,"error":${goJsonString(h.error)}` : "") + "}").join(",")}]`);
  }
  endpointStatus(ss: EpStatus[]): void {
    this.print(`[${ss.map((s) => `{"Endpoint":${goJsonString(s.ep)},"Status":${messageJson(StatusResponseSchema, s.resp)}}`).join(",")}]`);
  }
  alarm(r: AlarmResponse): void { this.print(messageJson(AlarmResponseSchema, r)); }
}

// ---------------------------------------------------------------------------
// fields

class FieldsPrinter implements Printer {
  constructor(private readonly sink: Sink) {}

  private line(s: string): void {
    this.sink.out(s + "\n");
  }

  private hdr(h: ResponseHeader | undefined): void {
    const x = h ?? create(ResponseHeaderSchema);
    this.line(`"ClusterID" : ${x.clusterId}`);
    this.line(`"MemberID" : ${x.memberId}`);
    this.line(`"Revision" : ${x.revision}`);
    this.line(`"RaftTerm" : ${x.raftTerm}`);
  }

  private kv(pfx: string, kv: KeyValue | undefined): void {
    this.line(`"${pfx}Key" : ${goQuote(kv?.key ?? new Uint8Array())}`);
    this.line(`"${pfx}CreateRevision" : ${kv?.createRevision ?? 0n}`);
    this.line(`"${pfx}ModRevision" : ${kv?.modRevision ?? 0n}`);
    this.line(`"${pfx}Version" : ${kv?.version ?? 0n}`);
    this.line(`"${pfx}Value" : ${goQuote(kv?.value ?? new Uint8Array())}`);
    this.line(`"${pfx}Lease" : ${kv?.lease ?? 0n}`);
  }

  get(r: RangeResponse): void {
    this.hdr(r.header);
    for (const kv of r.kvs) this.kv("", kv);
    this.line(`"More" : ${r.more}`);
    this.line(`"Count" : ${r.count}`);
  }
  put(r: PutResponse): void {
    this.hdr(r.header);
    if (r.prevKv) this.kv("Prev", r.prevKv);
  }
  del(r: DeleteRangeResponse): void {
    this.hdr(r.header);
    this.line(`"Deleted" : ${r.deleted}`);
    for (const kv of r.prevKvs) this.kv("Prev", kv);
  }
  txn(r: TxnResponse): void {
    this.hdr(r.header);
    this.line(`"Succeeded" : ${r.succeeded}`);
    for (const op of r.responses) {
      switch (op.response.case) {
        case "responseDeleteRange": this.del(op.response.value); break;
        case "responsePut": this.put(op.response.value); break;
        case "responseRange": this.get(op.response.value); break;
        default: this.line(`"Unknown" : ${goQuote(String(op.response.case))}`);
      }
    }
  }
  watch(r: WatchResponse): void {
    this.hdr(r.header);
    for (const e of r.events as Event[]) {
      this.line(`"Type" : ${eventTypeName(e.type)}`);
      if (e.prevKv) this.kv("Prev", e.prevKv);
      this.kv("", e.kv);
    }
  }
  grant(r: LeaseGrantResponse): void {
    this.hdr(r.header);
    this.line(`"ID" : ${r.ID}`);
    this.line(`"TTL" : ${r.TTL}`);
  }
  revoke(_id: bigint, r: LeaseRevokeResponse): void {
    this.hdr(r.header);
  }
  keepAlive(r: LeaseKeepAliveResponse): void {
    this.hdr(r.header);
    this.line(`"ID" : ${r.ID}`);
    this.line(`"TTL" : ${r.TTL}`);
  }
  timeToLive(r: LeaseTimeToLiveResponse): void {
    this.hdr(r.header);
    this.line(`"ID" : ${r.ID}`);
    this.line(`"TTL" : ${r.TTL}`);
    this.line(`"GrantedTTL" : ${r.grantedTTL}`);
    for (const k of r.keys) this.line(`"Key" : ${goQuote(k)}`);
  }
  leases(r: LeaseLeasesResponse): void {
    this.hdr(r.header);
    for (const l of r.leases) this.line(`"ID" : ${l.ID}`);
  }
  memberList(r: MemberListResponse): void {
    this.hdr(r.header);
    for (const m of r.members) {
      this.line(`"ID" : ${m.ID}`);
      this.line(`"Name" : ${goQuote(m.name)}`);
      for (const u of m.peerURLs) this.line(`"PeerURL" : ${goQuote(u)}`);
      for (const u of m.clientURLs) this.line(`"ClientURL" : ${goQuote(u)}`);
      this.line(`"IsLearner" : ${m.isLearner}`);
      this.line("");
    }
  }
  endpointHealth(hs: EpHealth[]): void {
    for (const h of hs) {
      this.line(`"Endpoint" : ${goQuote(h.ep)}`);
      this.line(`"Health" : ${h.health}`);
      this.line(`"Took" : ${h.took}`);
      this.line(`"Error" : ${h.error}`);
      this.line("");
    }
  }
  endpointStatus(ss: EpStatus[]): void {
    for (const { ep, resp } of ss) {
      this.hdr(resp.header);
      this.line(`"Version" : ${goQuote(resp.version)}`);
      this.line(`"DBSize" : ${resp.dbSize}`);
      this.line(`"Leader" : ${resp.leader}`);
      this.line(`"IsLearner" : ${resp.isLearner}`);
      this.line(`"RaftIndex" : ${resp.raftIndex}`);
      this.line(`"RaftTerm" : ${resp.raftTerm}`);
      this.line(`"RaftAppliedIndex" : ${resp.raftAppliedIndex}`);
      this.line(`"Errors" : [${resp.errors.join(" ")}]`);
      this.line(`"Endpoint" : ${goQuote(ep)}`);
      this.line("");
    }
  }
  alarm(r: AlarmResponse): void {
    // etcdctl 3.4 dereferences a missing header here and crashes; print zeros instead.
    this.hdr(r.header);
    for (const a of r.alarms) {
      this.line(`"MemberID" : ${a.memberID}`);
      this.line(`"AlarmType" : ${AlarmType[a.alarm] ?? a.alarm}`);
      this.line("");
    }
  }
}

// ---------------------------------------------------------------------------
// protobuf

class ProtobufPrinter implements Printer {
  constructor(private readonly sink: Sink) {}

  private bin<T extends Message>(desc: DescMessage, m: T): void {
    this.sink.out(toBinary(desc, m));
  }
  /**
   * The clientv3 lease responses embed *pb.ResponseHeader, whose Marshal
   * method Go promotes: etcdctl's protobuf output for them is the header alone.
   */
  private headerOnly(h: ResponseHeader | undefined): void {
    this.bin(ResponseHeaderSchema, h ?? create(ResponseHeaderSchema));
  }

  get(r: RangeResponse): void { this.bin(RangeResponseSchema, r); }
  put(r: PutResponse): void { this.bin(PutResponseSchema, r); }
  del(r: DeleteRangeResponse): void { this.bin(DeleteRangeResponseSchema, r); }
  txn(r: TxnResponse): void { this.bin(TxnResponseSchema, r); }
  /** The clientv3 fields of a WatchResponse: header, created, canceled, compact revision, events. */
  watch(r: WatchResponse): void {
    this.bin(WatchResponseSchema, create(WatchResponseSchema, {
      header: r.header ?? create(ResponseHeaderSchema), created: r.created, canceled: r.canceled,
      compactRevision: r.compactRevision, events: r.events,
    }));
  }
  grant(r: LeaseGrantResponse): void { this.headerOnly(r.header); }
  revoke(_id: bigint, r: LeaseRevokeResponse): void { this.bin(LeaseRevokeResponseSchema, r); }
  keepAlive(r: LeaseKeepAliveResponse): void { this.headerOnly(r.header); }
  timeToLive(r: LeaseTimeToLiveResponse): void { this.headerOnly(r.header); }
  leases(r: LeaseLeasesResponse): void { this.headerOnly(r.header); }
  memberList(r: MemberListResponse): void { this.bin(MemberListResponseSchema, r); }
  endpointHealth(): void { unsupported("protobuf"); }
  endpointStatus(): void { unsupported("protobuf"); }
  alarm(r: AlarmResponse): void { this.bin(AlarmResponseSchema, r); }
}

// ---------------------------------------------------------------------------
// table

class TablePrinter implements Printer {
  constructor(private readonly sink: Sink) {}

  get(): void { unsupported("table"); }
  put(): void { unsupported("table"); }
  del(): void { unsupported("table"); }
  txn(): void { unsupported("table"); }
  watch(): void { unsupported("table"); }
  grant(): void { unsupported("table"); }
  revoke(): void { unsupported("table"); }
  keepAlive(): void { unsupported("table"); }
  timeToLive(): void { unsupported("table"); }
  leases(): void { unsupported("table"); }
  alarm(): void { unsupported("table"); }
  memberList(r: MemberListResponse): void {
    const { hdr, rows } = memberListTable(r);
    this.sink.out(renderTable(hdr, rows));
  }
  endpointHealth(hs: EpHealth[]): void {
    const { hdr, rows } = endpointHealthTable(hs);
    this.sink.out(renderTable(hdr, rows));
  }
  endpointStatus(ss: EpStatus[]): void {
    const { hdr, rows } = endpointStatusTable(ss);
    this.sink.out(renderTable(hdr, rows));
  }
}
