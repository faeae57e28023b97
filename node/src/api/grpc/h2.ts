// Our own HTTP/2 server side, just what gRPC needs (RFC 9113). It carries the
// client port's gRPC calls; node:http2 remains as a fallback
// (ETCDTS_GRPC_TRANSPORT=node, see server.ts).
//
// Why: measured on the project's machine, a bare node:http2 server answering a
// fixed gRPC message reaches 0.74-0.93x etcd with one client, and a minimal
// framing of our own about twice node:http2 with one client and with 1,000
// (docs/perf-notes.md). node:http2 makes a Duplex, header objects both ways and
// several event-loop turns per call, and sends a unary answer's trailers one
// turn after its data; here a call's HEADERS, DATA and trailers leave in one
// write.
//
// Contract (what GrpcServer uses; the names follow node:http2's so that the
// same code drives both):
//   H2Connection(socket, opts, onStream) serves one connection whose first bytes
//   (the client preface) are in `head` or still to come on the socket.
//   onStream(stream, headers) is called once per request with its headers as an
//   object (lower-case names; a repeated name keeps its first value).
//   H2Stream: 'data' (Buffer), 'end', 'close' events; pause()/resume();
//   respond(headers, {endStream} | {waitForTrailers}); write() (false: wait for
//   'drain'); end(); 'wantTrailers' is emitted from end() once the data is
//   framed, and sendTrailers() sends them; close(code) resets the stream.
//   Nothing is sent beyond the peer's flow-control windows; our receive windows
//   are given back as the application takes data (not while a stream is paused).
//   Output of one event-loop turn goes out in one socket write.
//   Connection errors send GOAWAY with the error code and close the socket.

import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { encodeHeaderBlock, HpackDecoder, HpackError } from "../hpack.js";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

const DATA = 0x0;
const HEADERS = 0x1;
const PRIORITY = 0x2;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;

const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

const NO_ERROR = 0x0;
const PROTOCOL_ERROR = 0x1;
const FLOW_CONTROL_ERROR = 0x3;
const STREAM_CLOSED = 0x5;
const FRAME_SIZE_ERROR = 0x6;
const REFUSED_STREAM = 0x7;
const COMPRESSION_ERROR = 0x9;
const ENHANCE_YOUR_CALM = 0xb;

const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

/** The frames we accept are at most HTTP/2's default size: we never announce a larger one. */
const OUR_MAX_FRAME = 16384;
/** Our receive window per stream, announced in SETTINGS, and for the connection. */
const STREAM_WINDOW = 1 << 20;
const CONN_WINDOW = 1 << 24;
/** A header block larger than this (compressed) ends the connection. */
const MAX_HEADER_BLOCK = 1 << 20;
/** write() returns false once this many bytes wait in a stream (then 'drain'). */
const HIGH_WATER = 1 << 16;
/**
 * Once this many bytes wait in the socket for a client that does not read, we stop
 * reading from it and frame no more DATA until the socket drains.
 */
const SOCKET_HIGH_WATER = 1 << 20;
/** CONTINUATION frames one header block may use (each up to 16 KiB). */
const MAX_CONTINUATIONS = 64;
/** How long a closing connection may take to deliver what it still has to send. */
const CLOSE_GRACE_MS = 5000;
const MAX_WINDOW = 2 ** 31 - 1;
/**
 * Streams a client may reset: a burst of this many, refilled at RESET_RATE per second
 * (nghttp2's defaults; nghttp2 is the library under node:http2). A client opening and resetting
 * streams faster ("rapid reset") makes us start handlers for nothing: GOAWAY
 * ENHANCE_YOUR_CALM.
 */
const RESET_BURST = 1000;
const RESET_RATE = 33;

export interface H2Options {
  /** SETTINGS_MAX_CONCURRENT_STREAMS we announce and enforce; undefined: no limit. */
  readonly maxConcurrentStreams?: number;
  /** Ping the client every this many ms (0 or undefined: never); close if unanswered for timeoutMs. */
  readonly keepaliveTimeMs?: number;
  readonly keepaliveTimeoutMs?: number;
  /** A connection-level failure, said once, before the connection closes. */
  readonly onError?: (err: Error) => void;
}

export type H2Headers = Record<string, string>;

function frameHeader(len: number, type: number, flags: number, id: number): Buffer {
  const b = Buffer.allocUnsafe(9);
  b[0] = (len >>> 16) & 0xff;
  b[1] = (len >>> 8) & 0xff;
  b[2] = len & 0xff;
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(id, 5);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const encodedCache = new WeakMap<object, Buffer>();

/** A frozen headers object is encoded once (the common responses and trailers). */
function headerBlock(h: Readonly<Record<string, string | number>>): Buffer {
  const frozen = Object.isFrozen(h);
  if (frozen) {
    const c = encodedCache.get(h);
    if (c !== undefined) return c;
  }
  const fields: [string, string][] = [];
  // Pseudo-headers first (RFC 9113 section 8.3).
  for (const [k, v] of Object.entries(h)) if (k.startsWith(":")) fields.push([k, String(v)]);
  for (const [k, v] of Object.entries(h)) if (!k.startsWith(":")) fields.push([k.toLowerCase(), String(v)]);
  const b = encodeHeaderBlock(fields);
  if (frozen) encodedCache.set(h, b);
  return b;
}

export class H2Stream extends EventEmitter {
  /** node:http2's stream has a session; ours has none (GrpcServer checks). */
  readonly session = undefined;
  closed = false;
  readableEnded = false;
  private paused = false;
  private inbox: Buffer[] = [];
  private endPending = false;
  /** Bytes taken by the application and not yet given back to the client's window. */
  private unacked = 0;
  /** What the client may still send on this stream (our window as it knows it). */
  recvWindow = STREAM_WINDOW;
  /** The client's END_STREAM arrived (or the stream was reset). */
  remoteDone = false;
  /** We sent END_STREAM (or a reset). */
  private localDone = false;
  private headersSent = false;
  private waitForTrailers = false;
  private ending = false;
  /** DATA not yet framed (flow control); the bytes framed so far leave with the connection's next write. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private needDrain = false;
  sendWindow: number;

  constructor(
    readonly id: number,
    private readonly conn: H2Connection,
    sendWindow: number,
  ) {
    super();
    this.sendWindow = sendWindow;
  }

  /** node:http2's name for closed. */
  get destroyed(): boolean {
    return this.closed;
  }

  // ---- reading ----

  /** @internal DATA from the client. */
  receive(chunk: Buffer, end: boolean): void {
    // Known before the data is delivered: a handler that answers from its 'data'
    // listener must not reset a stream the client has already half-closed.
    if (end) this.remoteDone = true;
    if (chunk.length > 0) {
      if (this.paused || this.inbox.length > 0) this.inbox.push(chunk);
      else this.deliver(chunk);
    }
    if (end && !this.closed) {
      if (this.paused || this.inbox.length > 0) this.endPending = true;
      else this.finishReading();
    }
  }

  private deliver(chunk: Buffer): void {
    this.emit("data", chunk);
    this.giveBack(chunk.length);
  }

  private finishReading(): void {
    if (this.readableEnded || this.closed) return;
    this.readableEnded = true;
    this.emit("end");
  }

  /**
   * @internal `n` received bytes are done with (taken by the application, or padding it
   * never sees). The window is given back once half of it is used: fewer WINDOW_UPDATEs
   * than one per frame.
   */
  giveBack(n: number): void {
    this.unacked += n;
    if (this.unacked >= STREAM_WINDOW / 2 && !this.remoteDone) {
      this.conn.windowUpdate(this.id, this.unacked);
      this.recvWindow += this.unacked;
      this.unacked = 0;
    }
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    if (this.closed || (!this.paused && this.inbox.length === 0)) return this;
    this.paused = false;
    while (!this.paused && this.inbox.length > 0) this.deliver(this.inbox.shift()!);
    if (!this.paused && this.endPending) {
      this.endPending = false;
      this.finishReading();
    }
    return this;
  }

  isPaused(): boolean {
    return this.paused;
  }

  // ---- writing ----

  respond(headers: Readonly<Record<string, string | number>>, opts: { endStream?: boolean; waitForTrailers?: boolean } = {}): void {
    if (this.localDone || this.headersSent) return;
    this.headersSent = true;
    const end = opts.endStream === true;
    this.waitForTrailers = opts.waitForTrailers === true;
    this.conn.sendHeaders(this.id, headerBlock(headers), end);
    if (end) this.localEnd();
  }

  write(chunk: Uint8Array): boolean {
    if (this.localDone || this.ending) return false;
    if (chunk.length > 0) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
      this.pending.push(b);
      this.pendingBytes += b.length;
      this.flushData();
    }
    if (this.pendingBytes >= HIGH_WATER) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  end(chunk?: Uint8Array): void {
    if (this.localDone || this.ending) return;
    if (chunk !== undefined) this.write(chunk);
    this.ending = true;
    this.flushData();
  }

  sendTrailers(headers: Readonly<Record<string, string | number>>): void {
    if (this.localDone) return;
    this.conn.sendHeaders(this.id, headerBlock(headers), true);
    this.localEnd();
  }

  /** Resets the stream (RST_STREAM with `code`). */
  close(code = NO_ERROR): void {
    if (this.closed) return;
    if (!this.localDone || !this.remoteDone) this.conn.reset(this.id, code);
    this.destroy();
  }

  /** @internal Frames what the windows allow; called again on WINDOW_UPDATE. */
  flushData(): void {
    while (this.pending.length > 0 && !this.localDone) {
      if (this.conn.congested) {
        this.conn.waitingForSocket = true; // resumed once the socket has room (flushBlocked)
        return;
      }
      const room = Math.min(this.sendWindow, this.conn.sendWindow, this.conn.peerMaxFrame);
      if (room <= 0) return;
      let head = this.pending[0]!;
      if (head.length > room) {
        this.pending[0] = head.subarray(room);
        head = head.subarray(0, room);
      } else {
        this.pending.shift();
      }
      this.pendingBytes -= head.length;
      this.sendWindow -= head.length;
      this.conn.sendWindow -= head.length;
      const last = this.pending.length === 0 && this.ending && !this.waitForTrailers;
      this.conn.sendData(this.id, head, last);
      if (last) this.localEnd();
    }
    if (this.localDone) return;
    if (this.needDrain && this.pendingBytes < HIGH_WATER) {
      this.needDrain = false;
      this.emit("drain");
    }
    if (this.pending.length === 0 && this.ending) {
      if (this.waitForTrailers) {
        this.waitForTrailers = false;
        this.emit("wantTrailers");
        if (!this.localDone) this.sendTrailers({}); // no listener sent them: end the stream anyway
      } else {
        this.conn.sendData(this.id, Buffer.alloc(0), true);
        this.localEnd();
      }
    }
  }

  /** @internal The stream has data waiting for window. */
  get blocked(): boolean {
    return this.pending.length > 0 && !this.localDone;
  }

  /** We sent END_STREAM: the call is over for us, whatever the client has left to say. */
  private localEnd(): void {
    this.localDone = true;
    this.pending = [];
    this.pendingBytes = 0;
    // As grpc-go: a client still sending is told to stop (RST_STREAM NO_ERROR).
    if (!this.remoteDone) this.conn.reset(this.id, NO_ERROR);
    this.destroy();
  }

  /** @internal Ends the stream for good (reset by either side, or both sides done). */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.localDone = true;
    this.remoteDone = true;
    this.pending = [];
    this.inbox = [];
    this.conn.forget(this.id);
    // node:http2 emits 'close' asynchronously; so do we, so a handler never sees it mid-call.
    process.nextTick(() => this.emit("close"));
  }
}

export class H2Connection extends EventEmitter {
  private buf: Buffer = Buffer.alloc(0);
  private prefaceSeen = false;
  private settingsSeen = false;
  private readonly decoder = new HpackDecoder(4096, MAX_HEADER_BLOCK);
  private readonly streams = new Map<number, H2Stream>();
  private lastStreamId = 0;
  /** A header block being continued by CONTINUATION frames. */
  private cont: { id: number; end: boolean; parts: Buffer[]; size: number; frames: number } | undefined;
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  /** Reading is paused until the socket drains (a client that does not read). */
  private readPaused = false;
  /** @internal Some stream stopped framing DATA because the socket was full. */
  waitingForSocket = false;
  sendWindow = 65535;
  private peerInitialWindow = 65535;
  peerMaxFrame = 16384;
  private recvUnacked = 0;
  /** What the client may still send on the connection. */
  private recvWindow = CONN_WINDOW;
  private goingAway = false;
  private done = false;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private pingOutstanding = false;
  /** Streams opened and not yet closed (for SETTINGS_MAX_CONCURRENT_STREAMS). */
  private open = 0;
  private resetTokens = RESET_BURST;
  private resetRefilled = performance.now();

  constructor(
    private readonly socket: Duplex,
    private readonly opts: H2Options,
    private readonly onStream: (stream: H2Stream, headers: H2Headers) => void,
    head?: Buffer,
  ) {
    super();
    // Our SETTINGS, then a larger connection window.
    const settings: number[] = [SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW, SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_BLOCK];
    if (opts.maxConcurrentStreams !== undefined) settings.push(SETTINGS_MAX_CONCURRENT_STREAMS, opts.maxConcurrentStreams);
    const payload = Buffer.allocUnsafe((settings.length / 2) * 6);
    for (let i = 0; i < settings.length; i += 2) {
      payload.writeUInt16BE(settings[i]!, i * 3);
      payload.writeUInt32BE(settings[i + 1]!, i * 3 + 2);
    }
    this.queue(frameHeader(payload.length, SETTINGS, 0, 0), payload);
    this.queue(frameHeader(4, WINDOW_UPDATE, 0, 0), u32(CONN_WINDOW - 65535));
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("drain", () => this.onDrain());
    socket.on("error", () => this.terminate());
    socket.once("close", () => this.terminate());
    socket.once("end", () => this.terminate());
    const every = opts.keepaliveTimeMs ?? 0;
    if (every > 0 && every < 2 ** 31) {
      this.keepaliveTimer = setInterval(() => this.keepalive(), every);
      this.keepaliveTimer.unref();
    }
    if (head !== undefined && head.length > 0) this.onData(head);
  }

  get closed(): boolean {
    return this.done;
  }

  get destroyed(): boolean {
    return this.done;
  }

  /** Graceful: GOAWAY, calls in progress may finish, new ones are refused; the socket closes once none is left. */
  close(): void {
    if (this.done || this.goingAway) return;
    this.goingAway = true;
    this.goaway(NO_ERROR);
    if (this.streams.size === 0) this.endSoon();
  }

  /** Ends the connection now; every call on it ends. */
  destroy(): void {
    if (this.done) return;
    this.flushNow();
    this.socket.destroy();
    this.terminate();
  }

  /** @internal More output waits for the socket than a client that reads would leave there. */
  get congested(): boolean {
    return this.outBytes + this.socket.writableLength >= SOCKET_HIGH_WATER;
  }

  private onDrain(): void {
    if (this.done) return;
    if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
    this.flushBlocked();
  }

  // ---- input ----

  private onData(chunk: Buffer): void {
    if (this.done) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    try {
      this.parse();
    } catch (err) {
      const e = err instanceof ConnectionError ? err : new ConnectionError(err instanceof HpackError ? COMPRESSION_ERROR : PROTOCOL_ERROR, String(err));
      this.opts.onError?.(e);
      this.goaway(e.code);
      this.closeAfterFlush();
    }
  }

  private parse(): void {
    let i = 0;
    const b = this.buf;
    if (!this.prefaceSeen) {
      if (b.length < PREFACE.length) {
        if (!PREFACE.subarray(0, b.length).equals(b)) throw new ConnectionError(PROTOCOL_ERROR, "not an HTTP/2 client preface");
        return;
      }
      if (!b.subarray(0, PREFACE.length).equals(PREFACE)) throw new ConnectionError(PROTOCOL_ERROR, "not an HTTP/2 client preface");
      this.prefaceSeen = true;
      i = PREFACE.length;
    }
    while (!this.done && b.length - i >= 9) {
      const len = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
      if (len > OUR_MAX_FRAME) throw new ConnectionError(FRAME_SIZE_ERROR, `frame of ${len} bytes`);
      if (b.length - i < 9 + len) break;
      const type = b[i + 3]!;
      const flags = b[i + 4]!;
      const id = b.readUInt32BE(i + 5) & 0x7fffffff;
      const payload = b.subarray(i + 9, i + 9 + len);
      i += 9 + len;
      this.frame(type, flags, id, payload);
    }
    this.buf = i === b.length ? Buffer.alloc(0) : b.subarray(i);
  }

  private frame(type: number, flags: number, id: number, p: Buffer): void {
    if (!this.settingsSeen) {
      if (type !== SETTINGS || (flags & FLAG_ACK) !== 0) throw new ConnectionError(PROTOCOL_ERROR, "the client's first frame is not SETTINGS");
      this.settingsSeen = true;
    }
    if (this.cont !== undefined && (type !== CONTINUATION || id !== this.cont.id)) {
      throw new ConnectionError(PROTOCOL_ERROR, "a header block was interrupted");
    }
    switch (type) {
      case DATA:
        return this.onDataFrame(flags, id, p);
      case HEADERS:
        return this.onHeaders(flags, id, p);
      case CONTINUATION:
        return this.onContinuation(flags, id, p);
      case PRIORITY:
        if (id === 0) throw new ConnectionError(PROTOCOL_ERROR, "PRIORITY on stream 0");
        if (p.length !== 5) throw new ConnectionError(FRAME_SIZE_ERROR, "PRIORITY of the wrong size");
        return;
      case RST_STREAM: {
        if (id === 0) throw new ConnectionError(PROTOCOL_ERROR, "RST_STREAM on stream 0");
        if (p.length !== 4) throw new ConnectionError(FRAME_SIZE_ERROR, "RST_STREAM of the wrong size");
        if (id > this.lastStreamId) throw new ConnectionError(PROTOCOL_ERROR, "RST_STREAM on an idle stream");
        this.chargeReset();
        this.streams.get(id)?.destroy();
        return;
      }
      case SETTINGS:
        return this.onSettings(flags, id, p);
      case PING:
        if (id !== 0) throw new ConnectionError(PROTOCOL_ERROR, "PING on a stream");
        if (p.length !== 8) throw new ConnectionError(FRAME_SIZE_ERROR, "PING of the wrong size");
        if ((flags & FLAG_ACK) !== 0) {
          this.pingOutstanding = false;
          if (this.pingTimer !== undefined) clearTimeout(this.pingTimer);
          this.pingTimer = undefined;
        } else {
          this.queue(frameHeader(8, PING, FLAG_ACK, 0), Buffer.from(p));
        }
        return;
      case GOAWAY:
        if (id !== 0) throw new ConnectionError(PROTOCOL_ERROR, "GOAWAY on a stream");
        return; // the client opens no new streams; those in progress go on
      case WINDOW_UPDATE:
        return this.onWindowUpdate(id, p);
      default:
        return; // unknown frame types are ignored (section 4.1)
    }
  }

  /**
   * A stream reset by the client, or one we reset because of what the client sent:
   * both end streams whose handlers may already run, so both count.
   */
  private chargeReset(): void {
    const now = performance.now();
    this.resetTokens = Math.min(RESET_BURST, this.resetTokens + ((now - this.resetRefilled) / 1000) * RESET_RATE);
    this.resetRefilled = now;
    if (--this.resetTokens < 0) throw new ConnectionError(ENHANCE_YOUR_CALM, "too many streams reset");
  }

  private onSettings(flags: number, id: number, p: Buffer): void {
    if (id !== 0) throw new ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream");
    if ((flags & FLAG_ACK) !== 0) {
      if (p.length !== 0) throw new ConnectionError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
      return;
    }
    if (p.length % 6 !== 0) throw new ConnectionError(FRAME_SIZE_ERROR, "SETTINGS of the wrong size");
    for (let i = 0; i < p.length; i += 6) {
      const key = p.readUInt16BE(i);
      const v = p.readUInt32BE(i + 2);
      if (key === SETTINGS_INITIAL_WINDOW_SIZE) {
        if (v > MAX_WINDOW) throw new ConnectionError(FLOW_CONTROL_ERROR, "initial window too large");
        const delta = v - this.peerInitialWindow;
        this.peerInitialWindow = v;
        for (const s of this.streams.values()) {
          s.sendWindow += delta;
          if (s.sendWindow > MAX_WINDOW) throw new ConnectionError(FLOW_CONTROL_ERROR, "a stream's window above 2^31-1");
        }
      } else if (key === SETTINGS_MAX_FRAME_SIZE) {
        if (v < 16384 || v > 16777215) throw new ConnectionError(PROTOCOL_ERROR, "bad SETTINGS_MAX_FRAME_SIZE");
        this.peerMaxFrame = v;
      } else if (key === SETTINGS_ENABLE_PUSH && v > 1) {
        throw new ConnectionError(PROTOCOL_ERROR, "bad SETTINGS_ENABLE_PUSH");
      }
      // The others need nothing: SETTINGS_HEADER_TABLE_SIZE, for one, concerns only the
      // dynamic table, which our encoder never uses.
    }
    this.queue(frameHeader(0, SETTINGS, FLAG_ACK, 0));
    if (this.peerInitialWindow > 0) this.flushBlocked();
  }

  private onWindowUpdate(id: number, p: Buffer): void {
    if (p.length !== 4) throw new ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size");
    const inc = p.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (inc === 0) throw new ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
      this.sendWindow += inc;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(FLOW_CONTROL_ERROR, "connection window above 2^31-1");
      this.flushBlocked();
      return;
    }
    const s = this.streams.get(id);
    if (s === undefined) {
      if (id > this.lastStreamId) throw new ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
      return; // a stream that just closed
    }
    if (inc === 0) {
      this.chargeReset();
      this.reset(id, PROTOCOL_ERROR);
      s.destroy();
      return;
    }
    s.sendWindow += inc;
    if (s.sendWindow > MAX_WINDOW) {
      this.chargeReset();
      this.reset(id, FLOW_CONTROL_ERROR);
      s.destroy();
      return;
    }
    s.flushData();
  }

  private flushBlocked(): void {
    this.waitingForSocket = false;
    for (const s of this.streams.values()) {
      if (this.sendWindow <= 0 || this.congested) return;
      if (s.blocked) s.flushData();
    }
  }

  private onHeaders(flags: number, id: number, p: Buffer): void {
    if (id === 0 || id % 2 === 0) throw new ConnectionError(PROTOCOL_ERROR, `HEADERS on stream ${id}`);
    let start = 0;
    let end = p.length;
    if ((flags & FLAG_PADDED) !== 0) {
      if (p.length < 1) throw new ConnectionError(PROTOCOL_ERROR, "padded HEADERS too short");
      end -= p[0]!;
      start = 1;
    }
    if ((flags & FLAG_PRIORITY) !== 0) start += 5;
    if (end < start) throw new ConnectionError(PROTOCOL_ERROR, "HEADERS padding longer than the frame");
    const block = p.subarray(start, end);
    const endStream = (flags & FLAG_END_STREAM) !== 0;
    if ((flags & FLAG_END_HEADERS) === 0) {
      this.cont = { id, end: endStream, parts: [Buffer.from(block)], size: block.length, frames: 0 };
      return;
    }
    this.headerBlock(id, block, endStream);
  }

  private onContinuation(flags: number, id: number, p: Buffer): void {
    const c = this.cont;
    if (c === undefined || c.id !== id) throw new ConnectionError(PROTOCOL_ERROR, "CONTINUATION without HEADERS");
    // Empty CONTINUATIONs add nothing to the size: their number is bounded too.
    if (++c.frames > MAX_CONTINUATIONS) throw new ConnectionError(ENHANCE_YOUR_CALM, "too many CONTINUATION frames");
    c.parts.push(Buffer.from(p));
    c.size += p.length;
    if (c.size > MAX_HEADER_BLOCK) throw new ConnectionError(ENHANCE_YOUR_CALM, "header block too large");
    if ((flags & FLAG_END_HEADERS) === 0) return;
    this.cont = undefined;
    this.headerBlock(id, Buffer.concat(c.parts), c.end);
  }

  private headerBlock(id: number, block: Buffer, endStream: boolean): void {
    // Decoded even for a stream we refuse: the table must follow the client's encoder.
    const fields = this.decoder.decode(block);
    const existing = this.streams.get(id);
    if (existing !== undefined) {
      // Trailers from the client: gRPC requests carry none, but they end the request.
      if (!endStream) throw new ConnectionError(PROTOCOL_ERROR, "a second HEADERS without END_STREAM");
      existing.receive(Buffer.alloc(0), true);
      return;
    }
    // A stream already closed (we answered and reset it, say): nothing to do, the block was decoded.
    if (id <= this.lastStreamId) return;
    this.lastStreamId = id;
    if (this.goingAway || (this.opts.maxConcurrentStreams !== undefined && this.open >= this.opts.maxConcurrentStreams)) {
      this.reset(id, REFUSED_STREAM);
      return;
    }
    // No prototype: a header may be called "constructor" or "__proto__".
    const headers = Object.create(null) as H2Headers;
    for (const [k, v] of fields) if (headers[k] === undefined) headers[k] = v;
    const s = new H2Stream(id, this, this.peerInitialWindow);
    this.streams.set(id, s);
    this.open++;
    this.onStream(s, headers);
    if (endStream) s.receive(Buffer.alloc(0), true);
  }

  private onDataFrame(flags: number, id: number, p: Buffer): void {
    if (id === 0) throw new ConnectionError(PROTOCOL_ERROR, "DATA on stream 0");
    // Flow control counts the whole frame, padding included (section 6.9.1). A client
    // sending beyond the window it was given breaks the protocol (it would make us buffer
    // without bound while a stream is paused).
    this.recvWindow -= p.length;
    if (this.recvWindow < 0) throw new ConnectionError(FLOW_CONTROL_ERROR, "DATA beyond the connection's window");
    this.recvUnacked += p.length;
    if (this.recvUnacked >= CONN_WINDOW / 2) {
      this.windowUpdate(0, this.recvUnacked);
      this.recvWindow += this.recvUnacked;
      this.recvUnacked = 0;
    }
    let data = p;
    if ((flags & FLAG_PADDED) !== 0) {
      if (p.length < 1 || p[0]! >= p.length) throw new ConnectionError(PROTOCOL_ERROR, "DATA padding longer than the frame");
      data = p.subarray(1, p.length - p[0]!);
    }
    const s = this.streams.get(id);
    if (s === undefined || s.remoteDone) {
      if (id > this.lastStreamId) throw new ConnectionError(PROTOCOL_ERROR, "DATA on an idle stream");
      // A stream we ended or reset: the client may still be sending what was in flight.
      if (s === undefined) return;
      this.chargeReset();
      this.reset(id, STREAM_CLOSED);
      s.destroy();
      return;
    }
    s.recvWindow -= p.length;
    if (s.recvWindow < 0) {
      this.chargeReset();
      this.reset(id, FLOW_CONTROL_ERROR);
      s.destroy();
      return;
    }
    // Padding is not delivered but was counted: give it back at once.
    if (data.length < p.length) s.giveBack(p.length - data.length);
    // Frames are parsed from one buffer that is kept until the next read: copy what a handler may keep.
    s.receive(Buffer.from(data), (flags & FLAG_END_STREAM) !== 0);
  }

  // ---- output ----

  /** @internal */
  sendHeaders(id: number, block: Buffer, endStream: boolean): void {
    const max = this.peerMaxFrame;
    if (block.length <= max) {
      this.queue(frameHeader(block.length, HEADERS, FLAG_END_HEADERS | (endStream ? FLAG_END_STREAM : 0), id), block);
      return;
    }
    this.queue(frameHeader(max, HEADERS, endStream ? FLAG_END_STREAM : 0, id), block.subarray(0, max));
    for (let off = max; off < block.length; off += max) {
      const part = block.subarray(off, Math.min(block.length, off + max));
      this.queue(frameHeader(part.length, CONTINUATION, off + max >= block.length ? FLAG_END_HEADERS : 0, id), part);
    }
  }

  /** @internal */
  sendData(id: number, data: Buffer, endStream: boolean): void {
    this.queue(frameHeader(data.length, DATA, endStream ? FLAG_END_STREAM : 0, id), data);
  }

  /** @internal */
  reset(id: number, code: number): void {
    this.queue(frameHeader(4, RST_STREAM, 0, id), u32(code));
  }

  /** @internal Gives `n` bytes of receive window back for stream `id` (0: the connection). */
  windowUpdate(id: number, n: number): void {
    if (n > 0) this.queue(frameHeader(4, WINDOW_UPDATE, 0, id), u32(n));
  }

  /** @internal A stream closed. */
  forget(id: number): void {
    if (this.streams.delete(id)) this.open--;
    if (this.goingAway && this.streams.size === 0) this.endSoon();
  }

  private goaway(code: number): void {
    const p = Buffer.allocUnsafe(8);
    p.writeUInt32BE(this.lastStreamId, 0);
    p.writeUInt32BE(code, 4);
    this.queue(frameHeader(8, GOAWAY, 0, 0), p);
  }

  private queue(...bufs: Buffer[]): void {
    if (this.done) return;
    for (const b of bufs) {
      this.out.push(b);
      this.outBytes += b.length;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushNow());
    }
  }

  private flushNow(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.done) return;
    const data = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
    this.out = [];
    this.outBytes = 0;
    if (this.socket.destroyed) return;
    if (!this.socket.write(data) && this.socket.writableLength >= SOCKET_HIGH_WATER && !this.readPaused) {
      // A client that sends without reading (PINGs, say) makes us buffer its answers: stop reading it.
      this.readPaused = true;
      this.socket.pause();
    }
    // The socket took it: streams held back for room go on now ('drain' covers the other case).
    if (this.waitingForSocket && !this.congested) this.flushBlocked();
  }

  private endSoon(): void {
    setImmediate(() => this.closeAfterFlush());
  }

  /**
   * Ends the connection once what is queued has been handed to the socket: FIN after
   * the last bytes (a call's last DATA, its trailers, the GOAWAY), and the socket
   * destroyed only if the client has not taken them within CLOSE_GRACE_MS.
   */
  private closeAfterFlush(): void {
    if (this.done) return;
    this.flushNow();
    const sock = this.socket;
    this.terminate(false);
    if (sock.destroyed) return;
    sock.end();
    const t = setTimeout(() => sock.destroy(), CLOSE_GRACE_MS);
    t.unref();
    sock.once("close", () => clearTimeout(t));
  }

  private keepalive(): void {
    if (this.done || this.pingOutstanding) return;
    this.pingOutstanding = true;
    this.queue(frameHeader(8, PING, 0, 0), Buffer.alloc(8));
    const timeout = this.opts.keepaliveTimeoutMs ?? 0;
    if (timeout > 0 && timeout < 2 ** 31) {
      this.pingTimer = setTimeout(() => this.destroy(), timeout);
      this.pingTimer.unref();
    }
  }

  /** Every call on the connection ends; `destroySocket` false leaves the socket to closeAfterFlush. */
  private terminate(destroySocket = true): void {
    if (this.done) return;
    this.done = true;
    if (this.keepaliveTimer !== undefined) clearInterval(this.keepaliveTimer);
    if (this.pingTimer !== undefined) clearTimeout(this.pingTimer);
    for (const s of [...this.streams.values()]) s.destroy();
    this.streams.clear();
    if (destroySocket && !this.socket.destroyed) this.socket.destroy();
    process.nextTick(() => this.emit("close"));
  }
}
