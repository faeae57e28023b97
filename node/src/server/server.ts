// EtcdServer: one member. It owns the backend, the MVCC store, the lessor,
// the alarms and the watch hub, and runs the apply loop:
//
//   propose(request) -> queue -> [apply loop] apply a batch in log order
//                                  -> one atomic, fsynced backend write
//                                     (data + applied index + meta)
//                                  -> publish: readers see the new revision,
//                                     watchers get the changes, callers get
//                                     their responses.
//
// A write is acknowledged only after its batch is on disk. Many concurrent
// requests share one fsync (group commit). Reads are served outside the loop
// at the durable revision. The log is local for now; the Raft work puts
// consensus in front of the same apply loop (entries become Raft entries).

import { create, toBinary, type Message, type MessageInitShape } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { Logger } from "pino";
import {
  AlarmRequest_AlarmAction,
  AlarmType,
  RangeRequestSchema,
  ResponseHeaderSchema,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type TxnRequest,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { InternalRequestSchema, type InternalRequest } from "../../gen/etcdts/internal_pb.js";
import { Errors } from "../errors.js";
import { Lessor, systemClock, type Clock } from "../lease/lessor.js";
import { Backend, NS_ALARM, NS_KV, int64, metaKey, uint64, type BatchOp } from "../mvcc/backend.js";
import { MvccStore } from "../mvcc/store.js";
import { WatchHub } from "../watch/hub.js";
import { AlarmStore, Applier, type ApplyResult } from "./applier.js";
import { executeRange } from "./range.js";
import { Metrics } from "./metrics.js";

export interface ServerOptions {
  name: string;
  dataDir: string;
  advertiseClientUrls: string[];
  initialAdvertisePeerUrls: string[];
  initialClusterToken: string;
  /** Effective quota in bytes (etcd: 0 means 2 GiB; negative disables). */
  quotaBackendBytes: bigint;
  maxRequestBytes: number;
  maxTxnOps: number;
  autoCompactionMode: "periodic" | "revision";
  /** periodic: retention in ms; revision: number of revisions; 0 = off. */
  autoCompactionRetention: bigint;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  /** Watch progress notification interval (ms); etcd's default is 10 minutes. */
  watchProgressNotifyIntervalMs: number;
  logger: Logger;
  clock?: Clock;
  /** Called on an unrecoverable error (disk failure); defaults to exiting the process. */
  onFatal?: (err: unknown) => void;
}

type Proposal = { entry: InternalRequest; readOnly: boolean; resolve: (r: ApplyResult) => void };

/** Entries applied per batch at most; bounds the latency of one fsync round. */
const MAX_BATCH = 8192;
/** etcd refuses new proposals when this many are waiting to be applied. */
const MAX_PENDING = 5000 * 4;
const DEFAULT_QUOTA = 2n * 1024n * 1024n * 1024n;

export class EtcdServer {
  readonly metrics = new Metrics();
  readonly hub: WatchHub;
  readonly alarms = new AlarmStore();
  readonly lessor: Lessor;
  private readonly applier: Applier;
  private queue: Proposal[] = [];
  private applying = false;
  private stopped = false;
  /** Log index of the last applied entry. */
  appliedIndex = 0n;
  term = 0n;
  private nextRequestId = 1n;
  private timers: NodeJS.Timeout[] = [];
  private dbSize = 0n;
  private dbSizeInUse = 0n;
  private revoking = new Set<bigint>();
  private leaseIdCounter = 0n;
  readonly clock: Clock;
  readonly quota: bigint;

  private constructor(
    readonly opts: ServerOptions,
    readonly backend: Backend,
    readonly store: MvccStore,
    readonly clusterId: bigint,
    readonly memberId: bigint,
  ) {
    this.clock = opts.clock ?? systemClock;
    // etcd's minimum lease TTL: ceil(1.5 election timeouts), in seconds.
    const minTTL = BigInt(Math.ceil((3 * opts.electionTimeoutMs) / 2 / 1000));
    this.lessor = new Lessor(this.clock, minTTL);
    store.leaseHooks = this.lessor;
    this.applier = new Applier(store, this.lessor, this.alarms);
    this.hub = new WatchHub(store, this, opts.maxRequestBytes, opts.watchProgressNotifyIntervalMs);
    this.quota = opts.quotaBackendBytes === 0n ? DEFAULT_QUOTA : opts.quotaBackendBytes;
  }

  static async start(opts: ServerOptions): Promise<EtcdServer> {
    const dir = join(opts.dataDir, "member", "store");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const backend = await Backend.open(dir);
    try {
      // Identity is fixed at first start, like etcd's member and cluster IDs.
      let memberId = await readUint(backend, "member_id");
      let clusterId = await readUint(backend, "cluster_id");
      const init: BatchOp[] = [];
      if (memberId === undefined || clusterId === undefined) {
        // etcd's derivations: member = sha1(sorted peer URLs + token); cluster =
        // sha1(sorted member IDs as 8-byte big-endian). Same inputs, same IDs as etcd.
        memberId = idFrom(Buffer.from([...opts.initialAdvertisePeerUrls].sort().join("") + opts.initialClusterToken));
        clusterId = idFrom(uint64(memberId));
        init.push({ type: "put", key: metaKey("member_id"), value: uint64(memberId) });
        init.push({ type: "put", key: metaKey("cluster_id"), value: uint64(clusterId) });
      }
      const store = await MvccStore.open(backend);
      const s = new EtcdServer(opts, backend, store, clusterId, memberId);
      // A restart is a new election: the term moves on, as in etcd.
      s.term = ((await readUint(backend, "term")) ?? 1n) + 1n;
      s.appliedIndex = (await backend.getMetaInt("consistent_index")) ?? 0n;
      init.push({ type: "put", key: metaKey("term"), value: uint64(s.term) });
      await backend.write(init, true);
      await s.lessor.restore(backend, store.leasedKeys());
      for await (const [k] of backend.range(Buffer.from([NS_ALARM]), Buffer.from([NS_ALARM + 1]))) s.alarms.load(k);
      await s.refreshSize();
      s.startTimers();
      opts.logger.info(
        { memberId: memberId.toString(16), clusterId: clusterId.toString(16), revision: store.currentRev.toString(), appliedIndex: s.appliedIndex.toString() },
        "server started",
      );
      return s;
    } catch (err) {
      await backend.close();
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.hub.stop();
    while (this.applying) await new Promise((r) => setTimeout(r, 5));
    await this.store.compactionDone();
    await this.backend.close();
  }

  /** A full response header at `rev`. */
  header(rev: bigint): ResponseHeader {
    return create(ResponseHeaderSchema, { clusterId: this.clusterId, memberId: this.memberId, revision: rev, raftTerm: this.term });
  }

  /** Fills the cluster fields of a response's header (revision set by the applier). */
  private stamp<T extends Message>(resp: T): T {
    const r = resp as T & { header?: ResponseHeader };
    r.header = this.header(r.header?.revision ?? this.store.durableRev);
    return resp;
  }

  // ---- proposals ----

  /**
   * Proposes one request to the log and resolves with its response once it is
   * applied and durable. Rejects with the request's error.
   */
  async propose<T extends Message>(init: MessageInitShape<typeof InternalRequestSchema>, opts: { readOnly?: boolean } = {}): Promise<T> {
    if (this.stopped) throw Errors.Stopped;
    if (this.queue.length >= MAX_PENDING) throw Errors.TooManyRequests;
    const entry = create(InternalRequestSchema, init);
    entry.id = this.nextRequestId++;
    if (!opts.readOnly && toBinary(InternalRequestSchema, entry).length > this.opts.maxRequestBytes) throw Errors.RequestTooLarge;
    const result = await new Promise<ApplyResult>((resolve) => {
      this.queue.push({ entry, readOnly: opts.readOnly ?? false, resolve });
      if (!this.applying) void this.runApplyLoop();
    });
    if (result.err !== undefined) throw result.err;
    return this.stamp(result.resp as T);
  }

  private async runApplyLoop(): Promise<void> {
    this.applying = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.length <= MAX_BATCH ? this.queue : this.queue.slice(0, MAX_BATCH);
        this.queue = this.queue.length <= MAX_BATCH ? [] : this.queue.slice(MAX_BATCH);
        const ops: BatchOp[] = [];
        const results: ApplyResult[] = [];
        let logged = 0;
        for (const p of batch) {
          if (!p.readOnly) logged++;
          results.push(await this.applier.apply(p.entry, ops));
        }
        this.appliedIndex += BigInt(logged);
        if (logged > 0) ops.push({ type: "put", key: metaKey("consistent_index"), value: int64(this.appliedIndex) });
        const t0 = performance.now();
        try {
          await this.backend.write(ops, true);
        } catch (err) {
          this.fatal(err);
          return;
        }
        this.metrics.fsync.observe((performance.now() - t0) / 1000);
        this.metrics.proposalsCommitted.inc(logged);
        for (const { rev, changes } of this.store.markDurable(this.store.currentRev)) this.hub.notify(rev, changes);
        for (let i = 0; i < batch.length; i++) {
          const r = results[i]!;
          if (r.compactRev !== undefined) {
            const done = this.store.startPhysicalCompaction(r.compactRev);
            done.catch((err: unknown) => this.fatal(err));
            (r as ApplyResult & { physical?: Promise<void> }).physical = done;
          }
          batch[i]!.resolve(r);
        }
      }
    } catch (err) {
      // An exception inside apply leaves memory ahead of disk: stop, as etcd panics.
      this.fatal(err);
    } finally {
      this.applying = false;
    }
  }

  private fatal(err: unknown): void {
    this.opts.logger.fatal({ err }, "unrecoverable error in the apply loop; stopping");
    this.stopped = true;
    if (this.opts.onFatal) this.opts.onFatal(err);
    else process.exit(1);
  }

  // ---- KV ----

  async range(req: RangeRequest): Promise<RangeResponse> {
    if (this.stopped) throw Errors.Stopped;
    const resp = await executeRange(req, (k, e, o) => this.store.range(k, e, o));
    return this.stamp(resp);
  }

  /** Quota check before a write is proposed (etcd's quota applier at the API layer). */
  async checkQuota(cost: number): Promise<void> {
    if (this.quota < 0n) return;
    if (this.dbSize + BigInt(cost) < this.quota) return;
    if (!this.alarms.has(AlarmType.NOSPACE)) {
      this.opts.logger.warn({ dbSize: this.dbSize.toString(), quota: this.quota.toString() }, "backend quota exceeded; raising NOSPACE alarm");
      await this.propose({ request: { case: "alarm", value: { action: AlarmRequest_AlarmAction.ACTIVATE, memberID: this.memberId, alarm: AlarmType.NOSPACE } } });
    }
    throw Errors.NoSpace;
  }

  /** Compaction; with physical, resolves after the data is gone from the backend. */
  async compact(revision: bigint, physical: boolean): Promise<Message> {
    const entry = create(InternalRequestSchema, { request: { case: "compaction", value: { revision, physical } } });
    entry.id = this.nextRequestId++;
    const result = await new Promise<ApplyResult>((resolve) => {
      this.queue.push({ entry, readOnly: false, resolve });
      if (!this.applying) void this.runApplyLoop();
    });
    if (result.err !== undefined) throw result.err;
    const physicalDone = (result as ApplyResult & { physical?: Promise<void> }).physical;
    if (physical && physicalDone !== undefined) await physicalDone;
    return this.stamp(result.resp!);
  }

  isReadOnlyTxn(t: TxnRequest): boolean {
    const ro = (ops: TxnRequest["success"]): boolean =>
      ops.every((op) => op.request.case === "requestRange" || (op.request.case === "requestTxn" && this.isReadOnlyTxn(op.request.value)));
    return ro(t.success) && ro(t.failure);
  }

  // ---- leases ----

  /** A new lease ID: positive, unique per member (member bits, time, counter). */
  newLeaseId(): bigint {
    for (;;) {
      const id =
        (((this.memberId & 0xffffn) << 48n) | ((BigInt(Date.now()) & 0xffffffffffn) << 8n) | (this.leaseIdCounter++ & 0xffn)) &
        0x7fffffffffffffffn;
      if (id !== 0n && this.lessor.lookup(id) === undefined) return id;
    }
  }

  private revokeExpired(): void {
    if (this.stopped) return;
    for (const id of this.lessor.expired(1000)) {
      if (this.revoking.has(id)) continue;
      this.revoking.add(id);
      this.propose({ request: { case: "leaseRevoke", value: { ID: id } } })
        .catch(() => undefined)
        .finally(() => this.revoking.delete(id));
    }
  }

  // ---- maintenance ----

  private async refreshSize(): Promise<void> {
    this.dbSize = await this.backend.sizeOnDisk();
    this.dbSizeInUse = await this.backend.sizeInUse();
    this.metrics.dbSize.set(Number(this.dbSize));
    this.metrics.dbSizeInUse.set(Number(this.dbSizeInUse));
  }

  sizes(): { dbSize: bigint; dbSizeInUse: bigint } {
    return { dbSize: this.dbSize, dbSizeInUse: this.dbSizeInUse };
  }

  async defragment(): Promise<void> {
    await this.backend.defragment();
    await this.refreshSize();
  }

  /** crc32 of every key-space record at revisions <= rev (0 = current), with the compaction revision. */
  async hashKV(rev: bigint): Promise<{ hash: number; compactRevision: bigint; hashRevision: bigint }> {
    const at = rev === 0n ? this.store.durableRev : rev;
    if (at > this.store.durableRev) throw Errors.FutureRev;
    if (at < this.store.compactRev) throw Errors.Compacted;
    let h = 0;
    const end = Buffer.alloc(17);
    end[0] = NS_KV;
    end.writeBigInt64BE(at + 1n, 1);
    await this.store.compactionDone(); // hash what compaction leaves, not a moving target
    for await (const [k, v] of this.backend.range(Buffer.from([NS_KV]), end)) {
      h = crc32(k, h);
      h = crc32(v, h);
    }
    return { hash: h >>> 0, compactRevision: this.store.compactRev, hashRevision: at };
  }

  /** crc32 of the whole backend. */
  async hash(): Promise<number> {
    let h = 0;
    for await (const [k, v] of this.backend.range(Buffer.from([0x00]), Buffer.from([0xff]))) {
      h = crc32(k, h);
      h = crc32(v, h);
    }
    return h >>> 0;
  }

  // ---- timers ----

  private startTimers(): void {
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(500, () => this.revokeExpired());
    every(1000, () => void this.refreshSize().catch(() => undefined));
    this.metrics.hasLeader.set(1);
    this.metrics.isLeader.set(1);
    this.metrics.quota.set(Number(this.quota));
    this.startAutoCompaction(every);
  }

  private startAutoCompaction(every: (ms: number, fn: () => void) => void): void {
    const retention = this.opts.autoCompactionRetention;
    if (retention <= 0n) return;
    const compactTo = (rev: bigint) => {
      if (rev <= 0n || rev <= this.store.compactRev) return;
      this.compact(rev, false).then(
        () => this.opts.logger.info({ revision: rev.toString() }, "auto-compaction finished"),
        (err: unknown) => this.opts.logger.warn({ err, revision: rev.toString() }, "auto-compaction failed"),
      );
    };
    if (this.opts.autoCompactionMode === "revision") {
      // etcd checks every 5 minutes and keeps the last `retention` revisions.
      let last = -1n;
      every(5 * 60 * 1000, () => {
        const rev = this.store.durableRev - retention;
        if (rev !== last) compactTo(rev);
        last = rev;
      });
      return;
    }
    // periodic: sample the revision every period/10; once a full period has
    // been seen, compact to the revision sampled one period ago.
    const periodMs = Number(retention);
    const step = Math.max(1, Math.floor(periodMs / 10));
    const samples: bigint[] = [];
    every(step, () => {
      samples.push(this.store.durableRev);
      if (samples.length > 11) samples.shift();
      if (samples.length === 11) compactTo(samples[0]!);
    });
  }
}

async function readUint(b: Backend, name: string): Promise<bigint | undefined> {
  const v = await b.get(metaKey(name));
  return v === undefined ? undefined : v.readBigUInt64BE();
}

function idFrom(s: Buffer): bigint {
  const id = createHash("sha1").update(s).digest().readBigUInt64BE(0);
  return id === 0n ? 1n : id;
}

/** The single-key read used by health checks. */
export function healthRange(): RangeRequest {
  return create(RangeRequestSchema, { key: Buffer.from("health"), limit: 1n, serializable: true, keysOnly: true });
}
