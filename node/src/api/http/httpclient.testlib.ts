// Minimal HTTP/1.1 client for the gateway tests: exact status, headers,
// body bytes and trailers, plus line-by-line access to streaming responses.

import http from "node:http";
import type { IncomingHttpHeaders } from "node:http";

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly trailers: Record<string, string | undefined>;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  /** Request body; undefined sends none. */
  readonly body?: string | Buffer;
}

export function request(port: number, path: string, opts: RequestOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path, method: opts.method ?? "POST", headers: opts.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
            trailers: { ...res.trailers },
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}

/** A streaming call: write request values as you go, read response lines as they come. */
export interface StreamCall {
  readonly response: Promise<{ status: number; headers: IncomingHttpHeaders }>;
  write(s: string): void;
  end(): void;
  /** Next complete response line (without "\n"), or null at end of response. */
  nextLine(timeoutMs?: number): Promise<string | null>;
  /** Everything received after the last complete line (e.g. a final error chunk). */
  rest(): string;
  /** Resolves when the response has ended. */
  ended: Promise<void>;
  destroy(): void;
}

export function openStream(port: number, path: string, first?: string): StreamCall {
  let buf = "";
  const lines: string[] = [];
  let done = false;
  let waiter: (() => void) | null = null;
  const wake = () => {
    const w = waiter;
    waiter = null;
    w?.();
  };
  let endResolve!: () => void;
  const ended = new Promise<void>((r) => (endResolve = r));
  const req = http.request({ host: "127.0.0.1", port, path, method: "POST", agent: false });
  const response = new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
    req.on("response", (res) => {
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
        wake();
      });
      const fin = () => {
        done = true;
        endResolve();
        wake();
      };
      res.on("end", fin);
      res.on("close", fin);
    });
    req.on("error", (e) => {
      done = true;
      endResolve();
      wake();
      reject(e);
    });
  });
  response.catch(() => {});
  req.flushHeaders();
  if (first !== undefined) req.write(first);
  return {
    response,
    write: (s) => void req.write(s),
    end: () => void req.end(),
    async nextLine(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const l = lines.shift();
        if (l !== undefined) return l;
        if (done) return null;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no line within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            waiter = null;
            resolve();
          }, left);
          waiter = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    },
    rest: () => buf,
    ended,
    destroy: () => req.destroy(),
  };
}

/** Replaces values that legitimately differ between two etcd members. */
export function normalize(s: string): string {
  return s
    .replace(/"(cluster_id|member_id|raft_term|memberID|leader|ID)":"\d+"/g, '"$1":"N"')
    .replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:PORT");
}

/** The response headers that carry meaning for etcd clients, for comparison. */
export function headerView(h: IncomingHttpHeaders): Record<string, unknown> {
  const keys = [
    "content-type", "grpc-metadata-content-type", "trailer", "allow", "location", "x-content-type-options",
    "access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers",
  ];
  const out: Record<string, unknown> = {};
  for (const k of keys) if (h[k] !== undefined) out[k] = h[k];
  out.chunked = h["transfer-encoding"] === "chunked";
  return out;
}
