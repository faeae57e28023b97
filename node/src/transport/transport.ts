// The peer transport: Raft messages between etcd-ts members over HTTP/1.1 on the
// peer URL. Design and wire format: README.md in this folder.
//
//   member A                                          member B
//   reader(B) ── GET /raft/stream (From A, To B) ──►  handler: the connection becomes
//             ◄── 101, frames of B's messages to A ──  B's outbound stream to A
//   handler   ◄── GET /raft/stream (From B, To A) ──  reader(A)
//             ── 101, frames of A's messages to B ──►
//   snapshot  ── POST /raft/snapshot: MsgSnap + payload ──► handler → onSnapshot → 204
//
// A stream request asks to switch protocols (Upgrade: etcdts-raft-stream/1); after
// the 101 the frames go straight over the socket. A member answering 200 instead
// (an older etcd-ts, or a listener without upgradeHandler) sends them as the
// chunked response body, and both ends work either way.
//
// Every member dials each peer once to receive from it; what it sends goes down
// the response of the peer's dial. Sending never blocks: each peer has a bounded
// queue of encoded frames; when it is full the message is dropped and the raft
// node is told the peer is unreachable.

import * as http from "node:http";
import type { ClientRequest, IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex, Readable } from "node:stream";
import { isLocalMsg, type Message, type Rand } from "../raft/index.js";
import { CodecError, FRAME_HEADER_BYTES, FrameDecoder, KEEPALIVE_FRAME, decodeMessage, encodeMessageFrame, frameHeader } from "./codec.js";
import {
  ERR_MEMBER_REMOVED,
  H_CLUSTER_ID,
  H_FROM,
  H_TO,
  SNAPSHOT_PATH,
  STREAM_PATH,
  STREAM_PROTOCOL,
  SnapshotBody,
  TransportError,
  header,
  idHex,
  parseIdHex,
  readText,
  refusalFromResponse,
  refuse,
  refuseSocket,
  writeHead,
  type RefusalCode,
} from "./wire.js";

/** pino's Logger satisfies this. Every field value logged is a string or number (IDs in hex). */
export interface TransportLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const SILENT_TRANSPORT_LOGGER: TransportLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Clock and one-shot timers; tests may substitute their own. Times are milliseconds. */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const REAL_TIMERS: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

const MATH_RANDOM: Rand = { intn: (n) => Math.floor(Math.random() * n) };

export interface TransportLimits {
  /** Messages waiting for one peer's stream before new ones are dropped. */
  maxQueueMessages: number;
  /** Encoded bytes waiting for one peer's stream before new messages are dropped. */
  maxQueueBytes: number;
  /** Largest encoded message accepted (sent or received) on a stream, and largest MsgSnap header. */
  maxFrameBytes: number;
  /** An idle outbound stream carries an empty frame this often, so the reader can tell a live link. */
  keepaliveIntervalMs: number;
  /** A stream that brought nothing (not even a keepalive) for this long is dropped and redialed. */
  readIdleTimeoutMs: number;
  /** An outbound stream whose peer has not read anything for this long is closed. */
  writeStallTimeoutMs: number;
  /** A stream dial that got no response headers within this long is abandoned. */
  dialTimeoutMs: number;
  /** Redial backoff: base * 2^failures, capped at max, half of it jittered. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Redial delay after a refusal that retrying will not fix (cluster ID, target, removed). */
  refusedRetryMs: number;
  /** Snapshot payload frames are at most this big (larger source chunks are split). */
  snapshotChunkBytes: number;
  /** A snapshot upload that could not write anything for this long is aborted. */
  snapshotIdleTimeoutMs: number;
}

export const DEFAULT_LIMITS: TransportLimits = {
  maxQueueMessages: 4096,
  maxQueueBytes: 64 * 1024 * 1024,
  maxFrameBytes: 64 * 1024 * 1024,
  keepaliveIntervalMs: 1000,
  readIdleTimeoutMs: 5000,
  writeStallTimeoutMs: 5000,
  dialTimeoutMs: 3000,
  backoffBaseMs: 100,
  backoffMaxMs: 3000,
  refusedRetryMs: 30_000,
  snapshotChunkBytes: 256 * 1024,
  snapshotIdleTimeoutMs: 30_000,
};

export interface TransportOptions {
  clusterId: bigint;
  memberId: bigint;
  logger?: TransportLogger;
  timers?: Timers;
  /** Jitter for redial delays. */
  random?: Rand;
  limits?: Partial<TransportLimits>;
  /** Every message received from a peer, in order per peer. Called synchronously; must not block. */
  onMessage(m: Message): void;
  /** raft: RawNode.reportUnreachable(id). */
  onUnreachable?(id: bigint): void;
  /** raft: RawNode.reportSnapshot(id, ok). */
  onSnapshotStatus?(id: bigint, ok: boolean): void;
  /**
   * A snapshot arrived. Consume `payload` (it streams from the socket) and resolve
   * once it is safely stored; reject to refuse it. After it resolves, the MsgSnap is
   * passed to onMessage and the sender is told the snapshot was received. Without
   * this callback the payload is discarded and the MsgSnap is delivered as is.
   */
  onSnapshot?(m: Message, payload: AsyncIterable<Buffer>): Promise<void>;
  /**
   * The payload to stream after a MsgSnap that send() meets (the application's
   * database snapshot). Without it (or when it returns undefined) the MsgSnap goes
   * alone, its snapshot.data inline.
   */
  snapshotPayload?(m: Message): AsyncIterable<Uint8Array> | undefined;
  /**
   * Rewrites a MsgSnap just before it is sent (etcd's createMergedSnapshotMessage):
   * the payload is the database as it is at send time, so the message may describe
   * that instead of the stored snapshot it was made from. Called before
   * snapshotPayload, with what raft produced; returns the message to send.
   */
  snapshotMessage?(m: Message): Message;
  /** A peer refused us because this member was removed from the cluster. Called once. */
  onRemoved?(by: bigint): void;
  /** Whether `id` was removed from the cluster (besides the IDs passed to removePeer). */
  isRemoved?(id: bigint): boolean;
}

/** Liveness and counters of one peer, for health checks and metrics. */
export interface PeerStatus {
  readonly id: bigint;
  readonly urls: readonly string[];
  /** Both streams are up: the peer's messages reach us and ours reach it. */
  readonly active: boolean;
  /** Since when (Timers.now()) the link has been active; undefined while it is not. */
  readonly activeSince: number | undefined;
  /** The peer's stream to us is attached: what we send can be written. */
  readonly outbound: boolean;
  /** Our stream from the peer is open: what it sends reaches us. */
  readonly inbound: boolean;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  readonly sentMessages: number;
  readonly receivedMessages: number;
  readonly droppedMessages: number;
  readonly snapshotInFlight: boolean;
  /** The last reason a stream or snapshot failed, if any. */
  readonly lastError: string | undefined;
}

export type PeerHandler = (req: IncomingMessage, res: ServerResponse) => void;
/** The peer listener's 'upgrade' listener (see Transport.upgradeHandler). */
export type PeerUpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** A FIFO of encoded frames with a byte count. */
class FrameQueue {
  private items: (Buffer | undefined)[] = [];
  private head = 0;
  bytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(b: Buffer): void {
    this.items.push(b);
    this.bytes += b.length;
  }

  peek(): Buffer | undefined {
    return this.items[this.head];
  }

  shift(): Buffer | undefined {
    const b = this.items[this.head];
    if (b === undefined) return undefined;
    this.items[this.head++] = undefined;
    this.bytes -= b.length;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return b;
  }
}

/**
 * Where our messages to a peer are written: the socket of its stream request after
 * the switch of protocols, or the response to it (chunked) when it did not ask.
 */
interface StreamSink {
  write(b: Buffer): boolean;
  destroy(): void;
  on(event: "drain" | "close" | "error", fn: () => void): unknown;
}

/** A peer's stream request, answered: we write our messages to it. */
interface OutStream {
  readonly sink: StreamSink;
  waitingDrain: boolean;
  drainSince: number;
  lastWrite: number;
}

/** Our stream request to a peer: we read its messages from the response. */
interface InStream {
  readonly req: ClientRequest;
  /** The connection, once the peer switched protocols (the request no longer owns it). */
  socket: Duplex | undefined;
  readonly url: string;
  state: "dialing" | "open";
  readonly start: number;
  lastRead: number;
  done: boolean;
}

class Peer {
  urls: string[];
  urlIndex = 0;
  readonly queue = new FrameQueue();
  out: OutStream | undefined;
  in: InStream | undefined;
  outSince: number | undefined;
  inSince: number | undefined;
  activeSince: number | undefined;
  pumpScheduled = false;
  retryTimer: unknown;
  failures = 0;
  /** Drops since the last time the queue accepted a message (for log throttling). */
  dropRun = 0;
  sent = 0;
  received = 0;
  dropped = 0;
  lastError: string | undefined;
  /** The last refusal logged at error level, so repeats go to debug. */
  loggedRefusal: string | undefined;
  snapshot: AbortController | undefined;

  constructor(
    readonly id: bigint,
    urls: readonly string[],
  ) {
    this.urls = [...urls];
  }

  url(): string | undefined {
    return this.urls[this.urlIndex % Math.max(1, this.urls.length)];
  }
}

/** A refusal to answer a peer request with (status: the code's usual one when absent). */
interface Refusal {
  code: RefusalCode;
  message: string;
  status?: number;
}

/** Batch at most this many queued bytes into one write of the chunked response. */
const WRITE_BATCH_BYTES = 64 * 1024;

export class Transport {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  private readonly log: TransportLogger;
  private readonly timers: Timers;
  private readonly random: Rand;
  private readonly limits: TransportLimits;
  private readonly peers = new Map<bigint, Peer>();
  private readonly removed = new Set<bigint>();
  private readonly receiving = new Set<IncomingMessage>();
  private tickTimer: unknown;
  private stopped = false;
  private removedNotified = false;
  private warnedRequestTimeout = false;

  constructor(private readonly opts: TransportOptions) {
    this.clusterId = opts.clusterId;
    this.memberId = opts.memberId;
    this.log = opts.logger ?? SILENT_TRANSPORT_LOGGER;
    this.timers = opts.timers ?? REAL_TIMERS;
    this.random = opts.random ?? MATH_RANDOM;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
  }

  // ---- Membership ----

  /** Starts talking to a peer (no-op if it is known already). */
  addPeer(id: bigint, urls: readonly string[]): void {
    if (this.stopped) return;
    if (id === this.memberId) throw new Error(`transport: cannot add the local member ${idHex(id)} as a peer`);
    if (this.peers.has(id)) return;
    this.removed.delete(id);
    const p = new Peer(id, urls);
    this.peers.set(id, p);
    this.log.info({ peer: idHex(id), urls: p.urls.join(",") }, "added peer");
    this.ensureTicking();
    this.dial(p);
  }

  /**
   * Forgets a peer because it was removed from the cluster: its streams close,
   * its queue is discarded, and from now on its requests are refused with 403.
   */
  removePeer(id: bigint): void {
    this.removed.add(id);
    const p = this.peers.get(id);
    if (p === undefined) return;
    this.peers.delete(id);
    this.closePeer(p);
    this.log.info({ peer: idHex(id) }, "removed peer");
  }

  /** New URLs for a peer; a stream on a URL no longer listed is redialed. */
  updatePeer(id: bigint, urls: readonly string[]): void {
    const p = this.peers.get(id);
    if (p === undefined) return;
    p.urls = [...urls];
    p.urlIndex = 0;
    this.log.info({ peer: idHex(id), urls: p.urls.join(",") }, "updated peer URLs");
    if (p.in !== undefined && !p.urls.includes(p.in.url)) this.endInbound(p, p.in, new TransportError("io", "peer URLs changed"));
  }

  hasPeer(id: bigint): boolean {
    return this.peers.has(id);
  }

  peerIds(): bigint[] {
    return [...this.peers.keys()];
  }

  peerStatus(id: bigint): PeerStatus | undefined {
    const p = this.peers.get(id);
    if (p === undefined) return undefined;
    return {
      id,
      urls: [...p.urls],
      active: p.activeSince !== undefined,
      activeSince: p.activeSince,
      outbound: p.out !== undefined,
      inbound: p.in?.state === "open",
      queuedMessages: p.queue.length,
      queuedBytes: p.queue.bytes,
      sentMessages: p.sent,
      receivedMessages: p.received,
      droppedMessages: p.dropped,
      snapshotInFlight: p.snapshot !== undefined,
      lastError: p.lastError,
    };
  }

  /** When the link to `id` became active (Timers.now()), or undefined if it is not active. */
  activeSince(id: bigint): number | undefined {
    return this.peers.get(id)?.activeSince;
  }

  // ---- Sending ----

  /**
   * Queues messages for their peers and returns at once. A MsgSnap goes on its
   * own connection (see sendSnapshot). A message for an unknown peer is dropped;
   * one that finds its peer's queue full is dropped and reported unreachable.
   */
  send(msgs: readonly Message[]): void {
    if (this.stopped) return;
    for (const m of msgs) {
      if (m.to === this.memberId || isLocalMsg(m.type)) {
        this.log.warn({ type: m.type, to: idHex(m.to) }, "ignored a message that is not for a peer");
        continue;
      }
      const p = this.peers.get(m.to);
      if (p === undefined) {
        this.log.debug({ type: m.type, to: idHex(m.to) }, "ignored a message for an unknown peer");
        continue;
      }
      if (m.type === "MsgSnap") {
        const sm = this.opts.snapshotMessage?.(m) ?? m;
        void this.sendSnapshot(sm, this.opts.snapshotPayload?.(sm) ?? emptyPayload());
        continue;
      }
      this.enqueue(p, m);
    }
  }

  private enqueue(p: Peer, m: Message): void {
    const f = encodeMessageFrame(m);
    const bytes = f.length - FRAME_HEADER_BYTES;
    if (bytes > this.limits.maxFrameBytes) {
      p.dropped++;
      this.log.error({ peer: idHex(p.id), type: m.type, bytes, limit: this.limits.maxFrameBytes }, "dropped a message larger than the frame limit");
      this.reportUnreachable(p.id);
      return;
    }
    const q = p.queue;
    if (q.length >= this.limits.maxQueueMessages || q.bytes + f.length > this.limits.maxQueueBytes) {
      p.dropped++;
      if (p.dropRun++ === 0) {
        this.log.warn(
          { peer: idHex(p.id), type: m.type, queuedMessages: q.length, queuedBytes: q.bytes, outbound: p.out !== undefined },
          "dropped a message: the peer's send queue is full",
        );
      }
      this.reportUnreachable(p.id);
      return;
    }
    if (p.dropRun > 0) {
      this.log.info({ peer: idHex(p.id), dropped: p.dropRun }, "the peer's send queue has room again");
      p.dropRun = 0;
    }
    q.push(f);
    this.schedulePump(p);
  }

  private schedulePump(p: Peer): void {
    if (p.pumpScheduled || p.out === undefined) return;
    p.pumpScheduled = true;
    // One microtask later, so that the messages of one Ready go out in one write.
    queueMicrotask(() => {
      p.pumpScheduled = false;
      this.pump(p);
    });
  }

  /** Writes queued frames to the peer's stream until the socket pushes back. */
  private pump(p: Peer): void {
    const o = p.out;
    if (o === undefined || o.waitingDrain) return;
    const q = p.queue;
    while (q.length > 0) {
      const batch: Buffer[] = [];
      let bytes = 0;
      for (let next = q.peek(); next !== undefined && (batch.length === 0 || bytes + next.length <= WRITE_BATCH_BYTES); next = q.peek()) {
        q.shift();
        batch.push(next);
        bytes += next.length;
      }
      p.sent += batch.length;
      o.lastWrite = this.timers.now();
      const ok = o.sink.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch, bytes));
      if (!ok) {
        o.waitingDrain = true;
        o.drainSince = o.lastWrite;
        return;
      }
    }
  }

  /**
   * Sends a MsgSnap on a connection of its own, followed by `payload` read chunk by
   * chunk as the connection drains (never held whole). At most one per peer at a
   * time. Reports the outcome through onSnapshotStatus (and onUnreachable on
   * failure); the returned promise resolves to the same outcome and never rejects.
   */
  async sendSnapshot(m: Message, payload: AsyncIterable<Uint8Array>): Promise<boolean> {
    const p = this.peers.get(m.to);
    if (this.stopped || p === undefined || m.type !== "MsgSnap") {
      this.log.warn({ to: idHex(m.to), type: m.type }, "ignored a snapshot send (stopped, unknown peer, or not a MsgSnap)");
      return false;
    }
    if (p.snapshot !== undefined) {
      this.log.warn({ peer: idHex(p.id) }, "refused to send a second snapshot while one is in flight");
      this.opts.onSnapshotStatus?.(p.id, false);
      return false;
    }
    const ac = new AbortController();
    p.snapshot = ac;
    const index = (m.snapshot?.metadata.index ?? 0n).toString();
    this.log.info({ peer: idHex(p.id), index }, "sending snapshot");
    try {
      const bytes = await this.postSnapshot(p, m, payload, ac.signal);
      this.log.info({ peer: idHex(p.id), index, payloadBytes: bytes }, "sent snapshot");
      this.opts.onSnapshotStatus?.(p.id, true);
      return true;
    } catch (e) {
      const err = asTransportError(e);
      p.lastError = err.message;
      if (ac.signal.aborted) {
        this.log.info({ peer: idHex(p.id), index, reason: err.message }, "abandoned snapshot send");
        return false;
      }
      this.log.warn({ peer: idHex(p.id), index, code: err.code, err: err.message }, "failed to send snapshot");
      if (err.code === "member-removed") this.notifyRemoved(p.id);
      this.reportUnreachable(p.id);
      this.opts.onSnapshotStatus?.(p.id, false);
      return false;
    } finally {
      if (p.snapshot === ac) p.snapshot = undefined;
    }
  }

  private async postSnapshot(p: Peer, m: Message, payload: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<number> {
    const url = peerUrl(p.url(), SNAPSHOT_PATH);
    if (url === undefined) throw new TransportError("io", `peer ${idHex(p.id)} has no usable URL`);
    const req = http.request(url, {
      method: "POST",
      agent: false,
      headers: { ...this.requestHeaders(p.id), "Content-Type": "application/octet-stream" },
    });
    req.setNoDelay(true);
    const EARLY = new TransportError("io", "the peer answered before the snapshot was sent");
    let interrupted: Error | undefined;
    let wake: ((e: Error) => void) | undefined;
    const interrupt = (e: Error) => {
      interrupted ??= e;
      wake?.(interrupted);
    };
    const responded = new Promise<IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.on("error", reject);
    });
    responded.then(
      () => interrupt(EARLY),
      (e: Error) => interrupt(new TransportError("io", e.message)),
    );
    const onAbort = () => {
      const e = new TransportError("stopped", "snapshot send cancelled");
      interrupt(e);
      req.destroy(e);
    };
    signal.addEventListener("abort", onAbort, { once: true });

    const write = (buf: Uint8Array): Promise<void> => {
      if (interrupted !== undefined) return Promise.reject(interrupted);
      if (req.write(buf)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const done = (e?: Error) => {
          this.timers.clearTimeout(timer);
          req.off("drain", onDrain);
          wake = undefined;
          if (e === undefined) resolve();
          else reject(e);
        };
        const onDrain = () => done();
        const timer = this.timers.setTimeout(
          () => done(new TransportError("io", `snapshot upload made no progress for ${this.limits.snapshotIdleTimeoutMs} ms`)),
          this.limits.snapshotIdleTimeoutMs,
        );
        req.once("drain", onDrain);
        wake = done;
      });
    };

    let sent = 0;
    try {
      try {
        await write(encodeMessageFrame(m));
        const max = this.limits.snapshotChunkBytes;
        for await (const chunk of payload) {
          for (let off = 0; off < chunk.length; off += max) {
            const piece = chunk.subarray(off, Math.min(chunk.length, off + max));
            await write(frameHeader(piece.length));
            await write(piece);
            sent += piece.length;
          }
        }
        await write(KEEPALIVE_FRAME); // the empty frame: end of payload
        req.end();
      } catch (e) {
        // An early answer is a refusal: read it below. Anything else ends the attempt.
        if (e !== EARLY) {
          req.destroy();
          throw e;
        }
      }
      let res: IncomingMessage;
      try {
        res = await responded;
      } catch (e) {
        throw interrupted ?? new TransportError("io", (e as Error).message);
      }
      const text = await readText(res);
      if (res.statusCode === 204) return sent;
      req.destroy();
      throw refusalFromResponse(res.statusCode ?? 0, res.headers, text);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  // ---- Receiving: our stream from each peer ----

  private dial(p: Peer): void {
    p.retryTimer = undefined;
    if (this.stopped || this.peers.get(p.id) !== p || p.in !== undefined) return;
    const base = p.url();
    const url = peerUrl(base, STREAM_PATH);
    if (base === undefined || url === undefined) {
      p.lastError = `no usable URL in ${JSON.stringify(p.urls)}`;
      this.scheduleDial(p, this.limits.refusedRetryMs);
      return;
    }
    const req = http.request(url, {
      method: "GET",
      agent: false,
      headers: { ...this.requestHeaders(p.id), Connection: "Upgrade", Upgrade: STREAM_PROTOCOL },
    });
    const now = this.timers.now();
    const conn: InStream = { req, socket: undefined, url: base, state: "dialing", start: now, lastRead: now, done: false };
    p.in = conn;
    req.setNoDelay(true);
    req.on("response", (res) => this.onStreamResponse(p, conn, res));
    req.on("upgrade", (res, socket, head) => this.onStreamUpgrade(p, conn, res, socket, head));
    req.on("error", (err) => this.endInbound(p, conn, new TransportError("io", err.message)));
    req.end();
  }

  private onStreamResponse(p: Peer, conn: InStream, res: IncomingMessage): void {
    if (conn.done) {
      res.destroy();
      return;
    }
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      void readText(res).then((text) => this.endInbound(p, conn, refusalFromResponse(status, res.headers, text)));
      return;
    }
    const theirs = parseIdHex(header(res.headers, H_CLUSTER_ID));
    if (theirs !== this.clusterId) {
      res.destroy();
      this.endInbound(p, conn, this.clusterMismatch(p.id, header(res.headers, H_CLUSTER_ID), "response"));
      return;
    }
    this.openInbound(p, conn, res, undefined);
  }

  /** The peer answered our stream request with 101: its frames come straight over `socket`. */
  private onStreamUpgrade(p: Peer, conn: InStream, res: IncomingMessage, socket: Duplex, head: Buffer): void {
    conn.socket = socket;
    socket.on("error", () => undefined); // reported through 'close' once reading
    if (conn.done) {
      socket.destroy();
      return;
    }
    if ((header(res.headers, "upgrade") ?? "").toLowerCase() !== STREAM_PROTOCOL) {
      this.endInbound(p, conn, new TransportError("io", `the peer switched to protocol ${JSON.stringify(header(res.headers, "upgrade") ?? "")}, not ${STREAM_PROTOCOL}`));
      return;
    }
    if (parseIdHex(header(res.headers, H_CLUSTER_ID)) !== this.clusterId) {
      this.endInbound(p, conn, this.clusterMismatch(p.id, header(res.headers, H_CLUSTER_ID), "response"));
      return;
    }
    (socket as Socket).setNoDelay(true);
    (socket as Socket).setKeepAlive(true, 10_000);
    this.openInbound(p, conn, socket, head);
  }

  /** Reads the peer's frames from `src` (the response body, or the switched socket, whose first bytes may be `head`). */
  private openInbound(p: Peer, conn: InStream, src: Readable, head: Buffer | undefined): void {
    const now = this.timers.now();
    conn.state = "open";
    conn.lastRead = now;
    p.failures = 0;
    p.loggedRefusal = undefined;
    p.inSince = now;
    this.updateActive(p);
    this.log.info({ peer: idHex(p.id), url: conn.url }, "inbound stream established");
    const dec = new FrameDecoder(this.limits.maxFrameBytes);
    const onData = (chunk: Buffer) => {
      if (conn.done) return;
      conn.lastRead = this.timers.now();
      let frames: Uint8Array[];
      try {
        frames = dec.push(chunk);
      } catch (e) {
        this.endInbound(p, conn, new TransportError("io", (e as Error).message));
        return;
      }
      for (const f of frames) {
        if (conn.done) return; // onMessage may have stopped us
        if (f.length === 0) continue; // keepalive
        this.deliver(p, conn, f);
      }
    };
    src.on("data", onData);
    src.on("end", () => this.endInbound(p, conn, new TransportError("io", "stream closed by the peer")));
    src.on("error", (err) => this.endInbound(p, conn, new TransportError("io", err.message)));
    src.on("close", () => this.endInbound(p, conn, new TransportError("io", "stream closed")));
    if (head !== undefined && head.length > 0) onData(head);
  }

  private deliver(p: Peer, conn: InStream, f: Uint8Array): void {
    let m: Message;
    try {
      m = decodeMessage(f);
    } catch (e) {
      this.endInbound(p, conn, new TransportError("io", e instanceof CodecError ? e.message : String(e)));
      return;
    }
    if (isLocalMsg(m.type) || m.to !== this.memberId || m.from !== p.id) {
      this.log.warn({ peer: idHex(p.id), type: m.type, from: idHex(m.from), to: idHex(m.to) }, "dropped a misaddressed or local message from a peer");
      return;
    }
    p.received++;
    try {
      this.opts.onMessage(m);
    } catch (e) {
      this.log.error({ peer: idHex(p.id), type: m.type, err: String(e) }, "onMessage threw");
    }
  }

  /** Ends our stream from `p` (once) and schedules the next dial. */
  private endInbound(p: Peer, conn: InStream, err: TransportError): void {
    if (conn.done) return;
    conn.done = true;
    conn.req.destroy();
    conn.socket?.destroy();
    if (p.in === conn) p.in = undefined;
    if (this.stopped || this.peers.get(p.id) !== p) return;
    p.lastError = err.message;
    const peer = idHex(p.id);
    if (conn.state === "open") {
      p.inSince = undefined;
      this.updateActive(p);
      this.log.warn({ peer, err: err.message }, "lost inbound stream");
    } else {
      p.failures++;
      if (p.urls.length > 1) p.urlIndex = (p.urlIndex + 1) % p.urls.length;
    }
    let delay: number;
    if (err.isConfigRefusal) {
      // The peer will say the same thing next time: say it once, and ask rarely.
      const key = `${err.code}:${err.message}`;
      if (p.loggedRefusal !== key) {
        p.loggedRefusal = key;
        this.log.error({ peer, code: err.code, status: err.status ?? 0, err: err.message }, "peer refused our stream request");
      } else {
        this.log.debug({ peer, code: err.code }, "peer refused our stream request again");
      }
      if (err.code === "member-removed") this.notifyRemoved(p.id);
      delay = this.jitter(this.limits.refusedRetryMs);
    } else {
      if (conn.state !== "open") this.log.debug({ peer, failures: p.failures, err: err.message }, "stream dial failed");
      delay = conn.state === "open" ? this.jitter(this.limits.backoffBaseMs) : this.backoff(p.failures);
    }
    this.scheduleDial(p, delay);
  }

  private scheduleDial(p: Peer, ms: number): void {
    if (p.retryTimer !== undefined) this.timers.clearTimeout(p.retryTimer);
    p.retryTimer = this.timers.setTimeout(() => this.dial(p), ms);
  }

  private backoff(failures: number): number {
    const { backoffBaseMs, backoffMaxMs } = this.limits;
    const d = Math.min(backoffMaxMs, backoffBaseMs * 2 ** Math.min(failures - 1, 30));
    return this.jitter(d);
  }

  /** Half fixed, half random: between d/2 and d. */
  private jitter(d: number): number {
    const half = Math.floor(d / 2);
    return d - half + (half > 0 ? this.random.intn(half + 1) : 0);
  }

  // ---- Serving: the peer port's /raft* requests ----

  /** The request handler for /raft* on the peer listener (the member keeps /version and /members). */
  handler(): PeerHandler {
    return (req, res) => {
      const path = (req.url ?? "").split("?")[0] ?? "";
      if (this.stopped) {
        req.resume();
        refuse(res, "stopped", "the member is stopping");
        return;
      }
      if (path === STREAM_PATH) {
        if (req.method !== "GET") return methodNotAllowed(req, res, "GET");
        this.serveStream(req, res);
      } else if (path === SNAPSHOT_PATH) {
        if (req.method !== "POST") return methodNotAllowed(req, res, "POST");
        void this.serveSnapshot(req, res);
      } else {
        req.resume();
        res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
        res.end("404 page not found\n");
      }
    };
  }

  /**
   * Checks cluster ID, target and sender of a peer request (a stream's: the known
   * peer it comes from): the sender, or the refusal to answer with.
   */
  private check(req: IncomingMessage, what: "stream" | "snapshot"): { from: bigint } | Refusal {
    const fromText = header(req.headers, H_FROM);
    const from = parseIdHex(fromText);
    const theirCluster = header(req.headers, H_CLUSTER_ID);
    if (parseIdHex(theirCluster) !== this.clusterId) {
      const err = this.clusterMismatch(from, theirCluster, "request");
      this.log.warn({ from: fromText ?? "", remoteClusterId: theirCluster ?? "", what }, "refused a peer request: cluster ID mismatch");
      return { code: "cluster-id-mismatch", message: err.message };
    }
    if (from === undefined) return { code: "bad-request", message: `missing or malformed ${H_FROM} header` };
    const toText = header(req.headers, H_TO);
    if (parseIdHex(toText) !== this.memberId) {
      this.log.warn({ from: idHex(from), to: toText ?? "", what }, "refused a peer request meant for another member");
      return { code: "target-mismatch", message: `the request is for member ${toText ?? "(none)"}, but this is member ${idHex(this.memberId)}` };
    }
    if (this.isRemoved(from)) {
      this.log.warn({ from: idHex(from), what }, "refused a request from a removed member");
      // etcd's answers: 410 "removed member" to a stream, 403 to a message (here, a snapshot).
      if (what === "stream") return { code: "member-removed", message: "removed member", status: 410 };
      return { code: "member-removed", message: "cannot process message from removed member", status: 403 };
    }
    if (what === "stream" && !this.peers.has(from)) {
      this.log.debug({ from: idHex(from) }, "refused a stream from an unknown member");
      return { code: "unknown-sender", message: `member ${idHex(from)} is not a known peer of member ${idHex(this.memberId)}` };
    }
    return { from };
  }

  /** check(), answering a refusal on `res`: the sender, or undefined when refused. */
  private admit(req: IncomingMessage, res: ServerResponse, what: "stream" | "snapshot"): bigint | undefined {
    res.setHeader(H_CLUSTER_ID, idHex(this.clusterId));
    res.setHeader(H_FROM, idHex(this.memberId));
    const v = this.check(req, what);
    if ("from" in v) return v.from;
    refuse(res, v.code, v.message, v.status);
    return undefined;
  }

  /**
   * The peer listener's 'upgrade' listener: a stream request that asks for
   * STREAM_PROTOCOL is answered 101, and the connection carries our frames to the
   * peer from then on. (Node hands every request with an Upgrade header here once
   * the listener is installed; one asking for anything else is refused with 400.)
   */
  upgradeHandler(): PeerUpgradeHandler {
    return (req, socket) => {
      socket.on("error", () => undefined); // reported through 'close' once attached
      const ours = { [H_CLUSTER_ID]: idHex(this.clusterId), [H_FROM]: idHex(this.memberId) };
      const path = (req.url ?? "").split("?")[0] ?? "";
      const wanted = header(req.headers, "upgrade") ?? "";
      if (path !== STREAM_PATH || req.method !== "GET" || wanted.toLowerCase() !== STREAM_PROTOCOL) {
        const text = `this port switches protocols only for GET ${STREAM_PATH} to ${STREAM_PROTOCOL}, not for ${req.method ?? ""} ${path} to ${JSON.stringify(wanted)}\n`;
        writeHead(socket, 400, { ...ours, "Content-Type": "text/plain; charset=utf-8" }, text);
        return;
      }
      if (this.stopped) {
        refuseSocket(socket, ours, "stopped", "the member is stopping");
        return;
      }
      const v = this.check(req, "stream");
      if (!("from" in v)) {
        refuseSocket(socket, ours, v.code, v.message, v.status);
        return;
      }
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" +
          `Upgrade: ${STREAM_PROTOCOL}\r\n${H_CLUSTER_ID}: ${ours[H_CLUSTER_ID]}\r\n${H_FROM}: ${ours[H_FROM]}\r\n\r\n`,
      );
      (socket as Socket).setNoDelay(true);
      (socket as Socket).setKeepAlive(true, 10_000);
      // The peer sends nothing more on this connection: drop what comes, and end with it.
      socket.on("data", () => undefined);
      socket.on("end", () => socket.destroy());
      this.attachOutbound(this.peers.get(v.from)!, socket);
    };
  }

  private serveStream(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const from = this.admit(req, res, "stream");
    if (from === undefined) return;
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Cache-Control": "no-store" });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    res.socket?.setKeepAlive(true, 10_000);
    this.attachOutbound(this.peers.get(from)!, res);
  }

  /** Makes `sink` (an answered stream request) the way our messages go to `p`. */
  private attachOutbound(p: Peer, sink: StreamSink): void {
    const now = this.timers.now();
    const o: OutStream = { sink, waitingDrain: false, drainSince: now, lastWrite: now };
    if (p.out !== undefined) this.closeOutbound(p, "replaced by a newer stream from the peer", false);
    p.out = o;
    p.outSince = now;
    p.loggedRefusal = undefined;
    this.updateActive(p);
    this.log.info({ peer: idHex(p.id), queued: p.queue.length }, "outbound stream established");
    sink.on("drain", () => {
      if (p.out !== o) return;
      o.waitingDrain = false;
      this.pump(p);
    });
    sink.on("close", () => {
      if (p.out === o) this.closeOutbound(p, "stream closed by the peer", true);
    });
    sink.on("error", () => undefined);
    this.schedulePump(p);
  }

  private closeOutbound(p: Peer, reason: string, report: boolean): void {
    const o = p.out;
    if (o === undefined) return;
    p.out = undefined;
    p.outSince = undefined;
    this.updateActive(p);
    o.sink.destroy();
    p.lastError = reason;
    this.log.warn({ peer: idHex(p.id), reason, queued: p.queue.length }, "lost outbound stream");
    // Like a dropped message: raft stops pipelining appends into a link that broke.
    if (report) this.reportUnreachable(p.id);
  }

  private async serveSnapshot(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const from = this.admit(req, res, "snapshot");
    if (from === undefined) {
      req.resume();
      return;
    }
    this.checkRequestTimeout(req);
    this.receiving.add(req);
    res.on("error", () => undefined);
    try {
      const body = new SnapshotBody(req, this.limits.maxFrameBytes);
      let m: Message;
      try {
        m = decodeMessage(await body.readHeader());
      } catch (e) {
        refuse(res, "bad-request", `failed to read the snapshot message: ${(e as Error).message}`);
        return;
      }
      if (m.type !== "MsgSnap" || m.to !== this.memberId || m.from !== from) {
        refuse(res, "bad-request", `expected a MsgSnap from ${idHex(from)} to ${idHex(this.memberId)}, got ${m.type} from ${idHex(m.from)} to ${idHex(m.to)}`);
        return;
      }
      const index = (m.snapshot?.metadata.index ?? 0n).toString();
      this.log.info({ from: idHex(from), index }, "receiving snapshot");
      try {
        if (this.opts.onSnapshot !== undefined) await this.opts.onSnapshot(m, body.payload());
        await body.drain();
      } catch (e) {
        const text = e instanceof Error ? e.message : String(e);
        this.log.warn({ from: idHex(from), index, received: body.received, err: text }, "failed to receive snapshot");
        refuse(res, "snapshot-failed", `failed to receive snapshot: ${text}`);
        return;
      }
      this.log.info({ from: idHex(from), index, payloadBytes: body.received }, "received snapshot");
      const p = this.peers.get(from);
      if (p !== undefined) p.received++;
      try {
        this.opts.onMessage(m);
      } catch (e) {
        this.log.error({ from: idHex(from), err: String(e) }, "onMessage threw");
      }
      res.writeHead(204);
      res.end();
    } finally {
      this.receiving.delete(req);
    }
  }

  /** Node's server.requestTimeout (300 s by default) cuts request bodies, so snapshot uploads, short. */
  private checkRequestTimeout(req: IncomingMessage): void {
    if (this.warnedRequestTimeout) return;
    const server = (req.socket as { server?: { requestTimeout?: unknown } }).server;
    const t = server?.requestTimeout;
    if (typeof t === "number" && t > 0) {
      this.warnedRequestTimeout = true;
      this.log.warn(
        { requestTimeoutMs: t },
        "the peer listener's requestTimeout will cut snapshot uploads that take longer; create it with requestTimeout: 0",
      );
    }
  }

  // ---- Shared ----

  private requestHeaders(to: bigint): Record<string, string> {
    return {
      [H_CLUSTER_ID]: idHex(this.clusterId),
      [H_FROM]: idHex(this.memberId),
      [H_TO]: idHex(to),
    };
  }

  private clusterMismatch(peer: bigint | undefined, theirs: string | undefined, where: "request" | "response"): TransportError {
    const who = peer === undefined ? "the remote member" : `member ${idHex(peer)}`;
    const text =
      where === "request"
        ? `cluster ID mismatch: member ${idHex(this.memberId)} is in cluster ${idHex(this.clusterId)}, but ${who} sent a request for cluster ${theirs ?? "(none)"}`
        : `cluster ID mismatch: member ${idHex(this.memberId)} is in cluster ${idHex(this.clusterId)}, but ${who} answered for cluster ${theirs ?? "(none)"}`;
    return new TransportError("cluster-id-mismatch", text, 412);
  }

  private isRemoved(id: bigint): boolean {
    return this.removed.has(id) || (this.opts.isRemoved?.(id) ?? false);
  }

  private notifyRemoved(by: bigint): void {
    if (this.removedNotified) return;
    this.removedNotified = true;
    this.log.error({ by: idHex(by) }, ERR_MEMBER_REMOVED);
    try {
      this.opts.onRemoved?.(by);
    } catch (e) {
      this.log.error({ err: String(e) }, "onRemoved threw");
    }
  }

  private reportUnreachable(id: bigint): void {
    try {
      this.opts.onUnreachable?.(id);
    } catch (e) {
      this.log.error({ err: String(e) }, "onUnreachable threw");
    }
  }

  private updateActive(p: Peer): void {
    if (p.outSince !== undefined && p.inSince !== undefined) {
      if (p.activeSince === undefined) {
        p.activeSince = Math.max(p.outSince, p.inSince);
        this.log.info({ peer: idHex(p.id) }, "peer became active");
      }
    } else if (p.activeSince !== undefined) {
      p.activeSince = undefined;
      this.log.warn({ peer: idHex(p.id) }, "peer became inactive");
    }
  }

  private ensureTicking(): void {
    if (this.tickTimer !== undefined || this.stopped || this.peers.size === 0) return;
    const period = Math.max(1, Math.floor(this.limits.keepaliveIntervalMs / 2));
    this.tickTimer = this.timers.setTimeout(() => {
      this.tickTimer = undefined;
      this.tick();
      this.ensureTicking();
    }, period);
  }

  /** Keepalives, stalled writers, silent readers, slow dials. */
  private tick(): void {
    const now = this.timers.now();
    const l = this.limits;
    for (const p of this.peers.values()) {
      const o = p.out;
      if (o !== undefined) {
        if (o.waitingDrain) {
          if (now - o.drainSince >= l.writeStallTimeoutMs) this.closeOutbound(p, `the peer read nothing for ${now - o.drainSince} ms`, true);
        } else if (now - o.lastWrite >= l.keepaliveIntervalMs) {
          o.lastWrite = now;
          if (!o.sink.write(KEEPALIVE_FRAME)) {
            o.waitingDrain = true;
            o.drainSince = now;
          }
        }
      }
      const i = p.in;
      if (i !== undefined && !i.done) {
        if (i.state === "dialing" && now - i.start >= l.dialTimeoutMs) {
          this.endInbound(p, i, new TransportError("io", `no answer to the stream request within ${l.dialTimeoutMs} ms`));
        } else if (i.state === "open" && now - i.lastRead >= l.readIdleTimeoutMs) {
          this.endInbound(p, i, new TransportError("io", `nothing received for ${now - i.lastRead} ms`));
        }
      }
    }
  }

  private closePeer(p: Peer): void {
    if (p.retryTimer !== undefined) this.timers.clearTimeout(p.retryTimer);
    p.retryTimer = undefined;
    if (p.in !== undefined) {
      const c = p.in;
      c.done = true;
      p.in = undefined;
      c.req.destroy();
      c.socket?.destroy();
    }
    if (p.out !== undefined) {
      const o = p.out;
      p.out = undefined;
      o.sink.destroy();
    }
    p.outSince = p.inSince = p.activeSince = undefined;
    p.snapshot?.abort();
    while (p.queue.shift() !== undefined);
  }

  /** Closes every stream and connection; nothing is reported to raft afterwards. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.tickTimer !== undefined) this.timers.clearTimeout(this.tickTimer);
    this.tickTimer = undefined;
    for (const p of this.peers.values()) this.closePeer(p);
    this.peers.clear();
    for (const req of this.receiving) req.destroy();
    this.receiving.clear();
    this.log.info({}, "transport stopped");
  }
}

function methodNotAllowed(req: IncomingMessage, res: ServerResponse, allow: string): void {
  req.resume();
  res.writeHead(405, { Allow: allow, "Content-Type": "text/plain; charset=utf-8" });
  res.end("Method Not Allowed\n");
}

/**
 * The URL for `path` on a peer URL. "localhost" dials the IPv4 loopback, which is
 * what the member binds for it (member.ts hostPort).
 */
function peerUrl(base: string | undefined, path: string): URL | undefined {
  if (base === undefined) return undefined;
  try {
    const u = new URL(path, base);
    if (u.protocol !== "http:") return undefined;
    if (u.hostname === "localhost") u.hostname = "127.0.0.1";
    return u;
  } catch {
    return undefined;
  }
}

function asTransportError(e: unknown): TransportError {
  if (e instanceof TransportError) return e;
  return new TransportError("io", e instanceof Error ? e.message : String(e));
}

async function* emptyPayload(): AsyncGenerator<Uint8Array> {}
