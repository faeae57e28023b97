// HTTP-level conventions of the peer transport: paths, headers, member and
// cluster ID spelling, refusal codes, and the reader of a snapshot request body.

import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { FRAME_HEADER_BYTES, CodecError } from "./codec.js";

export const RAFT_PREFIX = "/raft";
/** GET, opened by the member that wants to receive; the response body is its message stream. */
export const STREAM_PATH = "/raft/stream";
/** POST, opened by the member that sends a snapshot; the request body is the snapshot. */
export const SNAPSHOT_PATH = "/raft/snapshot";

/** The sender's cluster ID (requests) / the answering member's cluster ID (responses). */
export const H_CLUSTER_ID = "X-Etcd-Cluster-ID";
/** The member that sent the request (or answered it). */
export const H_FROM = "X-Server-From";
/** The member the request is meant for. */
export const H_TO = "X-Raft-To";
/** Machine-readable reason of a refusal (a RefusalCode); the body says it in words. */
export const H_ERROR = "X-Raft-Error";
/**
 * The protocol a stream request asks to switch to (Upgrade header): after the 101
 * answer the connection carries frames both ways with no HTTP framing. A member
 * that does not know it answers 200 and streams the frames as the chunked body.
 */
export const STREAM_PROTOCOL = "etcdts-raft-stream/1";

export type RefusalCode =
  | "cluster-id-mismatch" // 412
  | "target-mismatch" // 412
  | "member-removed" // 410 on a stream ("removed member"), 403 on a snapshot ("cannot process message from removed member"), as etcd
  | "unknown-sender" // 404
  | "bad-request" // 400
  | "snapshot-failed" // 500
  | "stopped"; // 503

export const ERR_MEMBER_REMOVED = "the member has been permanently removed from the cluster";

/**
 * Why a request or a connection failed. `code` is a RefusalCode when the other
 * member refused us (read from its X-Raft-Error header), "io" for network and
 * protocol failures, "http" for an unexpected status, "stopped" when this
 * transport shut down.
 */
export class TransportError extends Error {
  override name = "TransportError";
  constructor(
    readonly code: RefusalCode | "io" | "http",
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }

  /** Refusals that retrying soon will not fix: the sender backs off for long and logs once. */
  get isConfigRefusal(): boolean {
    return this.code === "cluster-id-mismatch" || this.code === "target-mismatch" || this.code === "member-removed";
  }
}

/** Member and cluster IDs are written as etcd writes them: lowercase hex, no padding. */
export function idHex(id: bigint): string {
  return id.toString(16);
}

export function parseIdHex(s: string | undefined): bigint | undefined {
  if (s === undefined || !/^[0-9a-fA-F]{1,16}$/.test(s)) return undefined;
  return BigInt(`0x${s}`);
}

export function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

const STATUS: Record<RefusalCode, number> = {
  "cluster-id-mismatch": 412,
  "target-mismatch": 412,
  "member-removed": 403,
  "unknown-sender": 404,
  "bad-request": 400,
  "snapshot-failed": 500,
  stopped: 503,
};

/** Answers a peer request with a refusal; the connection is closed afterwards. */
export function refuse(res: ServerResponse, code: RefusalCode, message: string, status = STATUS[code]): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, {
    "Content-Type": "text/plain; charset=utf-8",
    [H_ERROR]: code,
    Connection: "close",
  });
  res.end(`${message}\n`);
}

/**
 * refuse() for a request that asked to switch protocols, whose socket is ours
 * (Node's server hands it over without a response object): the same answer,
 * written by hand, then the connection ends.
 */
export function refuseSocket(socket: Duplex, headers: Record<string, string>, code: RefusalCode, message: string, status = STATUS[code]): void {
  writeHead(socket, status, { ...headers, "Content-Type": "text/plain; charset=utf-8", [H_ERROR]: code }, `${message}\n`);
}

/** A complete HTTP/1.1 answer on a raw socket, which is then ended. */
export function writeHead(socket: Duplex, status: number, headers: Record<string, string>, body: string): void {
  const all = { ...headers, "Content-Length": String(Buffer.byteLength(body)), Connection: "close" };
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n`;
  for (const [k, v] of Object.entries(all)) head += `${k}: ${v}\r\n`;
  // Then close it whatever the client does: a switched socket is out of the HTTP
  // server's timeouts, so a client that keeps its side open would hold it forever.
  socket.end(`${head}\r\n${body}`, () => socket.destroy());
}

const KNOWN_CODES = new Set<string>(Object.keys(STATUS));

/** The error a refusal response stands for (body text already read, at most a few KiB). */
export function refusalFromResponse(status: number, headers: IncomingHttpHeaders, body: string): TransportError {
  const code = header(headers, H_ERROR);
  const text = body.trim();
  // What a removed member is told is etcd's errMemberRemoved, whatever words the peer used.
  if (code === "member-removed") return new TransportError("member-removed", ERR_MEMBER_REMOVED, status);
  if (code !== undefined && KNOWN_CODES.has(code)) return new TransportError(code as RefusalCode, text || code, status);
  // A member that does not set X-Raft-Error (not etcd-ts, or a proxy in between): etcd's statuses.
  if (status === 403 || status === 410) return new TransportError("member-removed", ERR_MEMBER_REMOVED, status);
  return new TransportError("http", `unexpected HTTP status ${status}${text ? `: ${text}` : ""}`, status);
}

/** Reads at most `limit` bytes of a (short) response body as text, then discards the rest. */
export function readText(res: IncomingMessage, limit = 4096): Promise<string> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let n = 0;
    const finish = () => resolve(Buffer.concat(parts).toString("utf8"));
    res.on("data", (c: Buffer) => {
      if (n < limit) {
        const take = c.subarray(0, limit - n);
        parts.push(take);
        n += take.length;
      }
    });
    res.once("end", finish);
    res.once("error", finish);
    res.once("close", finish);
  });
}

/**
 * The body of a snapshot request, read incrementally:
 *
 *   frame(Message)  frame(chunk) frame(chunk) ...  frame(empty)
 *
 * The first frame is the raft MsgSnap (bounded by maxFrameBytes). The payload
 * follows in frames of any size, ended by an empty frame, so a body cut short
 * by a broken connection is told apart from a complete one. The payload is
 * handed out piece by piece as it arrives from the socket — never reassembled —
 * and is only read as fast as the consumer pulls (Node's readable backpressure
 * then stops reading the socket, and TCP stops the sender).
 */
export class SnapshotBody {
  private readonly it: AsyncIterator<Buffer>;
  private leftover: Buffer | undefined;
  /** Bytes still to come in the current payload frame; -1 between frames. */
  private remaining = -1;
  private ended = false;
  /** Payload bytes handed out so far. */
  received = 0;

  constructor(
    req: IncomingMessage,
    private readonly maxFrameBytes: number,
  ) {
    // destroyOnReturn false: a consumer that stops early must not tear down the
    // socket we still have to answer on.
    this.it = req.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>;
  }

  /** Whether the end-of-payload frame has been read. */
  get complete(): boolean {
    return this.ended;
  }

  private async pull(): Promise<Buffer | undefined> {
    if (this.leftover !== undefined) {
      const b = this.leftover;
      this.leftover = undefined;
      return b;
    }
    for (;;) {
      const r = await this.it.next();
      if (r.done === true) return undefined;
      const b = r.value;
      if (b.length > 0) return b;
    }
  }

  /** Exactly n bytes, copied into a buffer of their own. */
  private async readExact(n: number): Promise<Buffer> {
    const out = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const c = await this.pull();
      if (c === undefined) throw new TransportError("io", `snapshot body ended early (needed ${n - got} more bytes)`);
      const take = Math.min(c.length, n - got);
      c.copy(out, got, 0, take);
      if (take < c.length) this.leftover = c.subarray(take);
      got += take;
    }
    return out;
  }

  /** The first frame: the encoded MsgSnap. */
  async readHeader(): Promise<Uint8Array> {
    const len = (await this.readExact(FRAME_HEADER_BYTES)).readUInt32BE(0);
    if (len > this.maxFrameBytes) throw new CodecError(`snapshot message of ${len} bytes exceeds the limit of ${this.maxFrameBytes}`);
    return this.readExact(len);
  }

  /** The payload pieces; throws if the body ends before the end-of-payload frame. */
  async *payload(): AsyncGenerator<Buffer, void, undefined> {
    while (!this.ended) {
      if (this.remaining <= 0) {
        const len = (await this.readExact(FRAME_HEADER_BYTES)).readUInt32BE(0);
        if (len === 0) {
          this.ended = true;
          break;
        }
        this.remaining = len;
        continue;
      }
      const c = await this.pull();
      if (c === undefined) throw new TransportError("io", `snapshot payload truncated after ${this.received} bytes`);
      const take = Math.min(c.length, this.remaining);
      if (take < c.length) this.leftover = c.subarray(take);
      this.remaining -= take;
      this.received += take;
      yield take === c.length ? c : c.subarray(0, take);
    }
  }

  /** Reads (and discards) whatever of the payload the consumer left unread. */
  async drain(): Promise<void> {
    for await (const _ of this.payload()) void _;
  }
}
