// Watches: delivering every change in a key range, in revision order, to many
// watchers grouped in streams (one client stream = one WatchStream).
//
// A watcher is either synced (it has received everything up to the store's
// durable revision, and new revisions are pushed to it as they become
// durable) or unsynced (it needs history from `next`, read from the backend
// by the sync loop). Memory is bounded per stream: when a stream's outbound
// queue is over budget, its synced watchers stop receiving pushes and turn
// unsynced at the revision they missed; they catch up from the backend once
// the client has drained the queue. A watcher whose `next` falls below the
// compaction revision is cancelled with compact_revision, as etcd does.
//
// Guarantees (etcd's): events are ordered by revision, never duplicated, and a
// revision's events for one watcher are never split across responses except
// by explicit fragmentation.

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { WatchResponseSchema, type ResponseHeader, type WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType, EventSchema, type Event, type KeyValue } from "../../gen/mvccpb/kv_pb.js";
import { keyStr } from "../mvcc/key_index.js";
import type { Change, MvccStore } from "../mvcc/store.js";


export interface WatcherSpec {
  key: Uint8Array;
  rangeEnd: Uint8Array;
  startRevision: bigint;
  prevKv: boolean;
  noPut: boolean;
  noDelete: boolean;
  progressNotify: boolean;
  fragment: boolean;
}

interface Watcher {
  readonly id: bigint;
  readonly start: string;
  /** undefined = one key; "" = to the end of the key space. */
  readonly end: string | undefined;
  readonly spec: WatcherSpec;
  readonly stream: WatchStream;
  /** The next revision this watcher has not yet been sent. */
  next: bigint;
  synced: boolean;
  /** Set when an event was sent since the last periodic progress tick. */
  active: boolean;
}

type ResponseInit = MessageInitShape<typeof WatchResponseSchema>;

/** Bytes of queued responses above which a stream's watchers stop receiving pushes. */
const STREAM_BUDGET_BYTES = 4 * 1024 * 1024;
/** Revisions read per catch-up step for one watcher. */
const CATCHUP_REVS = 1000;

function inRange(w: Watcher, k: string): boolean {
  if (w.end === undefined) return k === w.start;
  return k >= w.start && (w.end === "" || k < w.end);
}

function approxSize(ev: Event): number {
  return 64 + (ev.kv?.key.length ?? 0) + (ev.kv?.value.length ?? 0) + (ev.prevKv?.key.length ?? 0) + (ev.prevKv?.value.length ?? 0);
}

/**
 * The outbound side of one client watch stream. The transport loop calls
 * next() and writes what it gets (awaiting backpressure); the hub enqueues.
 */
export class WatchStream {
  readonly watchers = new Map<bigint, Watcher>();
  private readonly queue: WatchResponse[] = [];
  private queuedBytes = 0;
  private waiter: (() => void) | undefined;
  private nextId = 0n;
  closed = false;
  /** A progress request arrived while some watcher was unsynced: answer once all are synced. */
  progressPending = false;

  constructor(private readonly hub: WatchHub) {}

  get overBudget(): boolean {
    return this.queuedBytes > STREAM_BUDGET_BYTES;
  }

  /**
   * Queues a response. Control responses are always queued; event pushes check
   * overBudget first. `header`, when given, is a full header shared by every
   * response of one revision (the gRPC encoder encodes shared parts once).
   */
  enqueue(init: ResponseInit, bytes = 64, header?: ResponseHeader): void {
    if (this.closed) return;
    const msg = create(WatchResponseSchema, init);
    msg.header = header ?? this.hub.header(msg.header?.revision ?? this.hub.store.durableRev);
    this.queue.push(msg);
    this.queuedBytes += bytes;
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** The next response to send, or undefined once the stream is closed. */
  async next(): Promise<WatchResponse | undefined> {
    for (;;) {
      const m = this.queue.shift();
      if (m !== undefined) {
        this.queuedBytes = Math.max(0, this.queuedBytes - this.sizeOf(m));
        if (this.queue.length === 0) this.queuedBytes = 0;
        // Room again: let unsynced watchers catch up.
        if (!this.overBudget) this.hub.kick();
        return m;
      }
      if (this.closed) return undefined;
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  private sizeOf(m: WatchResponse): number {
    let n = 64;
    for (const e of m.events) n += approxSize(e);
    return n;
  }

  /** Creates a watcher; returns its id, or an error text for a created+canceled response. */
  allocateId(requestedId: bigint): { id: bigint } | { error: string } {
    let id = requestedId;
    if (id !== 0n) {
      if (this.watchers.has(id)) return { error: "mvcc: duplicate watch ID provided on the WatchStream" };
    } else {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    }
    return { id };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.forget(this);
    for (const w of this.watchers.values()) this.hub.remove(w);
    this.watchers.clear();
    this.queue.length = 0;
    const wk = this.waiter;
    this.waiter = undefined;
    wk?.();
  }
}

export interface HeaderSource {
  /** A full response header (cluster, member, term) at this revision. */
  header(rev: bigint): ResponseHeader;
}

export class WatchHub {
  private readonly synced = new Set<Watcher>();
  private readonly unsynced = new Set<Watcher>();
  private syncing = false;
  private syncAgain = false;
  private progressTimer: NodeJS.Timeout | undefined;
  private readonly streams = new Set<WatchStream>();

  constructor(
    readonly store: MvccStore,
    private readonly headers: HeaderSource,
    private readonly maxRequestBytes: number,
    progressIntervalMs: number,
  ) {
    if (progressIntervalMs > 0) {
      this.progressTimer = setInterval(() => this.periodicProgress(), progressIntervalMs);
      this.progressTimer.unref();
    }
  }

  header(rev: bigint) {
    return this.headers.header(rev);
  }

  /** Stops timers and closes every stream (their consumers see the end). */
  stop(): void {
    if (this.progressTimer !== undefined) clearInterval(this.progressTimer);
    for (const st of [...this.streams]) st.close();
  }

  openStream(): WatchStream {
    const st = new WatchStream(this);
    this.streams.add(st);
    return st;
  }

  /** @internal called by WatchStream.close */
  forget(st: WatchStream): void {
    this.streams.delete(st);
  }

  get watcherCount(): number {
    return this.synced.size + this.unsynced.size;
  }

  /** Open streams and registered watchers: both return to zero once every client stream has ended. */
  stats(): { streams: number; synced: number; unsynced: number } {
    return { streams: this.streams.size, synced: this.synced.size, unsynced: this.unsynced.size };
  }

  /**
   * Registers a watcher and queues its created response (before any event).
   * Errors become created+canceled responses with watch_id -1, as in etcd.
   */
  watch(stream: WatchStream, spec: WatcherSpec, requestedId: bigint): void {
    const cur = this.store.durableRev;
    const key = spec.key.length === 0 ? new Uint8Array([0]) : spec.key;
    const start = keyStr(key);
    let end: string | undefined;
    if (spec.rangeEnd.length === 0) end = undefined;
    else if (spec.rangeEnd.length === 1 && spec.rangeEnd[0] === 0) end = "";
    else end = keyStr(spec.rangeEnd);
    const fail = (reason: string) =>
      stream.enqueue({ header: { revision: cur }, watchId: -1n, created: true, canceled: true, cancelReason: reason });
    if (end !== undefined && end !== "" && start >= end) return fail("mvcc: watcher range is empty");
    if (spec.startRevision < 0n) return fail("etcdserver: mvcc: required revision has been compacted");
    const r = stream.allocateId(requestedId);
    if ("error" in r) return fail(r.error);
    const next = spec.startRevision === 0n || spec.startRevision > cur ? (spec.startRevision > cur + 1n ? spec.startRevision : cur + 1n) : spec.startRevision;
    const w: Watcher = { id: r.id, start, end, spec, stream, next, synced: false, active: false };
    stream.watchers.set(r.id, w);
    stream.enqueue({ header: { revision: cur }, watchId: r.id, created: true });
    if (next > cur) {
      w.synced = true;
      this.synced.add(w);
    } else {
      this.unsynced.add(w);
      this.kick();
    }
  }

  cancel(stream: WatchStream, id: bigint): void {
    const w = stream.watchers.get(id);
    if (w === undefined) return; // unknown ids are ignored, as etcd does
    stream.watchers.delete(id);
    this.remove(w);
    stream.enqueue({ header: { revision: this.store.durableRev }, watchId: id, canceled: true });
    this.maybeAnswerProgress(stream);
  }

  /** @internal */
  remove(w: Watcher): void {
    this.synced.delete(w);
    this.unsynced.delete(w);
  }

  /** On-demand progress: watch_id -1 at the current revision once every watcher of the stream is synced. */
  requestProgress(stream: WatchStream): void {
    stream.progressPending = true;
    this.maybeAnswerProgress(stream);
  }

  private maybeAnswerProgress(stream: WatchStream): void {
    if (!stream.progressPending) return;
    // etcd 3.5+ answers through one of the stream's watchers: a stream without
    // watchers gets no answer, and the request is not kept.
    if (stream.watchers.size === 0) {
      stream.progressPending = false;
      return;
    }
    for (const w of stream.watchers.values()) if (!w.synced) return;
    stream.progressPending = false;
    stream.enqueue({ header: { revision: this.store.durableRev }, watchId: -1n });
  }

  private periodicProgress(): void {
    const rev = this.store.durableRev;
    for (const w of this.synced) {
      if (!w.spec.progressNotify) continue;
      if (w.active) {
        w.active = false;
        continue;
      }
      w.stream.enqueue({ header: { revision: rev }, watchId: w.id });
    }
  }

  /**
   * Called by the apply loop after the revision `rev` is durable, with that
   * revision's changes (in sub-revision order).
   */
  notify(rev: bigint, changes: readonly Change[]): void {
    if (changes.length === 0 || this.synced.size === 0) return;
    // One Event per change (two with prev_kv) and one header for the whole
    // revision, shared by every watcher that receives them: fan-out to N
    // watchers costs N small responses, not N copies of the events, and the
    // gRPC encoder encodes the shared parts once (api/grpc/watch-encode.ts).
    const plain: Array<Event | undefined> = [];
    const withPrev: Array<Event | undefined> = [];
    const eventOf = (i: number, c: Change, prev: boolean): Event => {
      const cache = prev ? withPrev : plain;
      let e = cache[i];
      if (e === undefined) {
        e = create(EventSchema, { type: c.deleted ? Event_EventType.DELETE : Event_EventType.PUT, kv: c.kv, prevKv: prev ? c.prev : undefined });
        cache[i] = e;
      }
      return e;
    };
    const keys = changes.map((c) => keyStr(c.kv.key));
    const per = new Map<Watcher, Event[]>();
    changes.forEach((c, i) => {
      const k = keys[i] as string;
      for (const w of this.synced) {
        // A watcher created with a future start_revision waits for it.
        if (rev < w.next) continue;
        if (!inRange(w, k)) continue;
        if (c.deleted ? w.spec.noDelete : w.spec.noPut) continue;
        let evs = per.get(w);
        if (evs === undefined) per.set(w, (evs = []));
        evs.push(eventOf(i, c, w.spec.prevKv));
      }
    });
    let header: ResponseHeader | undefined;
    for (const w of this.synced) {
      const evs = per.get(w);
      if (evs === undefined) {
        if (rev >= w.next) w.next = rev + 1n;
        continue;
      }
      if (w.stream.overBudget) {
        // Slow client: stop pushing, catch up from the backend later.
        w.synced = false;
        this.synced.delete(w);
        this.unsynced.add(w);
        continue;
      }
      header ??= this.header(rev);
      this.send(w, rev, evs, header);
      w.next = rev + 1n;
    }
  }

  private send(w: Watcher, rev: bigint, events: Event[], header?: ResponseHeader): void {
    w.active = true;
    const limit = this.maxRequestBytes + 512 * 1024;
    let size = 0;
    for (const e of events) size += approxSize(e);
    if (!w.spec.fragment || size < limit || events.length < 2) {
      w.stream.enqueue({ header: { revision: rev }, watchId: w.id, events }, size, header);
      return;
    }
    let part: Event[] = [];
    let partSize = 0;
    for (const e of events) {
      const s = approxSize(e);
      if (part.length > 0 && partSize + s > limit) {
        w.stream.enqueue({ header: { revision: rev }, watchId: w.id, events: part, fragment: true }, partSize, header);
        part = [];
        partSize = 0;
      }
      part.push(e);
      partSize += s;
    }
    w.stream.enqueue({ header: { revision: rev }, watchId: w.id, events: part }, partSize, header);
  }

  /**
   * The store was replaced under the watchers (a snapshot from the leader):
   * every watcher catches up from the backend from the revision it expects next
   * (or is told it was compacted), as etcd moves its synced watchers to unsynced.
   */
  resyncAll(): void {
    for (const w of this.synced) {
      w.synced = false;
      this.unsynced.add(w);
    }
    this.synced.clear();
    this.kick();
  }

  /** Schedules a catch-up pass for unsynced watchers. */
  kick(): void {
    if (this.unsynced.size === 0) return;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = true;
    setImmediate(() => {
      this.syncUnsynced()
        .catch((err: unknown) => {
          // A failed catch-up read is retried on the next kick.
          process.emitWarning(`watch: catch-up failed: ${String(err)}`);
        })
        .finally(() => {
          this.syncing = false;
          if (this.syncAgain) {
            this.syncAgain = false;
            this.kick();
          }
        });
    });
  }

  private async syncUnsynced(): Promise<void> {
    let progressed = false;
    for (const w of [...this.unsynced]) {
      if (w.stream.closed || !w.stream.watchers.has(w.id)) {
        this.unsynced.delete(w);
        continue;
      }
      if (w.stream.overBudget) continue; // resumed when the stream drains
      const compactRev = this.store.compactRev;
      if (w.next < compactRev) {
        this.unsynced.delete(w);
        w.stream.watchers.delete(w.id);
        // etcd sends this response with revision 0 in its header.
        w.stream.enqueue({ header: { revision: 0n }, watchId: w.id, canceled: true, compactRevision: compactRev });
        continue;
      }
      const target = this.store.durableRev;
      if (w.next <= target) {
        const { changes, last, more } = await this.store.changesBetween(w.next, target, CATCHUP_REVS);
        if (!this.unsynced.has(w)) continue; // cancelled meanwhile
        progressed = true;
        const events: Event[] = [];
        for (const c of changes) {
          const k = keyStr(c.kv.key);
          if (!inRange(w, k)) continue;
          if (c.deleted ? w.spec.noDelete : w.spec.noPut) continue;
          let prev: KeyValue | undefined;
          if (w.spec.prevKv) prev = await this.prevOf(c.kv);
          events.push(create(EventSchema, { type: c.deleted ? Event_EventType.DELETE : Event_EventType.PUT, kv: c.kv, prevKv: prev }));
        }
        const upTo = more ? last : target;
        if (events.length > 0) this.send(w, upTo, events);
        w.next = upTo + 1n;
      }
      if (w.next > this.store.durableRev) {
        this.unsynced.delete(w);
        w.synced = true;
        this.synced.add(w);
        this.maybeAnswerProgress(w.stream);
      }
    }
    if (this.unsynced.size > 0 && progressed) {
      // More to read: continue soon without starving the loop. Watchers held
      // back by a full stream are resumed by that stream's drain instead.
      setTimeout(() => this.kick(), 10).unref();
    }
  }

  /** The key's value just before kv's revision; undefined if it did not exist or was compacted. */
  private async prevOf(kv: KeyValue): Promise<KeyValue | undefined> {
    try {
      const r = await this.store.range(kv.key, new Uint8Array(0), { rev: kv.modRevision - 1n });
      return r.kvs[0];
    } catch {
      return undefined;
    }
  }
}
