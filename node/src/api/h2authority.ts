// etcdctl 3.4 and other clients built on etcd 3.4's clientv3 dial a member
// for Maintenance calls (endpoint status, defrag, hashkv, snapshot save) with
// the endpoint as given, so a request carries `:authority: http://host:port`.
// Go's HTTP/2 server (etcd) takes that as the request's Host; Node's nghttp2
// refuses it (a '/' is not allowed in an authority) and resets the stream
// with PROTOCOL_ERROR. This module sits between an accepted gRPC connection
// and grpc-js and removes the scheme (and any path) from such authorities.
//
// Most connections never need it, and a connection whose bytes pass through
// JavaScript costs throughput, so each connection is judged by its first
// request and then handed over:
//   1. After the client preface we send an empty SETTINGS frame ourselves, so
//      that clients which wait for the server's preface before their first
//      request (grpc-go does) go ahead, and read the client's frames.
//   2. The client's acknowledgement of that SETTINGS is dropped: nghttp2 will
//      send its own SETTINGS and must see exactly one acknowledgement.
//   3. At the end of the first header block: if its :authority has no "://",
//      the raw socket goes to grpc-js with the bytes read so far pushed back
//      (no cost afterwards); otherwise the connection goes to grpc-js through
//      a Duplex that rewrites every header block from then on (fixConnection).
//   4. A frame that needs an answer before any request (PING, GOAWAY, ...), or
//      no request within IDLE_MS, hands the raw socket over as in the clean case.

import net from "node:net";
import { Duplex } from "node:stream";
import { DynamicTable, HpackError, rewriteHeaderBlock } from "./hpack.js";

const FRAME_HEADERS = 0x1;
const FRAME_PRIORITY = 0x2;
const FRAME_SETTINGS = 0x4;
const FRAME_WINDOW_UPDATE = 0x8;
const FRAME_CONTINUATION = 0x9;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** The largest frame payload we emit (HTTP/2's default SETTINGS_MAX_FRAME_SIZE, which nghttp2 keeps). */
const MAX_FRAME = 16384;
/** How long a connection may stay without a request before it is handed over unjudged. */
const IDLE_MS = 1000;

const EMPTY_SETTINGS = Buffer.from([0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0]);

/** "http://host:port/x" -> "host:port"; undefined when the authority has no scheme. */
export function authorityWithoutScheme(v: string): string | undefined {
  const i = v.indexOf("://");
  if (i < 0) return undefined;
  const rest = v.slice(i + 3);
  const slash = rest.indexOf("/");
  return slash < 0 ? rest : rest.slice(0, slash);
}

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
  readonly raw: Buffer;
}

/** Splits a byte stream into HTTP/2 frames. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: Frame[] = [];
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const raw = this.buf.subarray(0, 9 + len);
      frames.push({ type: raw[3]!, flags: raw[4]!, stream: raw.readUInt32BE(5) & 0x7fff_ffff, payload: raw.subarray(9), raw });
      this.buf = this.buf.subarray(9 + len);
    }
    return frames;
  }

  /** Bytes of an incomplete frame still held. */
  rest(): Buffer {
    return this.buf;
  }
}

function frameHeader(len: number, type: number, flags: number, stream: number): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(len, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return h;
}

/**
 * Rewrites the client-to-server half of one HTTP/2 connection (after the
 * preface): header blocks get their :authority fixed, the first SETTINGS
 * acknowledgement is dropped if `dropAck`, everything else passes unchanged.
 */
export class ClientFrameRewriter {
  private readonly reader = new FrameReader();
  private readonly table = new DynamicTable();
  /** The HEADERS frame being continued: header fields to re-emit and the block so far. */
  private open: { head: Frame; prio: Buffer; fragments: Buffer[] } | undefined;

  constructor(private dropAck: boolean) {}

  /** Bytes to forward for `chunk`; throws HpackError on an invalid header block. */
  feed(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    for (const f of this.reader.push(chunk)) {
      if (this.open !== undefined) {
        if (f.type !== FRAME_CONTINUATION || f.stream !== this.open.head.stream) throw new HpackError("header block interrupted");
        this.open.fragments.push(f.payload);
        if ((f.flags & FLAG_END_HEADERS) !== 0) out.push(this.finish());
        continue;
      }
      if (f.type === FRAME_SETTINGS && (f.flags & FLAG_ACK) !== 0 && this.dropAck) {
        this.dropAck = false;
        continue;
      }
      if (f.type === FRAME_HEADERS) {
        let p: Buffer = f.payload;
        let pad = 0;
        if ((f.flags & FLAG_PADDED) !== 0) {
          if (p.length < 1) throw new HpackError("bad padding");
          pad = p[0]!;
          p = p.subarray(1);
        }
        let prio: Buffer = Buffer.alloc(0);
        if ((f.flags & FLAG_PRIORITY) !== 0) {
          if (p.length < 5) throw new HpackError("bad priority");
          prio = p.subarray(0, 5);
          p = p.subarray(5);
        }
        if (pad > p.length) throw new HpackError("bad padding");
        this.open = { head: f, prio, fragments: [p.subarray(0, p.length - pad)] };
        if ((f.flags & FLAG_END_HEADERS) !== 0) out.push(this.finish());
        continue;
      }
      out.push(f.raw);
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  private finish(): Buffer {
    const { head, prio, fragments } = this.open!;
    this.open = undefined;
    const { block } = rewriteHeaderBlock(Buffer.concat(fragments), this.table, ":authority", authorityWithoutScheme);
    const frames: Buffer[] = [];
    const firstRoom = MAX_FRAME - prio.length;
    const first = block.subarray(0, firstRoom);
    const endHeaders = block.length <= firstRoom;
    const flags = (head.flags & ~(FLAG_PADDED | FLAG_END_HEADERS)) | (endHeaders ? FLAG_END_HEADERS : 0);
    frames.push(frameHeader(prio.length + first.length, FRAME_HEADERS, flags, head.stream), prio, first);
    for (let at = firstRoom; at < block.length; at += MAX_FRAME) {
      const piece = block.subarray(at, at + MAX_FRAME);
      const last = at + MAX_FRAME >= block.length;
      frames.push(frameHeader(piece.length, FRAME_CONTINUATION, last ? FLAG_END_HEADERS : 0, head.stream), piece);
    }
    return Buffer.concat(frames);
  }
}

/** A socket seen through a ClientFrameRewriter; what grpc-js gets for a connection that needs fixing. */
class RewritingConnection extends Duplex {
  constructor(
    private readonly socket: net.Socket,
    rewriter: ClientFrameRewriter,
    already: Buffer,
  ) {
    super({ allowHalfOpen: true });
    const onData = (chunk: Buffer) => {
      let out: Buffer;
      try {
        out = rewriter.feed(chunk);
      } catch {
        socket.destroy();
        return;
      }
      if (out.length > 0 && !this.push(out)) socket.pause();
    };
    if (already.length > 0) this.push(already);
    socket.on("data", onData);
    socket.on("end", () => this.push(null));
    socket.on("error", (e) => this.destroy(e));
    socket.on("close", () => this.destroy());
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }
  get localPort(): number | undefined {
    return this.socket.localPort;
  }
  setNoDelay(v?: boolean): this {
    this.socket.setNoDelay(v);
    return this;
  }
  setKeepAlive(enable?: boolean, delay?: number): this {
    this.socket.setKeepAlive(enable, delay);
    return this;
  }

  override _read(): void {
    this.socket.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.socket.write(chunk, cb);
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.socket.end();
    cb();
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}

/**
 * Judges a gRPC connection whose first bytes (`head`, starting with the client
 * preface of `prefaceLength` bytes) have been read from `socket`, which must be
 * paused-mode readable with no listeners left; calls `handOver` once with the
 * raw socket (bytes pushed back) or a rewriting Duplex. A socket that fails
 * first is destroyed and nothing is handed over.
 */
export function judgeGrpcConnection(socket: net.Socket, head: Buffer, prefaceLength: number, handOver: (conn: Duplex) => void): void {
  const preface = head.subarray(0, prefaceLength);
  const reader = new FrameReader();
  const kept: Buffer[] = [];
  const table = new DynamicTable();
  let ackDropped = false;
  let block: { fragments: Buffer[] } | undefined;
  let done = false;
  let timer: NodeJS.Timeout | undefined;

  const finish = (dirty: boolean) => {
    done = true;
    if (timer !== undefined) clearTimeout(timer);
    socket.off("readable", onReadable);
    socket.off("close", onGone);
    socket.off("error", onGone);
    const seen = Buffer.concat([...kept, reader.rest()]);
    if (!dirty) {
      socket.unshift(Buffer.concat([preface, seen]));
      handOver(socket);
      return;
    }
    // Re-read what was kept from the start, through the rewriter.
    const rewriter = new ClientFrameRewriter(!ackDropped);
    let first: Buffer;
    try {
      first = rewriter.feed(seen);
    } catch {
      socket.destroy();
      return;
    }
    handOver(new RewritingConnection(socket, rewriter, Buffer.concat([preface, first])));
  };

  const consider = (f: Frame): "clean" | "dirty" | "more" => {
    if (block !== undefined) {
      if (f.type !== FRAME_CONTINUATION) return "clean"; // not HTTP/2; nghttp2 will say so
      block.fragments.push(f.payload);
    } else if (f.type === FRAME_HEADERS) {
      let p: Buffer = f.payload;
      let pad = 0;
      if ((f.flags & FLAG_PADDED) !== 0) {
        pad = p[0] ?? 0;
        p = p.subarray(1);
      }
      if ((f.flags & FLAG_PRIORITY) !== 0) p = p.subarray(5);
      if (pad > p.length) return "clean";
      block = { fragments: [p.subarray(0, p.length - pad)] };
    } else if (f.type === FRAME_SETTINGS || f.type === FRAME_WINDOW_UPDATE || f.type === FRAME_PRIORITY) {
      return "more";
    } else {
      return "clean"; // DATA before HEADERS, PING, GOAWAY, RST_STREAM...: let nghttp2 answer
    }
    if ((f.flags & FLAG_END_HEADERS) === 0) return "more";
    try {
      const { seen } = rewriteHeaderBlock(Buffer.concat(block.fragments), table, ":authority", () => undefined);
      return seen.some((v) => authorityWithoutScheme(v) !== undefined) ? "dirty" : "clean";
    } catch (e) {
      if (e instanceof HpackError) return "clean"; // nghttp2 refuses it with its own error
      throw e;
    }
  };

  let verdict: "clean" | "dirty" | "more" = "more";
  const onReadable = () => {
    if (!done) arm();
    let c: Buffer | null;
    while (!done && (c = socket.read() as Buffer | null) !== null) {
      for (const f of reader.push(c)) {
        if (!ackDropped && f.type === FRAME_SETTINGS && (f.flags & FLAG_ACK) !== 0) {
          ackDropped = true;
        } else {
          kept.push(f.raw);
          if (verdict === "more") verdict = consider(f);
        }
      }
      // Decide once the first request is judged and our SETTINGS is acknowledged
      // (an unexpected acknowledgement must not reach nghttp2 later).
      if (verdict !== "more" && ackDropped) finish(verdict === "dirty");
    }
  };
  const onGone = () => {
    if (done) return;
    done = true;
    if (timer !== undefined) clearTimeout(timer);
    socket.destroy();
  };
  const arm = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      if (!done) finish(verdict === "dirty");
    }, IDLE_MS);
  };
  socket.on("readable", onReadable);
  socket.once("close", onGone);
  socket.on("error", onGone);
  arm();
  socket.write(EMPTY_SETTINGS);
  // The bytes after the preface that were read while classifying.
  for (const f of reader.push(head.subarray(prefaceLength))) {
    if (!ackDropped && f.type === FRAME_SETTINGS && (f.flags & FLAG_ACK) !== 0) ackDropped = true;
    else {
      kept.push(f.raw);
      if (verdict === "more") verdict = consider(f);
    }
  }
  if (verdict !== "more" && ackDropped) finish(verdict === "dirty");
}

