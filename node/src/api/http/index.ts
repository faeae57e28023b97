// Everything HTTP/1.1 on etcd's client port, behind one request handler:
//
//   1. /v3beta/... is rewritten to /v3/... (etcd keeps this for old clients).
//   2. Host check (--host-whitelist; default allows every host): 421 + etcd's
//      CVE-2018-5702 text.
//   3. CORS headers (--cors; default "*": every response carries
//      Access-Control-Allow-{Headers,Methods,Origin}).
//   4. OPTIONS on any path: 200, empty.
//   5. Go ServeMux rules: unclean paths ("//v3/kv/range", "/a/../b") get a 301
//      to the cleaned path; "/v3" gets a 301 to "/v3/".
//   6. /v3/<binding> -> the JSON gateway (gateway.ts); other /v3/ paths 404
//      ("Not Found" as text in 3.4; {"code":5,"message":"Not Found"} in 3.6).
//   7. /health, /livez, /readyz, /version, /metrics (health.ts).
//   8. Anything else: 404 "404 page not found".

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Registry } from "prom-client";
import type { AnyServiceImpl } from "../registry.js";
import { createGateway } from "./gateway.js";
import type { GatewayFlavor } from "./gateway.js";
import { servePlainEndpoint } from "./health.js";
import type { HealthSource, VersionInfo } from "./health.js";
import { utf8Decode } from "./gojson.js";
import { goHttpError, goNotFound, goRedirect, hostRejectedText, muxCleanPath, sendBody } from "./respond.js";

export type { GatewayFlavor, GatewayRoute } from "./gateway.js";
export { GATEWAY_ROUTES, httpStatusFromCode, errorBody } from "./gateway.js";
export type { HealthSource, VersionInfo } from "./health.js";

export interface HttpDeps {
  /** The gRPC services; the gateway calls their handlers directly. */
  readonly services: readonly AnyServiceImpl[];
  /** Server state for /health, /livez, /readyz. */
  readonly health: HealthSource;
  /** Versions for /version (called per request). */
  readonly versions: () => VersionInfo;
  /** prom-client registry served at /metrics (404 when absent). */
  readonly metrics?: Registry;
  /** Which etcd release's HTTP formats to reproduce where they differ (default "3.6", the release our server reports). */
  readonly flavor?: GatewayFlavor;
  /** Allowed CORS origins (etcd --cors); default ["*"]. */
  readonly cors?: readonly string[];
  /** Allowed Host header names for plain-HTTP requests (etcd --host-whitelist); default ["*"]. */
  readonly hostWhitelist?: readonly string[];
  /** Deadline of the reads behind /health, /livez, /readyz, in ms (default 7000). */
  readonly healthTimeoutMs?: number;
  /** Largest JSON value accepted in a gateway request body (default 32 MiB). */
  readonly maxRequestBytes?: number;
  /** Called with unexpected exceptions (the response is then aborted or answered 500). */
  readonly onError?: (err: unknown) => void;
}

/** Percent-decodes a URL path the way Go does; null when an escape is malformed. */
function unescapePath(raw: string): string | null {
  if (!raw.includes("%")) return raw;
  const bytes: number[] = [];
  const src = Buffer.from(raw, "utf8");
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c !== 0x25) {
      bytes.push(c);
      continue;
    }
    const h = src.subarray(i + 1, i + 3).toString("latin1");
    if (!/^[0-9a-fA-F]{2}$/.test(h)) return null;
    bytes.push(parseInt(h, 16));
    i += 2;
  }
  return utf8Decode(Uint8Array.from(bytes));
}

function escapePath(p: string): string {
  return encodeURI(p).replace(/[?#]/g, (c) => encodeURIComponent(c));
}

/** The handler for every HTTP/1.x request on the client port. */
export function createHttpHandler(deps: HttpDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const flavor = deps.flavor ?? "3.6";
  const gateway = createGateway({
    services: deps.services,
    flavor,
    ...(deps.maxRequestBytes !== undefined ? { maxRequestBytes: deps.maxRequestBytes } : {}),
  });
  const cors = deps.cors ?? ["*"];
  const hosts = deps.hostWhitelist ?? ["*"];
  const plain = {
    health: deps.health,
    versions: deps.versions,
    flavor,
    healthTimeoutMs: deps.healthTimeoutMs ?? 7000,
    ...(deps.metrics !== undefined ? { metrics: deps.metrics } : {}),
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? "/";
    if (target === "*") {
      req.resume();
      sendBody(res, req.method === "OPTIONS" ? 200 : 400, "");
      return;
    }
    let rawPath: string;
    let rawQuery: string;
    if (target.startsWith("/")) {
      const q = target.indexOf("?");
      rawPath = q < 0 ? target : target.slice(0, q);
      rawQuery = q < 0 ? "" : target.slice(q + 1);
    } else {
      try {
        const u = new URL(target);
        rawPath = u.pathname;
        rawQuery = u.search.slice(1);
      } catch {
        req.resume();
        goHttpError(res, 400, "400 Bad Request");
        return;
      }
    }
    let path = unescapePath(rawPath);
    if (path === null) {
      req.resume();
      goHttpError(res, 400, "400 Bad Request");
      return;
    }
    if (path.startsWith("/v3beta/")) path = "/v3/" + path.slice("/v3beta/".length);

    if (!hosts.includes("*")) {
      const hostHeader = req.headers.host ?? "";
      const host = /^\[(.*)\](?::\d*)?$/.exec(hostHeader)?.[1] ?? hostHeader.replace(/:\d*$/, "");
      if (!hosts.includes(host)) {
        req.resume();
        goHttpError(res, 421, hostRejectedText(host));
        return;
      }
    }

    const origin = req.headers.origin;
    const allowOrigin = cors.includes("*") ? "*" : origin !== undefined && cors.includes(origin) ? origin : undefined;
    if (allowOrigin !== undefined) {
      res.setHeader("Access-Control-Allow-Headers", "accept, content-type, authorization");
      res.setHeader("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE");
      res.setHeader("Access-Control-Allow-Origin", allowOrigin);
    }
    if (req.method === "OPTIONS") {
      req.resume();
      sendBody(res, 200, "");
      return;
    }

    const clean = muxCleanPath(path);
    if (clean !== path) {
      req.resume();
      goRedirect(req, res, escapePath(clean) + (rawQuery !== "" ? "?" + rawQuery : ""), 301);
      return;
    }
    if (path === "/v3") {
      req.resume();
      goRedirect(req, res, "/v3/" + (rawQuery !== "" ? "?" + rawQuery : ""), 301);
      return;
    }
    if (path.startsWith("/v3/")) {
      const route = gateway.route(path);
      if (route === undefined) {
        gateway.notFound(req, res);
        return;
      }
      await gateway.serve(route, req, res);
      return;
    }
    const served = servePlainEndpoint(plain, path, new URLSearchParams(rawQuery), req, res);
    if (served === false) {
      req.resume();
      goNotFound(res);
      return;
    }
    req.resume();
    await served;
  }

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      deps.onError?.(err);
      if (!res.headersSent && !res.destroyed) {
        try {
          goHttpError(res, 500, "Internal Server Error");
          return;
        } catch {
          // fall through
        }
      }
      res.destroy();
    });
  };
}
