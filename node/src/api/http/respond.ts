// Small helpers that make node:http answer like Go's net/http does for etcd:
// headers in sorted canonical order, http.Error's text/plain bodies with a
// trailing newline, ServeMux's 404 and path-cleaning redirects.

import type { IncomingMessage, ServerResponse } from "node:http";
import { goQuoteRunes } from "./gojson.js";

/** Go's textproto.CanonicalMIMEHeaderKey for ASCII keys. */
export function canonicalHeaderKey(k: string): string {
  return k
    .toLowerCase()
    .split("-")
    .map((p) => (p.length > 0 ? p[0]!.toUpperCase() + p.slice(1) : p))
    .join("-");
}

/**
 * Writes the status line with all headers set so far plus `extra`, sorted by
 * key as Go does; `trailing` headers (Content-Length) go last, as in Go.
 */
export function writeHeadSorted(
  res: ServerResponse,
  status: number,
  extra: readonly (readonly [string, string])[] = [],
  trailing: readonly (readonly [string, string])[] = [],
): void {
  for (const [k, v] of extra) res.setHeader(k, v);
  const names = res.getHeaderNames();
  const entries = names.map((n) => [canonicalHeaderKey(n), res.getHeader(n)] as const);
  for (const n of names) res.removeHeader(n);
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [k, v] of entries) if (v !== undefined) res.setHeader(k, v);
  for (const [k, v] of trailing) res.setHeader(k, v);
  res.writeHead(status);
}

/** Sends a complete body with an explicit Content-Length. */
export function sendBody(
  res: ServerResponse,
  status: number,
  body: string | Uint8Array,
  headers: readonly (readonly [string, string])[] = [],
): void {
  const buf = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  writeHeadSorted(res, status, headers, [["Content-Length", String(buf.length)]]);
  res.end(buf);
}

/** Go's http.Error: text/plain, nosniff, message plus a newline. */
export function goHttpError(res: ServerResponse, status: number, message: string, headers: readonly (readonly [string, string])[] = []): void {
  sendBody(res, status, message + "\n", [
    ...headers,
    ["Content-Type", "text/plain; charset=utf-8"],
    ["X-Content-Type-Options", "nosniff"],
  ]);
}

/** Go's http.NotFound. */
export function goNotFound(res: ServerResponse): void {
  goHttpError(res, 404, "404 page not found");
}

/** 405 as etcd's GET-only handlers answer it. */
export function goMethodNotAllowed(res: ServerResponse, allow?: string): void {
  goHttpError(res, 405, "Method Not Allowed", allow === undefined ? [] : [["Allow", allow]]);
}

function htmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;" })[c]!);
}

/** Go's http.Redirect. */
export function goRedirect(req: IncomingMessage, res: ServerResponse, location: string, status: number): void {
  const headers: [string, string][] = [["Location", location]];
  const m = req.method ?? "GET";
  if (m === "GET" || m === "HEAD") headers.push(["Content-Type", "text/html; charset=utf-8"]);
  if (m === "GET") {
    const text = status === 301 ? "Moved Permanently" : "Found";
    sendBody(res, status, `<a href="${htmlEscape(location)}">${text}</a>.\n\n`, headers);
  } else {
    sendBody(res, status, "", headers);
  }
}

/** Go's path.Clean. */
export function goCleanPath(p: string): string {
  if (p === "") return ".";
  const rooted = p.startsWith("/");
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(seg);
  }
  const s = (rooted ? "/" : "") + out.join("/");
  return s === "" ? (rooted ? "/" : ".") : s;
}

/** ServeMux's cleanPath: rooted, cleaned, trailing slash kept. */
export function muxCleanPath(p: string): string {
  if (p === "") return "/";
  if (!p.startsWith("/")) p = "/" + p;
  let np = goCleanPath(p);
  if (p.endsWith("/") && np !== "/") np += "/";
  return np;
}

/** The body etcd sends (with 421) for a Host not in --host-whitelist. */
export function hostRejectedText(host: string): string {
  return (
    "\netcd received your request, but the Host header was unrecognized.\n\n" +
    "To fix this, choose one of the following options:\n" +
    "- Enable TLS, then any HTTPS request will be allowed.\n" +
    "- Add the hostname you want to use to the whitelist in settings.\n" +
    `  - e.g. etcd --host-whitelist ${goQuoteRunes(Array.from(host, (ch) => ch.codePointAt(0)!))}\n\n` +
    'This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).\n'
  );
}
