// etcd's client port: one TCP listener, two protocols (etcd uses cmux).
//
// Each accepted connection is held until its first bytes decide:
//   * the HTTP/2 client preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" -> gRPC
//     (handed to the gRPC server, grpc/server.ts; h2c to the JSON gateway is
//     not offered, as in etcd; h2authority.ts judges the first request before
//     the gRPC server gets the connection);
//   * a first line that parses as an HTTP/1.x request line -> node:http;
//   * anything else (or no newline within 4096 bytes) -> the connection is
//     closed without a word, which is what cmux does when no matcher fits.
// The bytes read while deciding are pushed back (unshift) before handing over.
// Connections that close or fail while undecided are simply dropped.

import net from "node:net";
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { GrpcConnection } from "./grpc/server.js";
import type { Duplex } from "node:stream";
import { judgeGrpcConnection } from "./h2authority.js";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** cmux reads at most this much looking for the HTTP/1 request line. */
const MAX_SNIFF = 4096;

export interface ClientPortOptions {
  /** Address to listen on, e.g. "127.0.0.1" or "::". */
  readonly host: string;
  /** Port; 0 picks a free one (see the returned `port`). */
  readonly port: number;
  /** The gRPC server (grpc/server.ts's GrpcServer): HTTP/2 connections are handed to it. */
  readonly grpcServer: { readonly rawConnections: boolean; serveConnection(conn: Duplex, head?: Buffer): GrpcConnection };
  /** Handler for HTTP/1.x requests (e.g. createHttpHandler(...)). */
  readonly http: (req: IncomingMessage, res: ServerResponse) => void;
  /**
   * Give up on a connection that has not sent enough bytes to be classified
   * within this many ms (default 60000; 0 disables).
   */
  readonly sniffTimeoutMs?: number;
  /**
   * Connections are accepted at once but not served until this resolves
   * (etcd's ReadyNotify: a member serves clients once it has published its
   * name and client URLs through raft; before that, requests wait).
   */
  readonly ready?: Promise<unknown>;
}

export interface ClientPort {
  /** The bound port. */
  readonly port: number;
  /** The bound address as the OS reports it. */
  readonly address: net.AddressInfo;
  /** The node:http server that HTTP/1.x connections are given to. */
  readonly httpServer: http.Server;
  /**
   * Stops accepting, asks gRPC sessions to go away (GOAWAY) and HTTP
   * keep-alive connections to close; after `graceMs` (default 0) destroys
   * whatever is left. Resolves once the listener is closed.
   */
  close(graceMs?: number): Promise<void>;
}

type Verdict = "grpc" | "http" | "reject" | "wait";

/** Classifies the first bytes of a connection. */
export function classify(buf: Buffer): Verdict {
  const n = Math.min(buf.length, PREFACE.length);
  if (buf.subarray(0, n).equals(PREFACE.subarray(0, n))) {
    return buf.length >= PREFACE.length ? "grpc" : "wait";
  }
  const nl = buf.indexOf(0x0a);
  if (nl < 0) return buf.length >= MAX_SNIFF ? "reject" : "wait";
  if (nl >= MAX_SNIFF) return "reject";
  let line = buf.subarray(0, nl).toString("latin1");
  if (line.endsWith("\r")) line = line.slice(0, -1);
  return isHttp1RequestLine(line) ? "http" : "reject";
}

/** "METHOD URI HTTP/1.x", split at the first two spaces as cmux does. */
function isHttp1RequestLine(line: string): boolean {
  const s1 = line.indexOf(" ");
  if (s1 < 0) return false;
  const s2 = line.indexOf(" ", s1 + 1);
  if (s2 < 0) return false;
  const proto = line.slice(s2 + 1);
  const m = /^HTTP\/(\d+)\.(\d+)$/.exec(proto);
  return m !== null && Number(m[1]) === 1 && m[1]!.length <= 3 && m[2]!.length <= 3;
}

/** Serves gRPC and HTTP/1.x on one port. */
export async function serveClientPort(opts: ClientPortOptions): Promise<ClientPort> {
  const sniffTimeout = opts.sniffTimeoutMs ?? 60_000;
  /** The gRPC connections of this port, for close(). */
  const sessions = new Set<GrpcConnection>();
  // Like Go's server: no deadline on receiving a request (a watch may stream
  // its request body for hours) and 1 MiB of headers.
  const httpServer = http.createServer({ requestTimeout: 0, maxHeaderSize: 1 << 20 }, opts.http);
  // Go answers a malformed request with this and closes; node's default is similar but bare.
  httpServer.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    if (socket.writable && err.code !== "ECONNRESET") {
      const msg = err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
      socket.end(`HTTP/1.1 ${msg}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${msg}`);
      socket.setTimeout(5000, () => socket.destroy());
    } else {
      socket.destroy();
    }
  });

  const pending = new Set<net.Socket>();
  let isReady = opts.ready === undefined;
  const held = new Set<net.Socket>();
  opts.ready?.then(
    () => {
      isReady = true;
      for (const s of held) if (!s.destroyed) sniff(s);
      held.clear();
    },
    () => undefined,
  );
  // noDelay: a gRPC response must not wait in Nagle's buffer for the client's delayed ACK
  // (etcd's Go listener disables Nagle on every TCP connection too).
  const server = net.createServer({ noDelay: true }, (socket) => {
    if (isReady) return sniff(socket);
    held.add(socket);
    socket.once("close", () => held.delete(socket));
    socket.on("error", () => socket.destroy());
  });
  let closing = false;

  function sniff(socket: net.Socket): void {
    if (closing) {
      socket.destroy();
      return;
    }
    pending.add(socket);
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const cleanup = () => {
      pending.delete(socket);
      socket.off("readable", onReadable);
      socket.off("end", onGone);
      socket.off("close", onGone);
      socket.off("error", onGone);
      if (timer !== undefined) clearTimeout(timer);
    };
    const onGone = () => {
      cleanup();
      socket.destroy();
    };
    const onReadable = () => {
      let c: Buffer | null;
      while ((c = socket.read() as Buffer | null) !== null) chunks.push(c);
      const buf = Buffer.concat(chunks);
      const v = classify(buf);
      if (v === "wait") {
        chunks.length = 0;
        chunks.push(buf);
        return;
      }
      cleanup();
      if (v === "reject") {
        socket.destroy();
        return;
      }
      if (v === "grpc" && opts.grpcServer.rawConnections) {
        const session = opts.grpcServer.serveConnection(socket, buf);
        sessions.add(session);
        session.once("close", () => sessions.delete(session));
      } else if (v === "grpc") {
        // See h2authority.ts: the first request decides whether the connection
        // needs its :authority headers fixed on the way to grpc-js.
        pending.add(socket);
        judgeGrpcConnection(socket, buf, PREFACE.length, (conn) => {
          pending.delete(socket);
          if (closing) {
            socket.destroy();
            return;
          }
          const session = opts.grpcServer.serveConnection(conn);
          sessions.add(session);
          session.once("close", () => sessions.delete(session));
        });
      } else {
        socket.unshift(buf);
        httpServer.emit("connection", socket);
      }
    };
    socket.on("readable", onReadable);
    socket.once("end", onGone);
    socket.once("close", onGone);
    socket.on("error", onGone);
    if (sniffTimeout > 0) timer = setTimeout(onGone, sniffTimeout);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  // A listener error after startup must not crash the process.
  server.on("error", () => {});
  const address = server.address() as net.AddressInfo;

  return {
    port: address.port,
    address,
    httpServer,
    async close(graceMs = 0): Promise<void> {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of pending) s.destroy();
      pending.clear();
      for (const s of held) s.destroy();
      held.clear();
      // GOAWAY: calls in progress may finish, no new ones start.
      for (const s of sessions) s.close();
      httpServer.close();
      httpServer.closeIdleConnections();
      if (graceMs > 0) await new Promise<void>((resolve) => setTimeout(resolve, graceMs));
      httpServer.closeAllConnections();
      for (const s of sessions) s.destroy();
      await closed;
    },
  };
}
