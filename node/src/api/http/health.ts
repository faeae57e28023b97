// The plain HTTP endpoints etcd serves next to the gateway on the client
// port: /health, /livez, /readyz (and their per-check sub-paths), /version,
// /metrics. Server state reaches them through HealthSource.
//
// Formats (etcd's server/etcdserver/api/etcdhttp; 3.4 bodies observed on 3.4.23):
//   /health   GET only (else 405, Allow: GET). 200 {"health":"true"} or 503 with
//             {"health":"false"} plus a newline (http.Error). Flavor "3.6" adds
//             "reason" ({"health":"true","reason":""}, reasons "ALARM NOSPACE",
//             "ALARM CORRUPT", "RAFT NO LEADER", "RANGE ERROR:<err>").
//             ?exclude=<ALARM> ignores that alarm; ?serializable=true skips the
//             leader check and reads serializably.
//   /livez    check serializable_read.
//   /readyz   checks data_corruption, serializable_read, linearizable_read
//             (+ non_learner when the source can tell). 200 "ok\n" (?verbose:
//             "[+]name ok\n" lines first); 503 with "[-]name failed: <err>\n"
//             lines plus a newline. ?exclude=<check>; /livez/<check> runs one.
//   /version  GET only. {"etcdserver":..,"etcdcluster":..[,"storage":..]}.
//   /metrics  any method; Prometheus text from the registry given.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Registry } from "prom-client";
import { toStatus } from "../../errors.js";
import { goJsonString } from "./gojson.js";
import { goHttpError, goMethodNotAllowed, sendBody } from "./respond.js";
import type { GatewayFlavor } from "./gateway.js";

/**
 * What the health endpoints need to know about the server. Implemented by the
 * server; every method should be cheap except the two reads.
 */
export interface HealthSource {
  /** Names of the active alarms on this member, as etcd's AlarmType names ("NOSPACE", "CORRUPT"). */
  alarms(): readonly string[];
  /** Whether this member currently knows a raft leader. */
  hasLeader(): boolean;
  /**
   * A local (serializable) Range{keys_only, limit 1} as root. Resolve when it
   * works; reject with the error (its message is shown) when it does not.
   * Must give up when `signal` aborts.
   */
  serializableRead(signal: AbortSignal): Promise<void>;
  /** The same, linearizable (through ReadIndex / consensus). */
  linearizableRead(signal: AbortSignal): Promise<void>;
  /** Optional: true when this member is a learner (readyz's non_learner check is skipped if absent). */
  isLearner?(): boolean;
}

/** The versions /version reports. Leave `storage` undefined to omit it (etcd before 3.6). */
export interface VersionInfo {
  readonly etcdserver: string;
  readonly etcdcluster: string;
  readonly storage?: string;
}

export interface PlainEndpointsOptions {
  readonly health: HealthSource;
  readonly versions: () => VersionInfo;
  readonly metrics?: Registry;
  readonly flavor: GatewayFlavor;
  /** Deadline for the reads a health check performs (etcd: request timeout, default 7 s). */
  readonly healthTimeoutMs: number;
}

type Check = (signal: AbortSignal) => Promise<void>;

/** Answers a plain endpoint; returns false when `path` is not one of them. */
export function servePlainEndpoint(
  opts: PlainEndpointsOptions,
  path: string,
  query: URLSearchParams,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> | false {
  switch (path) {
    case "/health":
      return serveHealth(opts, query, req, res);
    case "/version":
      return serveVersion(opts, req, res);
    case "/metrics":
      if (opts.metrics === undefined) return false;
      return serveMetrics(opts.metrics, res);
  }
  const m = /^\/(livez|readyz)(?:\/([^/]+))?$/.exec(path);
  if (m === null) return false;
  const checks = checkRegistry(opts, m[1] === "livez");
  const one = m[2];
  if (one !== undefined && !checks.has(one)) return false;
  return serveChecks(opts, checks, one, query, req, res);
}

function withTimeout(check: Check, ms: number): Promise<void> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error("etcdserver: request timed out");
      ac.abort(err);
      reject(err);
    }, ms);
  });
  return Promise.race([check(ac.signal), timeout]).finally(() => clearTimeout(timer));
}

function errText(e: unknown): string {
  return toStatus(e).message;
}

async function serveHealth(opts: PlainEndpointsOptions, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): Promise<void> {
  req.resume();
  if (req.method !== "GET") return goMethodNotAllowed(res, "GET");
  const excluded = new Set(query.getAll("exclude").filter((x) => x !== ""));
  const serializable = query.get("serializable") === "true";
  const src = opts.health;
  let reason = "";
  for (const a of src.alarms()) {
    if (excluded.has(a)) continue;
    reason = a === "NOSPACE" ? "ALARM NOSPACE" : a === "CORRUPT" ? "ALARM CORRUPT" : "ALARM UNKNOWN";
    break;
  }
  if (reason === "" && !serializable && !src.hasLeader()) reason = "RAFT NO LEADER";
  if (reason === "") {
    try {
      await withTimeout((s) => (serializable ? src.serializableRead(s) : src.linearizableRead(s)), opts.healthTimeoutMs);
    } catch (e) {
      reason = `RANGE ERROR:${errText(e)}`;
    }
  }
  const healthy = reason === "";
  const body =
    opts.flavor === "3.4"
      ? `{"health":"${healthy}"}`
      : `{"health":"${healthy}","reason":${goJsonString(reason)}}`;
  if (!healthy) return goHttpError(res, 503, body);
  // Go sniffs the (untyped) body: text/plain.
  sendBody(res, 200, body, [["Content-Type", "text/plain; charset=utf-8"]]);
}

function checkRegistry(opts: PlainEndpointsOptions, livez: boolean): Map<string, Check> {
  const src = opts.health;
  const m = new Map<string, Check>();
  if (!livez) {
    m.set("data_corruption", async () => {
      if (src.alarms().includes("CORRUPT")) throw new Error("alarm activated: CORRUPT");
    });
  }
  m.set("serializable_read", (s) => src.serializableRead(s));
  if (!livez) {
    m.set("linearizable_read", (s) => src.linearizableRead(s));
    if (src.isLearner !== undefined) {
      const isLearner = src.isLearner.bind(src);
      m.set("non_learner", async () => {
        if (isLearner()) throw new Error("this member is a learner");
      });
    }
  }
  return m;
}

async function serveChecks(
  opts: PlainEndpointsOptions,
  checks: Map<string, Check>,
  one: string | undefined,
  query: URLSearchParams,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  req.resume();
  if (req.method !== "GET") return goMethodNotAllowed(res, "GET");
  let names: string[];
  if (one !== undefined) {
    names = [one];
  } else {
    const excluded = new Set(query.getAll("exclude").filter((x) => x !== ""));
    names = [...checks.keys()].filter((n) => !excluded.has(n));
  }
  let failed = false;
  let reason = "";
  for (const n of names) {
    try {
      await withTimeout(checks.get(n)!, opts.healthTimeoutMs);
      reason += `[+]${n} ok\n`;
    } catch (e) {
      failed = true;
      reason += `[-]${n} failed: ${errText(e)}\n`;
    }
  }
  if (failed) return goHttpError(res, 503, reason);
  const body = (query.has("verbose") ? reason : "") + "ok\n";
  sendBody(res, 200, body, [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["X-Content-Type-Options", "nosniff"],
  ]);
}

async function serveVersion(opts: PlainEndpointsOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  req.resume();
  if (req.method !== "GET") return goMethodNotAllowed(res, "GET");
  const v = opts.versions();
  let body = `{"etcdserver":${goJsonString(v.etcdserver)},"etcdcluster":${goJsonString(v.etcdcluster)}`;
  if (v.storage !== undefined) body += `,"storage":${goJsonString(v.storage)}`;
  body += "}";
  sendBody(res, 200, body, [["Content-Type", "application/json"]]);
}

async function serveMetrics(registry: Registry, res: ServerResponse): Promise<void> {
  const text = await registry.metrics();
  sendBody(res, 200, text, [["Content-Type", registry.contentType]]);
}
