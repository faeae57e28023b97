// EtcdServer: one member of a cluster. It owns the backend, the MVCC store,
// the lessor, the alarms, the watch hub and the membership, and puts Raft in
// front of them (design: README.md in this folder):
//
//   propose(request) -> raft (forwarded to the leader by raft) -> committed
//     -> [RaftNode loop] persist to the raft log (fsync) -> apply in log order
//        -> one atomic backend write (data + consistent_index + meta)
//        -> publish: readers see the new revision, watchers get the changes,
//           the proposer (matched by request id) gets its response.
//
// A write is acknowledged only once a quorum has persisted its entry and this
// member has applied it. Linearizable reads wait for a ReadIndex round (shared
// by every read that arrives meanwhile) and for the apply loop to reach it.

import { create, fromBinary, type Message, type MessageInitShape } from "@bufbuild/protobuf";
import { mkdir, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
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
import { encodeEntry } from "./entry_encode.js";
import { EtcdError, Errors } from "../errors.js";
import { Lessor, systemClock, type Clock } from "../lease/lessor.js";
import { Backend, NS_ALARM, NS_KV, int64, metaKey, uint64, type BatchOp } from "../mvcc/backend.js";
import { MvccStore, decodeKvRecord, kvRecordBody } from "../mvcc/store.js";
import { KvHasher } from "../mvcc/hash.js";
import { decodeRev } from "../mvcc/revision.js";
import { WatchHub } from "../watch/hub.js";
import { MemoryStorage, Raft, RaftError, encodeConfChange, type ConfChange, type Entry, type Message as RaftMessage, type ReadState, type SoftState } from "../raft/index.js";
import { Transport, idHex, type PeerHandler, type PeerUpgradeHandler } from "../transport/index.js";
import { AlarmStore, Applier, type ApplyResult } from "./applier.js";
import { executeRange } from "./range.js";
import { Metrics } from "./metrics.js";
import { purgeSnapDbs, receiveSnapshotFile, restoreBackend, snapDbName, snapshotStream } from "./snapshot.js";
import { restoreStorage, type RaftLogStore } from "./raft_log.js";
import { Wal } from "../wal/index.js";
import { RaftNode, type Ticker } from "./raft_node.js";
import { Membership, clusterIdFrom, decodeCcContext, encodeCcContext, memberIdFrom, type MemberInfo } from "./membership.js";

export interface ServerOptions {
  name: string;
  dataDir: string;
  advertiseClientUrls: string[];
  initialAdvertisePeerUrls: string[];
  initialClusterToken: string;
  /** --initial-cluster parsed (name and sorted peer URLs); used on first start only. */
  initialCluster?: { name: string; peerUrls: readonly string[] }[];
  initialClusterState?: "new" | "existing";
  preVote?: boolean;
  initialElectionTickAdvance?: boolean;
  /** --snapshot-count: applied entries between raft snapshots (0 = never). */
  snapshotCount?: bigint;
  /** --snapshot-catchup-entries: entries kept after a snapshot for slow followers. */
  snapshotCatchUpEntries?: bigint;
  strictReconfigCheck?: boolean;
  maxLearners?: number;
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
  /** The server's own log lines. */
  logger: Logger;
  /**
   * The parent of the raft, WAL and transport loggers, which add their own
   * `component`. Pass the logger without one (a pino child repeats a key its parent
   * already binds, and a log reader keeps only one of the two). Default: logger.
   */
  baseLogger?: Logger;
  clock?: Clock;
  ticker?: Ticker;
  /** Called on an unrecoverable error (disk failure); defaults to exiting the process. */
  onFatal?: (err: unknown) => void;
  /** Called once this member is removed from the cluster (it has stopped serving). */
  onRemoved?: () => void;
}

/** Proposals waiting to be applied at most; etcd refuses new ones beyond its limit. */
const MAX_PENDING = 5000 * 4;
const DEFAULT_QUOTA = 2n * 1024n * 1024n * 1024n;
/** etcd's readIndexRetryTime: a ReadIndex round that got no answer is asked again. */
const READ_RETRY_MS = 500;
/** etcd's readyPercent: a learner may be promoted once its match is this close to the leader's. */
const LEARNER_READY_PERCENT = 0.9;
/** etcd's HealthInterval: how long peers must have been connected before a voter is added. */
const HEALTH_INTERVAL_MS = 5000;

export const LeaderTransferTimeout = new EtcdError(2 /* Unknown */, "etcdserver: request timed out, leader transfer took too long");

type Waiter = (r: ApplyResult) => void;
interface ReadRound {
  ctx: string;
  waiters: { resolve: () => void; reject: (e: Error) => void }[];
  index: bigint | undefined;
  retry: NodeJS.Timeout | undefined;
}

/** etcd's idutil.Generator: member bits, then milliseconds, then a counter. */
class IdGenerator {
  private suffix: bigint;
  constructor(private readonly prefix: bigint) {
    this.suffix = (BigInt(Date.now()) & ((1n << 40n) - 1n)) << 8n;
  }
  next(): bigint {
    this.suffix++;
    return (this.prefix << 48n) | (this.suffix & ((1n << 48n) - 1n));
  }
}

export class EtcdServer {
  readonly metrics = new Metrics();
  readonly hub: WatchHub;
  readonly alarms = new AlarmStore();
  readonly lessor: Lessor;
  readonly raft: RaftNode;
  readonly transport: Transport;
  private readonly applier: Applier;
  private stopped = false;
  private removed = false;
  /** Log index of the last applied entry, once its batch is written and visible to reads (the backend's consistent_index). */
  appliedIndex: bigint;
  private readonly reqIds: IdGenerator;
  private readonly waiters = new Map<bigint, Waiter>();
  /**
   * This member's own proposals by their encoded bytes: raft hands the same
   * Uint8Array back in the committed entry, so the apply takes the request object
   * instead of decoding it again (entries read from the WAL or sent by another
   * member are decoded as always). Weak: an entry's bytes go once raft drops it.
   */
  private readonly ownRequests = new WeakMap<Uint8Array, InternalRequest>();
  private readonly ccWaiters = new Map<bigint, (err?: Error) => void>();
  private readonly leaderWaiters = new Set<() => void>();
  private applyChain: Promise<unknown> = Promise.resolve();
  private timers: NodeJS.Timeout[] = [];
  private dbSize = 0n;
  private dbSizeInUse = 0n;
  private revoking = new Set<bigint>();
  private leaseIdCounter = 0n;
  private readRound: ReadRound | undefined;
  private readNext: ReadRound["waiters"] = [];
  private readCounter = 0n;
  /** Clock time the current leader was elected (etcd's leadElectedTime). */
  private leadElectedAt = 0;
  private published = false;
  private markReady: () => void = () => undefined;
  /** Resolves once this member has published its name and client URLs (etcd's ReadyNotify). */
  readonly ready: Promise<void> = new Promise<void>((resolve) => {
    this.markReady = resolve;
  });
  readonly clock: Clock;
  readonly quota: bigint;
  readonly reqTimeoutMs: number;

  private constructor(
    readonly opts: ServerOptions,
    readonly backend: Backend,
    readonly store: MvccStore,
    readonly clusterId: bigint,
    readonly memberId: bigint,
    readonly membership: Membership,
    private readonly raftLog: RaftLogStore,
    storage: MemoryStorage,
    consistentIndex: bigint,
  ) {
    this.clock = opts.clock ?? systemClock;
    // etcd's minimum lease TTL: ceil(1.5 election timeouts), in seconds.
    const minTTL = BigInt(Math.ceil((3 * opts.electionTimeoutMs) / 2 / 1000));
    this.lessor = new Lessor(this.clock, minTTL);
    store.leaseHooks = this.lessor;
    this.applier = new Applier(store, this.lessor, this.alarms);
    this.hub = new WatchHub(store, this, opts.maxRequestBytes, opts.watchProgressNotifyIntervalMs);
    this.quota = opts.quotaBackendBytes === 0n ? DEFAULT_QUOTA : opts.quotaBackendBytes;
    this.reqTimeoutMs = 5000 + 2 * opts.electionTimeoutMs;
    this.appliedIndex = consistentIndex;
    this.reqIds = new IdGenerator(memberId & 0xffffn);
    const tlog = (opts.baseLogger ?? opts.logger).child({ component: "transport" });
    this.transport = new Transport({
      clusterId,
      memberId,
      logger: {
        debug: (o, m) => tlog.debug(o, m),
        info: (o, m) => tlog.info(o, m),
        warn: (o, m) => tlog.warn(o, m),
        error: (o, m) => tlog.error(o, m),
      },
      onMessage: (m) => this.raft.step(m),
      onUnreachable: (id) => this.raft.reportUnreachable(id),
      onSnapshotStatus: (id, ok) => this.raft.reportSnapshot(id, ok),
      onRemoved: () => this.onRemovedFromCluster(),
      isRemoved: (id) => this.membership.removed.has(id),
      snapshotMessage: (m) => this.mergedSnapshotMessage(m),
      snapshotPayload: () => this.snapshotPayload(),
      onSnapshot: (m, payload) => this.receiveSnapshot(m.snapshot?.metadata.index ?? 0n, payload),
    });
    const rlog = (opts.baseLogger ?? opts.logger).child({ component: "raft" });
    raftLog.onFsync = (sec) => this.metrics.fsync.observe(sec);
    this.raft = new RaftNode({
      id: memberId,
      storage,
      log: raftLog,
      sink: this.transport,
      sm: {
        apply: (ents) => this.applyEntries(ents),
        readStates: (rs) => this.onReadStates(rs),
        softState: (ss) => this.onSoftState(ss),
        restore: (snap) => this.restoreSnapshot(snap.metadata.index),
        beforeCompact: () => this.withApplyLock(() => this.backend.write([{ type: "put", key: metaKey("consistent_index"), value: int64(this.appliedIndex) }], true)),
      },
      snapshotCount: opts.snapshotCount ?? 10000n,
      catchUpEntries: opts.snapshotCatchUpEntries ?? 5000n,
      tickMs: opts.heartbeatIntervalMs,
      electionTick: Math.max(2, Math.round(opts.electionTimeoutMs / opts.heartbeatIntervalMs)),
      heartbeatTick: 1,
      // Committed entries after the snapshot are delivered again; the apply loop skips
      // those at or below consistent_index, and raft re-learns the conf changes among them.
      applied: storage.snapshot().metadata.index,
      preVote: opts.preVote ?? true,
      logger: { debug: (t) => rlog.debug(t), info: (t) => rlog.info(t), warn: (t) => rlog.warn(t) },
      onFatal: (err) => this.fatal(err),
      ...(opts.ticker !== undefined ? { ticker: opts.ticker } : {}),
    });
  }

  static async start(opts: ServerOptions): Promise<EtcdServer> {
    const dir = join(opts.dataDir, "member", "store");
    const walDir = join(opts.dataDir, "member", "wal");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const backend = await Backend.open(dir);
    let raftLog: RaftLogStore | undefined;
    try {
      const membership = await Membership.load(backend);
      let storage = new MemoryStorage();
      let memberId: bigint;
      let clusterId: bigint;
      let bootstrap: MemberInfo[] | undefined;
      const walLog = (opts.baseLogger ?? opts.logger).child({ component: "wal" });
      const walOpts = { logger: { warn: (o: object, m: string) => walLog.warn(o, m), info: (o: object, m: string) => walLog.info(o, m) } };
      if (await Wal.exists(walDir)) {
        const o = await Wal.open(walDir, undefined, walOpts);
        raftLog = o.wal;
        memberId = o.meta.memberId;
        clusterId = o.meta.clusterId;
        storage = restoreStorage(o.state);
      } else if ((opts.initialClusterState ?? "new") === "new") {
        // etcd's bootstrap of a new cluster: every member derives the same IDs from
        // --initial-cluster and starts its log with one committed AddNode per member.
        const initial = opts.initialCluster ?? [{ name: opts.name, peerUrls: opts.initialAdvertisePeerUrls }];
        const members = initial.map((m) => ({
          id: memberIdFrom(m.peerUrls, opts.initialClusterToken),
          name: m.name,
          peerURLs: [...m.peerUrls],
          clientURLs: [] as string[],
          isLearner: false,
        }));
        members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        const me = members.find((m) => m.name === opts.name);
        if (me === undefined) throw new Error(`couldn't find local name ${JSON.stringify(opts.name)} in the initial cluster configuration`);
        memberId = me.id;
        clusterId = clusterIdFrom(members.map((m) => m.id));
        // etcd's isMemberBootstrapped: a member that lost its data dir must not
        // bootstrap again under the ID its peers know (its empty log would break
        // raft's invariants); it has to be removed and added back.
        if (await isMemberBootstrapped(members, memberId)) throw new Error(`member ${idHex(memberId)} has already been bootstrapped`);
        raftLog = await Wal.create(walDir, { memberId, clusterId }, walOpts);
        const ents: Entry[] = members.map((m, i) => ({
          term: 1n,
          index: BigInt(i + 1),
          type: "confChange",
          data: encodeConfChange({ type: "addNode", nodeId: m.id, context: encodeCcContext(m, 0n) }),
        }));
        const hs = { term: 1n, vote: 0n, commit: BigInt(ents.length) };
        await raftLog.save(hs, ents);
        storage.append(ents);
        storage.setHardState(hs);
        bootstrap = members;
      } else {
        // Joining a running cluster: learn the cluster and our ID from its members.
        const found = await fetchClusterFromPeers(opts);
        memberId = found.memberId;
        clusterId = found.clusterId;
        raftLog = await Wal.create(walDir, { memberId, clusterId }, walOpts);
        bootstrap = found.members;
      }
      const init: BatchOp[] = [
        { type: "put", key: metaKey("member_id"), value: uint64(memberId) },
        { type: "put", key: metaKey("cluster_id"), value: uint64(clusterId) },
      ];
      await backend.write(init, true);
      const store = await MvccStore.open(backend);
      const consistentIndex = (await backend.getMetaInt("consistent_index")) ?? 0n;
      const s = new EtcdServer(opts, backend, store, clusterId, memberId, membership, raftLog, storage, consistentIndex);
      const snapIndex = storage.snapshot().metadata.index;
      if (snapIndex > consistentIndex) {
        // A snapshot from the leader was recorded in the log but the crash came
        // before the backend was replaced: do it now, from the received file.
        await s.restoreFromFile(s.snapFile(snapIndex));
      }
      await s.purgeSnapshots(true);
      // Raft learns the configuration before it applies the entries that carry it
      // (etcd's Bootstrap; on restart, from the membership saved with the data).
      const known = bootstrap ?? membership.list();
      s.syncRaftConfig(known);
      for (const m of known) if (m.id !== memberId && !s.transport.hasPeer(m.id)) s.transport.addPeer(m.id, m.peerURLs);
      await s.lessor.restore(backend, store.leasedKeys());
      for await (const [k] of backend.range(Buffer.from([NS_ALARM]), Buffer.from([NS_ALARM + 1]))) s.alarms.load(k);
      await s.refreshSize();
      s.raft.start();
      const voters = known.filter((m) => !m.isLearner);
      if (voters.length === 1 && voters[0]!.id === memberId) s.raft.campaignWhenApplied(); // alone: no one to wait for
      else if (opts.initialElectionTickAdvance ?? true) s.raft.advanceTicks(s.raft.rn.raft.electionTimeout - 1);
      s.startTimers();
      opts.logger.info(
        { memberId: idHex(memberId), clusterId: idHex(clusterId), revision: store.currentRev.toString(), appliedIndex: s.appliedIndex.toString() },
        "server started",
      );
      return s;
    } catch (err) {
      await raftLog?.close().catch(() => undefined);
      await backend.close();
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.transport.stop();
    await this.raft.stop();
    this.hub.stop();
    this.failPending(Errors.Stopped);
    await this.applyChain.catch(() => undefined);
    await this.store.compactionDone();
    await this.raftLog.close().catch(() => undefined);
    await this.backend.close();
  }

  private failPending(err: Error): void {
    const r = this.readRound;
    this.readRound = undefined;
    if (r?.retry !== undefined) clearTimeout(r.retry);
    for (const w of [...(r?.waiters ?? []), ...this.readNext]) w.reject(err);
    this.readNext = [];
    for (const w of this.waiters.values()) w({ err });
    this.waiters.clear();
    for (const w of this.ccWaiters.values()) w(err);
    this.ccWaiters.clear();
  }

  /** The peer port's /raft* handler. */
  peerHandler(): PeerHandler {
    return this.transport.handler();
  }

  /** The peer port's 'upgrade' listener (raft streams switch to raw frames). */
  peerUpgradeHandler(): PeerUpgradeHandler {
    return this.transport.upgradeHandler();
  }

  get term(): bigint {
    return this.raft.term;
  }

  get leader(): bigint {
    return this.raft.lead;
  }

  get isLearner(): boolean {
    return this.raft.rn.raft.isLearner;
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
   * Proposes one request and resolves with its response once a quorum has it
   * and this member has applied it. Rejects with the request's error, or with
   * etcd's timeout errors. Read-only requests are served locally after a
   * linearizable read barrier instead.
   */
  async propose<T extends Message>(init: MessageInitShape<typeof InternalRequestSchema>, opts: { readOnly?: boolean } = {}): Promise<T> {
    if (this.stopped) throw Errors.Stopped;
    if (this.isLearner) throw Errors.NotSupportedForLearner;
    const entry = create(InternalRequestSchema, init);
    entry.id = this.reqIds.next();
    if (opts.readOnly) {
      await this.linearizableReadNotify();
      const r = await this.withApplyLock(() => this.applier.apply(entry, []));
      if (r.err !== undefined) throw r.err;
      return this.stamp(r.resp as T);
    }
    const result = await this.proposeEntry(entry);
    if (result.err !== undefined) throw result.err;
    return this.stamp(result.resp as T);
  }

  private async proposeEntry(entry: InternalRequest): Promise<ApplyResult> {
    const data = encodeEntry(entry);
    if (data.length > this.opts.maxRequestBytes) throw Errors.RequestTooLarge;
    this.ownRequests.set(data, entry);
    if (this.waiters.size >= MAX_PENDING) throw Errors.TooManyRequests;
    const started = this.clock.now();
    return new Promise<ApplyResult>((resolve, reject) => {
      let done = false;
      let accepted = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        this.waiters.delete(entry.id);
        // etcd: a proposal raft never took (no leader) fails with the context's own
        // error; one raft took but that never applied, with a request timeout.
        reject(accepted ? this.timeoutError(started) : Errors.ProposalDeadline);
      }, this.reqTimeoutMs);
      this.waiters.set(entry.id, (r) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(r);
      });
      // While there is no leader (raft drops the proposal), wait for one and try again,
      // as etcd's proposals wait for a leader.
      const attempt = (): void => {
        if (this.stopped || done) return;
        this.raft.propose(data, (dropped) => {
          if (dropped === undefined) accepted = true;
          else if (this.raft.lead === 0n) this.leaderWaiters.add(attempt);
          else setTimeout(attempt, this.opts.heartbeatIntervalMs).unref(); // e.g. a leader transfer in progress
        });
      };
      attempt();
    });
  }

  /**
   * Hands a proposal to raft; while there is no leader (raft drops it), waits
   * for one and tries again, as etcd's proposals wait for a leader.
   */
  private submit(fn: () => void, abandoned: () => boolean): void {
    if (this.stopped || abandoned()) return;
    try {
      fn();
    } catch (err) {
      if (!(err instanceof RaftError && err.code === "ErrProposalDropped")) throw err;
      const retry = () => this.submit(fn, abandoned);
      if (this.raft.lead === 0n) this.leaderWaiters.add(retry);
      else setTimeout(retry, this.opts.heartbeatIntervalMs).unref(); // e.g. a leader transfer in progress
    }
  }

  /** etcd's parseProposeCtxErr: a timeout that spans a leader election says so. */
  private timeoutError(started: number): EtcdError {
    const lostAt = this.leadElectedAt - 2 * this.opts.electionTimeoutMs;
    if (started > lostAt && started < this.leadElectedAt) return Errors.TimeoutDueToLeaderFail;
    return Errors.Timeout;
  }

  private withApplyLock<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.applyChain.then(fn);
    this.applyChain = p.catch(() => undefined);
    return p;
  }

  /** The state machine: applies committed entries in order (called by the raft loop). */
  private applyEntries(entries: readonly Entry[]): Promise<ReadonlySet<bigint>> {
    return this.withApplyLock(async () => {
      const ops: BatchOp[] = [];
      const results: [Waiter, ApplyResult][] = [];
      const compactions: ApplyResult[] = [];
      const ccDone: [(err?: Error) => void, EtcdError | undefined][] = [];
      const refused = new Set<bigint>();
      let applied = 0;
      let removedSelf = false;
      // appliedIndex moves only once the batch is written and visible to reads:
      // a confirmed read (checkReads) may be served as soon as it is reached.
      let upTo = this.appliedIndex;
      for (const e of entries) {
        // Exactly once: what the backend already has (consistent_index) is skipped.
        if (e.index <= upTo) {
          // Raft's configuration was set to the membership as of consistent_index (at
          // start and after a restore: syncRaftConfig), so these conf changes are no-ops
          // for raft. Replaying them would also replay the ones refused when first
          // applied (validateConfChange), which the membership does not show.
          if (e.type === "confChange") refused.add(e.index);
          continue;
        }
        if (e.type === "confChange") {
          const cc = Raft.confChangeOf(e);
          const ctx = decodeCcContext(cc.context);
          const err = this.validateConfChange(cc, ctx?.member);
          if (err !== undefined) {
            refused.add(e.index);
            this.opts.logger.warn({ type: cc.type, id: idHex(cc.nodeId), err: err.message }, "refused a committed membership change");
          } else {
            if (this.applyMembership(cc, ctx?.member)) removedSelf = true;
            ops.push(this.membership.saveOp());
          }
          const w = ctx !== undefined ? this.ccWaiters.get(ctx.reqId) : undefined;
          if (w !== undefined && ctx !== undefined) {
            this.ccWaiters.delete(ctx.reqId);
            ccDone.push([w, err]);
          }
        } else if (e.data.length > 0) {
          const req = this.ownRequests.get(e.data) ?? fromBinary(InternalRequestSchema, e.data);
          let r: ApplyResult;
          if (req.request.case === "memberAttrSet") {
            const a = req.request.value;
            const m = this.membership.get(a.memberId);
            if (m !== undefined) {
              m.name = a.name;
              m.clientURLs = [...a.clientUrls];
              ops.push(this.membership.saveOp());
            }
            r = {};
          } else {
            r = await this.applier.apply(req, ops);
          }
          applied++;
          if (r.compactRev !== undefined) compactions.push(r);
          const w = this.waiters.get(req.id);
          if (w !== undefined) {
            this.waiters.delete(req.id);
            results.push([w, r]);
          }
        }
        upTo = e.index;
      }
      ops.push({ type: "put", key: metaKey("consistent_index"), value: int64(upTo) });
      // The raft log is the durability point; this write need not be synced, and
      // the apply need not wait for it (etcd answers once an apply is in its batch
      // transaction's buffer): it is visible to every read from this call on (the
      // backend's reads wait for the writes called before them), it lands after
      // the previous batch and before the next (one chain), and data and
      // consistent_index land together. A crash before it lands re-applies the
      // batch from the log. A failed write stops the member, as a failed persist does.
      this.backend.write(ops, false).catch((err: unknown) => this.fatal(err));
      this.metrics.proposalsCommitted.inc(applied);
      for (const { rev, changes } of this.store.markDurable(this.store.currentRev)) this.hub.notify(rev, changes);
      this.appliedIndex = upTo;
      // Every member compacts its own backend, whoever proposed the compaction.
      for (const r of compactions) {
        const done = this.store.startPhysicalCompaction(r.compactRev!);
        done.catch((err: unknown) => this.fatal(err));
        (r as ApplyResult & { physical?: Promise<void> }).physical = done;
      }
      for (const [w, r] of results) w(r);
      for (const [w, err] of ccDone) w(err);
      this.checkReads();
      if (removedSelf) setImmediate(() => this.onRemovedFromCluster());
      return refused;
    });
  }

  /**
   * etcd's ValidateConfigurationChange, when a change is applied: one that no
   * longer fits the membership (checks at proposal time can race) is refused,
   * its proposer gets the error, and raft applies it as a no-op. etcd answers
   * ErrIDRemoved ("membership: ID removed") as "etcdserver: member not found".
   */
  private validateConfChange(cc: ConfChange, m: MemberInfo | undefined): EtcdError | undefined {
    const id = cc.nodeId;
    if (this.membership.removed.has(id)) return Errors.MemberNotFound;
    const cur = this.membership.get(id);
    const urlTaken = (urls: readonly string[]) => this.membership.list().some((o) => o.id !== id && o.peerURLs.some((u) => urls.includes(u)));
    switch (cc.type) {
      case "addNode":
      case "addLearnerNode":
        if (cur !== undefined) {
          // An addNode for a known member is a promotion (IDs carry a timestamp, so a
          // duplicate add is not one): fine for a learner; for a voter it is a second
          // promotion, which etcd refuses with ErrMemberNotLearner.
          if (cc.type === "addNode") return cur.isLearner ? undefined : Errors.MemberNotLearner;
          return Errors.MemberExist;
        }
        if (m !== undefined && urlTaken(m.peerURLs)) return Errors.PeerURLExist;
        if (cc.type === "addLearnerNode" && this.membership.learnerCount() + 1 > (this.opts.maxLearners ?? 1)) return Errors.TooManyLearners;
        return undefined;
      case "removeNode":
        return cur === undefined ? Errors.MemberNotFound : undefined;
      case "updateNode":
        if (cur === undefined) return Errors.MemberNotFound;
        if (m !== undefined && urlTaken(m.peerURLs)) return Errors.PeerURLExist;
        return undefined;
    }
  }

  /** Applies one membership change to the membership and the transport. Returns true if it removed this member. */
  private applyMembership(cc: ConfChange, m: MemberInfo | undefined): boolean {
    const id = cc.nodeId;
    switch (cc.type) {
      case "addNode":
      case "addLearnerNode": {
        const cur = this.membership.get(id);
        if (cur !== undefined && cur.isLearner && cc.type === "addNode") this.membership.promote(id);
        else if (m !== undefined) this.membership.add({ ...m, id, isLearner: cc.type === "addLearnerNode" });
        const info = this.membership.get(id);
        if (info !== undefined && id !== this.memberId) this.transport.addPeer(id, info.peerURLs);
        return false;
      }
      case "removeNode":
        this.membership.remove(id);
        if (id === this.memberId) return true;
        this.transport.removePeer(id);
        return false;
      case "updateNode": {
        const cur = this.membership.get(id);
        if (cur !== undefined && m !== undefined) {
          cur.peerURLs = [...m.peerURLs];
          if (id !== this.memberId) this.transport.updatePeer(id, cur.peerURLs);
        }
        return false;
      }
    }
  }

  private onRemovedFromCluster(): void {
    if (this.removed) return;
    this.removed = true;
    this.opts.logger.warn("the member has been permanently removed from the cluster; stopping");
    void this.stop().finally(() => this.opts.onRemoved?.());
  }

  private onSoftState(ss: SoftState): void {
    const prevLead = this.lastLead;
    this.lastLead = ss.lead;
    if (ss.lead !== prevLead) {
      this.leadElectedAt = this.clock.now();
      this.metrics.hasLeader.set(ss.lead !== 0n ? 1 : 0);
      this.metrics.isLeader.set(ss.state === "leader" ? 1 : 0);
      if (ss.state === "leader") {
        // etcd's lessor.Promote: the new leader gives every lease its full TTL again
        // (plus an election timeout), since no one could renew them meanwhile.
        const now = this.clock.now();
        for (const l of this.lessor.all()) l.expiry = now + Number(l.ttl) * 1000 + this.opts.electionTimeoutMs;
      }
      if (prevLead !== 0n && this.readRound !== undefined && this.readRound.index === undefined) {
        const r = this.readRound;
        this.readRound = undefined;
        if (r.retry !== undefined) clearTimeout(r.retry);
        for (const w of r.waiters) w.reject(Errors.LeaderChanged);
      }
      if (ss.lead !== 0n) {
        const ws = [...this.leaderWaiters];
        this.leaderWaiters.clear();
        for (const w of ws) w();
        this.maybePublish();
      }
      this.maybeStartRead();
    }
  }
  private lastLead = 0n;

  /** etcd's publish: once there is a leader, replicate this member's name and client URLs. */
  private maybePublish(): void {
    if (this.published) return;
    this.published = true;
    const attempt = (): void => {
      if (this.stopped) return;
      const entry = create(InternalRequestSchema, {
        request: { case: "memberAttrSet", value: { memberId: this.memberId, name: this.opts.name, clientUrls: this.opts.advertiseClientUrls } },
      });
      entry.id = this.reqIds.next();
      this.proposeEntry(entry).then(
        () => {
          this.opts.logger.info({ clientUrls: this.opts.advertiseClientUrls }, "published local member to cluster");
          this.markReady();
        },
        () => setTimeout(attempt, 500).unref(),
      );
    };
    attempt();
  }

  // ---- linearizable reads ----

  /**
   * Resolves once this member has applied everything committed when the call
   * was made (etcd's linearizableReadNotify). Reads that arrive while a round is
   * in flight share the next round.
   */
  linearizableReadNotify(): Promise<void> {
    if (this.stopped) return Promise.reject(Errors.Stopped);
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        reject(Errors.Timeout);
      }, this.reqTimeoutMs);
      this.readNext.push({
        resolve: () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(e);
        },
      });
      this.maybeStartRead();
    });
  }

  private maybeStartRead(): void {
    if (this.stopped || this.readRound !== undefined || this.readNext.length === 0) return;
    const round: ReadRound = { ctx: "", waiters: this.readNext, index: undefined, retry: undefined };
    this.readNext = [];
    this.readRound = round;
    this.askReadIndex(round);
  }

  private askReadIndex(round: ReadRound): void {
    if (this.readRound !== round || this.stopped) return;
    // A fresh context per attempt, so a late answer to an old one cannot be taken for this one.
    const ctx = Buffer.alloc(16);
    ctx.writeBigUInt64BE(this.memberId, 0);
    ctx.writeBigUInt64BE(++this.readCounter, 8);
    round.ctx = ctx.toString("hex");
    if (this.raft.lead !== 0n) this.raft.readIndex(new Uint8Array(ctx));
    round.retry = setTimeout(() => this.askReadIndex(round), READ_RETRY_MS);
    round.retry.unref();
  }

  private onReadStates(rs: readonly ReadState[]): void {
    const r = this.readRound;
    if (r === undefined) return;
    for (const s of rs) {
      if (Buffer.from(s.requestCtx).toString("hex") === r.ctx) {
        r.index = s.index;
        if (r.retry !== undefined) clearTimeout(r.retry);
        r.retry = undefined;
      }
    }
    this.checkReads();
  }

  private checkReads(): void {
    const r = this.readRound;
    if (r === undefined || r.index === undefined || this.appliedIndex < r.index) return;
    this.readRound = undefined;
    for (const w of r.waiters) w.resolve();
    this.maybeStartRead();
  }

  private fatal(err: unknown): void {
    this.opts.logger.fatal({ err }, "unrecoverable error in the raft loop; stopping");
    this.stopped = true;
    if (this.opts.onFatal) this.opts.onFatal(err);
    else process.exit(1);
  }

  // ---- snapshots from the leader ----

  get snapDir(): string {
    return join(this.opts.dataDir, "member", "snap");
  }

  snapFile(index: bigint): string {
    return join(this.snapDir, snapDbName(index));
  }

  /**
   * A MsgSnap as it goes out (etcd's createMergedSnapshotMessage): raft made it
   * from the stored snapshot, whose configuration is as of its index; a member
   * added since is not in it, and its raft would refuse the snapshot ("not in
   * the ConfState") and wait for the next one — forever on an idle cluster. The
   * payload is the backend as it is when the send starts, which holds every
   * apply up to appliedIndex now (a read waits for the writes called before
   * it), so the message describes appliedIndex instead: its term, and raft's
   * current configuration. The dump may still reach past it (applies after this
   * call); the receiver skips entries up to the dump's consistent_index and
   * takes its membership (restoreFromFile). Left as it is when raft's log no
   * longer has the applied index's term (not expected: snapshots are taken at
   * applied indexes, and the log keeps what follows them).
   */
  private mergedSnapshotMessage(m: RaftMessage): RaftMessage {
    const snap = m.snapshot;
    const at = this.appliedIndex;
    if (snap === undefined || at <= snap.metadata.index) return m;
    let term: bigint;
    try {
      term = this.raft.rn.raft.raftLog.term(at);
    } catch {
      return m;
    }
    const confState = this.raft.rn.raft.trk.confState();
    return { ...m, snapshot: { metadata: { index: at, term, confState }, data: snap.data } };
  }

  /**
   * What follows a MsgSnap to a follower: the backend dump (snapshot.ts
   * format), read from one LevelDB snapshot as the connection drains.
   */
  private async *snapshotPayload(): AsyncGenerator<Uint8Array> {
    const { chunks } = await snapshotStream(this.backend);
    yield* chunks;
  }

  /** Stores a received backend dump durably, checked as it arrives, before raft learns of the snapshot. */
  private async receiveSnapshot(index: bigint, payload: AsyncIterable<Buffer>): Promise<void> {
    await mkdir(this.snapDir, { recursive: true, mode: 0o700 });
    const bytes = await receiveSnapshotFile(this.snapFile(index), payload);
    this.opts.logger.info({ index: index.toString(), bytes }, "stored a snapshot from the leader");
  }

  /**
   * Makes raft's configuration the given membership: members added (or their
   * role changed), others removed. Used where the membership is ahead of what raft
   * replayed: at start (the backend's membership is as of consistent_index, raft's
   * configuration as of the log's snapshot) and after a restore (the dump may
   * reach past its snapshot). Entries up to consistent_index that raft delivers
   * again are then no-ops for raft (applyEntries). An empty membership (a backend
   * that has applied nothing yet) changes nothing: raft learns it from the log.
   */
  syncRaftConfig(members: readonly { id: bigint; isLearner: boolean }[]): void {
    if (!members.some((m) => !m.isLearner)) return;
    const r = this.raft.rn.raft;
    const cs = r.trk.confState();
    for (const m of members) {
      if (m.isLearner && !cs.learners.includes(m.id)) r.applyConfChange({ type: "addLearnerNode", nodeId: m.id });
      if (!m.isLearner && !cs.voters.includes(m.id)) r.applyConfChange({ type: "addNode", nodeId: m.id });
    }
    for (const id of [...cs.voters, ...cs.learners]) {
      if (!members.some((m) => m.id === id)) r.applyConfChange({ type: "removeNode", nodeId: id });
    }
  }

  /**
   * The state machine's side of a leader snapshot that raft made durable at
   * `index`: replace the backend from the received file, unless the backend
   * already holds everything up to `index`. That happens when raft accepts a
   * second snapshot before the first is restored: the leader streams its
   * backend as it is when it sends, so the first dump can reach past the second
   * snapshot's index, and its restore purged every file at or below the new
   * applied index, the second one's included. (That backend is durable: a
   * restore swaps in a synced backend.)
   */
  async restoreSnapshot(index: bigint): Promise<void> {
    if (index <= this.appliedIndex) {
      this.opts.logger.info({ index: index.toString(), appliedIndex: this.appliedIndex.toString() }, "the backend already holds the snapshot; nothing to restore");
      await this.purgeSnapshots();
      return;
    }
    await this.restoreFromFile(this.snapFile(index));
  }

  /**
   * Replaces this member's state with a received backend dump: a new backend
   * is built from the file, record by record in batches, and swapped in (this
   * member's identity kept); then the store, lessor, alarms and membership
   * reload from it, and the applied index becomes the dump's consistent_index
   * (entries up to it are skipped when raft delivers them). The file is deleted
   * once the new backend is in place.
   */
  async restoreFromFile(path: string): Promise<void> {
    if (!existsSync(path)) throw new Error(`snapshot file ${path} is missing`);
    await this.withApplyLock(async () => {
      const fixed: BatchOp[] = [
        { type: "put", key: metaKey("member_id"), value: uint64(this.memberId) },
        { type: "put", key: metaKey("cluster_id"), value: uint64(this.clusterId) },
      ];
      // A physical compaction still running would write into the new backend.
      await this.store.compactionDone().catch(() => undefined);
      const { records, bytes } = await restoreBackend(this.backend, path, fixed);
      await this.store.reload();
      this.lessor.clear();
      await this.lessor.restore(this.backend, this.store.leasedKeys());
      this.alarms.clear();
      for await (const [k] of this.backend.range(Buffer.from([NS_ALARM]), Buffer.from([NS_ALARM + 1]))) this.alarms.load(k);
      const loaded = await Membership.load(this.backend);
      this.membership.members.clear();
      this.membership.removed.clear();
      for (const m of loaded.list()) this.membership.add(m);
      for (const id of loaded.removed) this.membership.removed.add(id);
      for (const m of this.membership.list()) {
        if (m.id === this.memberId) continue;
        if (this.transport.hasPeer(m.id)) this.transport.updatePeer(m.id, m.peerURLs);
        else this.transport.addPeer(m.id, m.peerURLs);
      }
      for (const id of this.transport.peerIds()) if (this.membership.get(id) === undefined) this.transport.removePeer(id);
      this.appliedIndex = (await this.backend.getMetaInt("consistent_index")) ?? this.appliedIndex;
      // Raft took the snapshot's configuration; the dump may reach past the snapshot.
      this.syncRaftConfig(this.membership.list());
      this.hub.resyncAll();
      await this.refreshSize();
      this.opts.logger.info(
        { appliedIndex: this.appliedIndex.toString(), revision: this.store.currentRev.toString(), records, bytes },
        "restored the backend from a leader snapshot",
      );
      await rm(path, { force: true });
      await this.purgeSnapshots();
    });
    this.checkReads();
  }

  /**
   * Deletes received snapshot files at or below the applied index (applied, or
   * refused by raft as stale); `leftovers` also deletes unfinished receives,
   * only safe while the peer port is not serving (at start).
   */
  private async purgeSnapshots(leftovers = false): Promise<void> {
    const gone = await purgeSnapDbs(this.snapDir, this.appliedIndex, { leftovers });
    if (gone.length > 0) this.opts.logger.info({ files: gone.join(",") }, "deleted applied or obsolete snapshot files");
  }

  // ---- membership ----

  private proposeConfChange(cc: { type: ConfChange["type"]; nodeId: bigint }, m: MemberInfo): Promise<void> {
    if (this.stopped) return Promise.reject(Errors.Stopped);
    const reqId = this.reqIds.next();
    const context = encodeCcContext(m, reqId);
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        this.ccWaiters.delete(reqId);
        reject(Errors.Timeout);
      }, this.reqTimeoutMs);
      this.ccWaiters.set(reqId, (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err !== undefined) reject(err);
        else resolve();
      });
      this.submit(() => this.raft.proposeConfChange({ ...cc, context }), () => done);
    });
  }

  private strict(): boolean {
    return this.opts.strictReconfigCheck ?? true;
  }

  /** etcd's IsReadyToAddVotingMember: a quorum of the grown cluster must have started (published). */
  private readyToAddVoter(): boolean {
    let members = 1;
    let started = 0;
    for (const m of this.membership.list()) {
      if (m.isLearner) continue;
      if (m.name !== "") started++;
      members++;
    }
    if (started === 1 && members === 2) return true;
    return started >= Math.floor(members / 2) + 1;
  }

  /** etcd's IsReadyToRemoveVotingMember: a quorum of what remains must have started. */
  private readyToRemoveVoter(id: bigint): boolean {
    let members = 0;
    let started = 0;
    for (const m of this.membership.list()) {
      if (m.isLearner || m.id === id) continue;
      if (m.name !== "") started++;
      members++;
    }
    return started >= Math.floor(members / 2) + 1;
  }

  async addMember(peerURLs: string[], isLearner: boolean): Promise<MemberInfo> {
    if (peerURLs.length === 0 || !peerURLs.every(validPeerUrl)) throw Errors.MemberBadURLs;
    for (const m of this.membership.list()) if (m.peerURLs.some((u) => peerURLs.includes(u))) throw Errors.PeerURLExist;
    if (isLearner && this.membership.learnerCount() >= (this.opts.maxLearners ?? 1)) throw Errors.TooManyLearners;
    if (!isLearner && this.strict() && !this.readyToAddVoter()) throw Errors.MemberNotEnoughStarted;
    // etcd's isConnectedFullySince (learners too): every voter reachable for the last health interval.
    if (this.strict() && !this.connectedToAllVotersSince(Date.now() - HEALTH_INTERVAL_MS)) throw Errors.Unhealthy;
    const id = memberIdFrom(peerURLs, this.opts.initialClusterToken, Math.floor(Date.now() / 1000));
    if (this.membership.get(id) !== undefined) throw Errors.MemberExist;
    // etcd refuses a removed ID when the change is applied (ErrIDRemoved, answered as "member not found"); say it at once.
    if (this.membership.removed.has(id)) throw Errors.MemberNotFound;
    const m: MemberInfo = { id, name: "", peerURLs: [...peerURLs], clientURLs: [], isLearner };
    await this.proposeConfChange({ type: isLearner ? "addLearnerNode" : "addNode", nodeId: id }, m);
    return m;
  }

  private connectedToAllVotersSince(since: number): boolean {
    for (const m of this.membership.list()) {
      if (m.isLearner || m.id === this.memberId) continue;
      const t = this.transport.activeSince(m.id);
      if (t === undefined || t > since) return false;
    }
    return true;
  }

  /**
   * etcd's RemoveMember with mayRemoveMember (strict reconfig check): removing a
   * voter needs a quorum of the remaining voters started ("not enough started
   * members") and, unless the member is down already, a quorum of them
   * connected to this member for the last health interval once it is gone
   * ("unhealthy cluster"). A learner is removed without checks. A removed or
   * unknown ID is "member not found" (etcd's ErrIDRemoved and ErrIDNotFound).
   */
  async removeMember(id: bigint): Promise<void> {
    const m = this.membership.get(id);
    if (m === undefined) throw Errors.MemberNotFound;
    if (!m.isLearner && this.strict()) {
      if (!this.readyToRemoveVoter(id)) throw Errors.MemberNotEnoughStarted;
      const down = id !== this.memberId && this.transport.activeSince(id) === undefined;
      if (!down) {
        const voters = this.membership.list().filter((v) => !v.isLearner);
        const active = this.votersConnectedSince(Date.now() - HEALTH_INTERVAL_MS, voters);
        if (active - 1 < 1 + Math.floor((voters.length - 1) / 2)) throw Errors.Unhealthy;
      }
    }
    await this.proposeConfChange({ type: "removeNode", nodeId: id }, m);
  }

  /** etcd's numConnectedSince: this member plus the voters whose link has been up since `since`. */
  private votersConnectedSince(since: number, voters: readonly MemberInfo[]): number {
    let n = 0;
    for (const v of voters) {
      if (v.id === this.memberId) n++;
      else {
        const t = this.transport.activeSince(v.id);
        if (t !== undefined && t < since) n++;
      }
    }
    return n;
  }

  async updateMember(id: bigint, peerURLs: string[]): Promise<void> {
    if (peerURLs.length === 0 || !peerURLs.every(validPeerUrl)) throw Errors.MemberBadURLs;
    const m = this.membership.get(id);
    if (m === undefined) throw Errors.MemberNotFound;
    for (const o of this.membership.list()) if (o.id !== id && o.peerURLs.some((u) => peerURLs.includes(u))) throw Errors.PeerURLExist;
    await this.proposeConfChange({ type: "updateNode", nodeId: id }, { ...m, peerURLs: [...peerURLs] });
  }

  /**
   * Promotes a learner to a voter. Only the leader knows whether the learner has
   * caught up, so a follower forwards the request to the leader's peer URL (etcd
   * does the same).
   */
  async promoteMember(id: bigint): Promise<void> {
    if (this.stopped) throw Errors.Stopped;
    if (!this.raft.isLeader) {
      const lead = this.raft.lead;
      const lm = lead === 0n ? undefined : this.membership.get(lead);
      if (lm === undefined) throw Errors.NoLeader;
      await forwardPromote(lm.peerURLs, id, this.clusterId, this.reqTimeoutMs);
      return;
    }
    const m = this.membership.get(id);
    if (m === undefined) throw Errors.MemberNotFound;
    if (!m.isLearner) throw Errors.MemberNotLearner;
    const progress = this.raft.status().progress;
    const leaderMatch = progress.get(this.memberId)?.match ?? 0n;
    const learnerMatch = progress.get(id)?.match ?? 0n;
    if (Number(learnerMatch) < Number(leaderMatch) * LEARNER_READY_PERCENT) throw Errors.LearnerNotReady;
    await this.proposeConfChange({ type: "addNode", nodeId: id }, { ...m, isLearner: false });
  }

  /** Maintenance.MoveLeader: only the leader hands leadership over, and only to a voter. */
  async moveLeader(target: bigint): Promise<void> {
    if (!this.raft.isLeader) throw Errors.NotLeader;
    const m = this.membership.get(target);
    if (m === undefined || m.isLearner) throw Errors.BadLeaderTransferee;
    if (target === this.memberId) return;
    this.raft.transferLeader(target);
    const deadline = Date.now() + this.reqTimeoutMs;
    while (this.raft.lead !== target) {
      if (this.stopped) throw Errors.Stopped;
      if (Date.now() > deadline) throw LeaderTransferTimeout;
      await new Promise((r) => setTimeout(r, this.opts.heartbeatIntervalMs));
    }
  }

  // ---- leases through the leader ----

  /** The leader's peer URLs, waiting a little for a leader to be known. */
  private async leaderPeerUrls(): Promise<string[]> {
    for (let i = 0; ; i++) {
      const lead = this.raft.lead;
      const m = lead === 0n ? undefined : this.membership.get(lead);
      if (m !== undefined) return m.peerURLs;
      if (this.stopped) throw Errors.Stopped;
      if (i * this.opts.heartbeatIntervalMs > this.reqTimeoutMs) throw Errors.Timeout;
      await new Promise((r) => setTimeout(r, this.opts.heartbeatIntervalMs));
    }
  }

  /**
   * LeaseKeepAlive: only the leader's lessor counts (it is the one that expires
   * leases), so a follower forwards the renewal to the leader's peer URL, as etcd
   * does. Returns the TTL granted again, or 0 for an unknown or expired lease.
   */
  async renewLease(id: bigint): Promise<bigint> {
    if (this.isLearner) throw Errors.NotSupportedForLearner;
    if (this.raft.isLeader) return this.lessor.renew(id) ?? 0n;
    return new Promise<bigint>((resolve, reject) => {
      // Renewals arriving in the same turn of the event loop go to the leader in one
      // request (with 1,000 clients keeping leases alive through a follower, one HTTP
      // request per renewal cost both members more CPU than everything else).
      if (this.pendingRenewals === undefined) {
        this.pendingRenewals = [];
        setImmediate(() => void this.forwardRenewals());
      }
      this.pendingRenewals.push({ id, resolve, reject });
    });
  }

  private pendingRenewals: { id: bigint; resolve: (ttl: bigint) => void; reject: (err: unknown) => void }[] | undefined;

  private async forwardRenewals(): Promise<void> {
    const batch = this.pendingRenewals ?? [];
    this.pendingRenewals = undefined;
    try {
      const ids = [...new Set(batch.map((r) => r.id.toString()))];
      const r = await this.forwardLease("renew", { ids });
      const ttls = new Map<string, bigint>();
      ids.forEach((id, i) => ttls.set(id, BigInt(r.ttls?.[i] ?? "0")));
      for (const p of batch) p.resolve(ttls.get(p.id.toString()) ?? 0n);
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }

  /** LeaseTimeToLive from the leader's lessor (TTL -1 for an unknown lease). */
  async leaseTimeToLive(id: bigint): Promise<{ ttl: bigint; grantedTTL: bigint; keys: string[] }> {
    if (this.raft.isLeader || this.raft.lead === 0n) {
      const l = this.lessor.lookup(id);
      if (l === undefined) return { ttl: -1n, grantedTTL: 0n, keys: [] };
      return { ttl: this.lessor.remaining(l), grantedTTL: l.ttl, keys: [...l.keys].sort() };
    }
    const r = await this.forwardLease("ttl", { id: id.toString() });
    return { ttl: BigInt(r.ttl), grantedTTL: BigInt(r.grantedTTL ?? "0"), keys: (r.keys ?? []).map((k) => Buffer.from(k, "base64").toString("latin1")) };
  }

  /**
   * The peer port's side of forwarded lease requests (answered by the leader):
   * a renewal of one lease (`id`, answered with `ttl`) or of several (`ids`,
   * answered with `ttls` in the same order), or a time-to-live lookup.
   */
  async servePeerLease(kind: "renew" | "ttl", id: bigint, ids?: readonly bigint[]): Promise<LeaseForwardReply> {
    if (!this.raft.isLeader) throw Errors.NotLeader;
    if (kind === "renew" && ids !== undefined) return { ttl: "0", ttls: ids.map((x) => String(this.lessor.renew(x) ?? 0n)) };
    if (kind === "renew") return { ttl: String(this.lessor.renew(id) ?? 0n) };
    const t = await this.leaseTimeToLive(id);
    return { ttl: String(t.ttl), grantedTTL: String(t.grantedTTL), keys: t.keys.map((k) => Buffer.from(k, "latin1").toString("base64")) };
  }

  private async forwardLease(kind: "renew" | "ttl", body: { id: string } | { ids: string[] }): Promise<LeaseForwardReply> {
    const deadline = Date.now() + this.reqTimeoutMs;
    let last: unknown;
    while (Date.now() < deadline && !this.stopped) {
      const urls = await this.leaderPeerUrls();
      for (const u of urls) {
        try {
          const res = await fetchJson(
            `${u.replace(/\/$/, "")}/leases/${kind}`,
            { method: "POST", headers: { "Content-Type": "application/json", "X-Etcd-Cluster-ID": idHex(this.clusterId) }, body: JSON.stringify(body) },
            Math.max(1, deadline - Date.now()),
          );
          if (res.status === 200) return (await res.json()) as LeaseForwardReply;
          last = new Error((await res.text()).trim());
        } catch (err) {
          last = err;
        }
      }
      await new Promise((r) => setTimeout(r, this.opts.heartbeatIntervalMs));
    }
    if (this.stopped) throw Errors.Stopped;
    this.opts.logger.warn({ err: last }, "forwarding a lease request to the leader failed");
    throw Errors.Timeout;
  }

  // ---- KV ----

  async range(req: RangeRequest): Promise<RangeResponse> {
    if (this.stopped) throw Errors.Stopped;
    if (!req.serializable) {
      // etcd serves only serializable reads on a learner.
      if (this.isLearner) throw Errors.NotSupportedForLearner;
      await this.linearizableReadNotify();
    }
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
    if (this.stopped) throw Errors.Stopped;
    if (this.isLearner) throw Errors.NotSupportedForLearner;
    const entry = create(InternalRequestSchema, { request: { case: "compaction", value: { revision, physical } } });
    entry.id = this.reqIds.next();
    const result = await this.proposeEntry(entry);
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

  /** Only the leader expires leases (etcd); followers' lessors never revoke on their own. */
  private revokeExpired(): void {
    if (this.stopped || !this.raft.isLeader) return;
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
    const end = Buffer.alloc(17);
    end[0] = NS_KV;
    end.writeBigInt64BE(at + 1n, 1);
    await this.store.compactionDone(); // hash what compaction leaves, not a moving target
    const hasher = new KvHasher({ compactRev: this.store.compactRev, rev: at, keep: this.store.index.keep(at) });
    for await (const [k, v] of this.backend.range(Buffer.from([NS_KV]), end)) {
      const { body, deleted } = kvRecordBody(v); // only a tombstone is decoded (for its key)
      hasher.add(decodeRev(k, 1), body, deleted, () => decodeKvRecord(v).kv.key);
    }
    const h = hasher.hash;
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
    // etcd purges snapshot files every 30 s (purgeFileInterval); here that catches a
    // received snapshot raft refused as stale (an applied one is deleted at once).
    every(30_000, () => void this.purgeSnapshots().catch((err: unknown) => this.opts.logger.warn({ err }, "failed to purge snapshot files")));
    this.metrics.quota.set(Number(this.quota));
    this.startAutoCompaction(every);
  }

  private startAutoCompaction(every: (ms: number, fn: () => void) => void): void {
    const retention = this.opts.autoCompactionRetention;
    if (retention <= 0n) return;
    const compactTo = (rev: bigint) => {
      // Only the leader's compactor proposes (etcd pauses it on followers).
      if (!this.raft.isLeader) return;
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

function validPeerUrl(u: string): boolean {
  try {
    const url = new URL(u);
    return (url.protocol === "http:" || url.protocol === "https:") && url.host !== "" && (url.pathname === "/" || url.pathname === "");
  } catch {
    return false;
  }
}

/** The reply to a lease request forwarded to the leader. */
export interface LeaseForwardReply {
  ttl: string;
  /** A renewal of several leases: their TTLs, in the order asked ("0": unknown or expired). */
  ttls?: string[];
  grantedTTL?: string;
  /** base64 */
  keys?: string[];
}

/** Members as the peer port's GET /members lists them. */
export interface PeerMemberJson {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner?: boolean;
}

async function fetchJson(url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), timeoutMs);
  try {
    return await fetch(url, { ...init, signal: ac.signal });
  } finally {
    clearTimeout(t);
  }
}

/**
 * A member starting with --initial-cluster-state existing asks the other
 * members listed in --initial-cluster for the cluster (etcd's
 * GetClusterFromRemotePeers) and finds itself by its peer URLs.
 */
/**
 * Whether one of the other initial members knows `id` with client URLs (it
 * published: it ran before). Peers that do not answer within a second, or
 * answer something else, count as "no", as in etcd.
 */
async function isMemberBootstrapped(members: readonly { id: bigint; peerURLs: readonly string[] }[], id: bigint): Promise<boolean> {
  for (const m of members) {
    if (m.id === id) continue;
    for (const u of m.peerURLs) {
      try {
        const res = await fetchJson(`${u.replace(/\/$/, "")}/members`, {}, 1000);
        if (res.status !== 200) continue;
        const list = (await res.json()) as PeerMemberJson[];
        const me = list.find((x) => typeof x.id === "string" && BigInt(`0x${x.id}`) === id);
        return me !== undefined && (me.clientURLs ?? []).length > 0;
      } catch {
        // not reachable (yet): try the next
      }
    }
  }
  return false;
}

async function fetchClusterFromPeers(opts: ServerOptions): Promise<{ memberId: bigint; clusterId: bigint; members: MemberInfo[] }> {
  const mine = [...opts.initialAdvertisePeerUrls].sort().join(",");
  const urls = (opts.initialCluster ?? []).filter((m) => [...m.peerUrls].sort().join(",") !== mine).flatMap((m) => m.peerUrls);
  let lastErr: unknown;
  for (let attempt = 0; attempt < 10; attempt++) {
    for (const u of urls) {
      try {
        const res = await fetchJson(`${u.replace(/\/$/, "")}/members`, {}, 1000);
        if (res.status !== 200) throw new Error(`GET ${u}/members: HTTP ${res.status}`);
        const cid = res.headers.get("x-etcd-cluster-id");
        const list = (await res.json()) as PeerMemberJson[];
        if (cid === null) throw new Error(`GET ${u}/members: no cluster ID`);
        const members = list.map((m) => ({
          id: BigInt(`0x${m.id}`),
          name: m.name,
          peerURLs: m.peerURLs,
          clientURLs: m.clientURLs,
          isLearner: m.isLearner ?? false,
        }));
        const me = members.find((m) => [...m.peerURLs].sort().join(",") === mine);
        if (me === undefined) throw new Error(`error validating peerURLs: the cluster has no member with peer URLs ${mine} (add it with MemberAdd first)`);
        return { memberId: me.id, clusterId: BigInt(`0x${cid}`), members };
      } catch (err) {
        lastErr = err;
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`cannot fetch cluster info from peer urls: ${lastErr instanceof Error ? lastErr.message : String(lastErr)}`);
}

/** A follower's MemberPromote, done by the leader (POST /members/promote/<id> on its peer port). */
async function forwardPromote(peerURLs: readonly string[], id: bigint, clusterId: bigint, timeoutMs: number): Promise<void> {
  let lastErr: unknown = Errors.NoLeader;
  for (const u of peerURLs) {
    try {
      const res = await fetchJson(`${u.replace(/\/$/, "")}/members/promote/${idHex(id)}`, { method: "POST", headers: { "X-Etcd-Cluster-ID": idHex(clusterId) } }, timeoutMs);
      if (res.status === 200) return;
      const text = (await res.text()).trim();
      const known = Object.values(Errors).find((e) => e.message === text);
      throw known ?? new Error(text);
    } catch (err) {
      if (err instanceof EtcdError) throw err;
      lastErr = err;
    }
  }
  throw lastErr;
}

/** The single-key read used by health checks. */
export function healthRange(): RangeRequest {
  return create(RangeRequestSchema, { key: Buffer.from("health"), limit: 1n, serializable: true, keysOnly: true });
}
