// Runs one test body through each client kind against each target and
// requires "ours equals etcd".
//
//   conformance("put then get", async ({ c }) => { ... });
//
// For every client kind that can express the body, one node:test test is
// registered. It starts a fresh single-member server per target (fresh store:
// revisions are absolute), runs the body on each, and then
//   1. fails if the body failed on any target (absolute assertions in the body
//      catch both servers agreeing on a wrong answer),
//   2. fails if the normalised transcripts differ (see normalize.ts).
// A case runs with the client kinds in its `clients` option (all by default);
// a body that throws NotExpressible for one of them fails: the case must leave
// that kind out of its list.

import { after, test } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { ALL_CLIENTS, ClientError, NotExpressible, Transcript, makeClient } from "./client.js";
import type { Client, ClientKind } from "./client.js";
import { normaliseEntries } from "./normalize.js";
import type { NormContext } from "./normalize.js";
import { startMember } from "../harness/member.js";
import type { Impl, Member } from "../harness/member.js";
import { conformanceTargets } from "../harness/targets.js";
import { isCI } from "../harness/provision.js";
import { GrpcConn } from "../harness/grpc.js";
import { Maintenance } from "../../node/gen/etcdserverpb/rpc_pb.js";

export interface CaseCtx {
  /** The client under test (records into this run's transcript). */
  readonly c: Client;
  readonly kind: ClientKind;
  readonly target: Impl;
  readonly member: Member;
  /** Unrecorded raw gRPC to the same member, for setup and for checks that are not about the client. */
  readonly raw: GrpcConn;
  /** Adds an observation of the body's own to the transcript (compared like any response). */
  note(label: string, value: unknown): void;
  /** A second recorded client of another kind on the same member (e.g. a gRPC watch while etcdctl writes). */
  other(kind: ClientKind): Client;
}

export interface CaseOptions {
  /** Client kinds to try (default: all four). */
  readonly clients?: readonly ClientKind[];
  /** Extra etcd flags for the server(s). */
  readonly flags?: readonly string[];
  /** Per-kind test timeout (default 120 s). */
  readonly timeoutMs?: number;
}

export type Body = (ctx: CaseCtx) => Promise<void>;

// ---------------------------------------------------------------------------
// A small pool: while one case runs, the next default server is starting.

const spares = new Map<string, Promise<Member>>();
let hooksRegistered = false;

function registerFileHooks(): void {
  if (hooksRegistered) return;
  hooksRegistered = true;
  after(async () => {
    const all = [...spares.values()];
    spares.clear();
    await Promise.all(all.map((p) => p.then((m) => m.dispose()).catch(() => undefined)));
  });
  const targets = conformanceTargets();
  const missing = targets.filter((t) => !t.available);
  test("conformance targets are available", (t) => {
    for (const m of missing) {
      if (isCI) throw new Error(`target ${m.impl} requested but unavailable under CI=true: ${m.reason ?? ""}`);
      t.diagnostic(`TARGET ${m.impl} ${m.reason ?? "unavailable"}: its comparisons are NOT being made`);
    }
    if (missing.length > 0 && !isCI) t.skip(`missing: ${missing.map((m) => m.impl).join(", ")}`);
  });
}

async function acquire(impl: Impl, flags: readonly string[]): Promise<Member> {
  if (flags.length > 0) return startMember({ impl, extraFlags: flags });
  const key = impl;
  const spare = spares.get(key);
  const next = startMember({ impl });
  next.catch(() => undefined);
  spares.set(key, next);
  if (spare) {
    try {
      return await spare;
    } catch {
      /* the spare failed to start; fall through to the fresh one */
    }
  }
  spares.delete(key);
  return next;
}

// ---------------------------------------------------------------------------

interface RunResult {
  readonly impl: Impl;
  readonly transcript: Transcript;
  readonly norm?: NormContext;
  readonly error?: unknown;
  readonly notExpressible?: string;
  readonly log?: string;
}

async function runOn(impl: Impl, kind: ClientKind, body: Body, opts: CaseOptions): Promise<RunResult> {
  const transcript = new Transcript();
  let member: Member | undefined;
  const clients: Client[] = [];
  let raw: GrpcConn | undefined;
  try {
    member = await acquire(impl, opts.flags ?? []);
    raw = new GrpcConn(member.grpcTarget);
    const st = await raw.unary(Maintenance.method.status, {});
    const norm: NormContext = {
      clusterId: String(st.header?.clusterId ?? 0n),
      memberId: String(st.header?.memberId ?? 0n),
      leaseIds: transcript.serverLeaseIds,
      clientAddr: member.grpcTarget,
      peerAddr: member.peerUrl.replace(/^https?:\/\//, ""),
    };
    const m = member;
    const c = makeClient(kind, m, transcript);
    clients.push(c);
    const ctx: CaseCtx = {
      c,
      kind,
      target: impl,
      member: m,
      raw,
      note: (label, value) => transcript.add(`note:${label}`, undefined, jsonable(value)),
      other: (k) => {
        const o = makeClient(k, m, transcript);
        clients.push(o);
        return o;
      },
    };
    try {
      await body(ctx);
    } catch (e) {
      if (e instanceof NotExpressible) return { impl, transcript, norm, notExpressible: e.message };
      return { impl, transcript, norm, error: e, log: member.logTail(25) };
    }
    return { impl, transcript, norm };
  } catch (e) {
    return { impl, transcript, error: e, log: member?.logTail(25) };
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    raw?.close();
    await member?.dispose().catch(() => undefined);
  }
}

/** bigint-safe plain JSON copy. */
export function jsonable(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x instanceof Uint8Array ? Buffer.from(x).toString("base64") : x)) ?? "null");
}

function show(v: unknown, max = 3000): string {
  const s = JSON.stringify(v, null, 1) ?? String(v);
  return s.length > max ? `${s.slice(0, max)} ...(${s.length - max} more chars)` : s;
}

function describeError(e: unknown): string {
  if (e instanceof ClientError) return `ClientError(${e.kind}) code=${e.code} message=${JSON.stringify(e.message)}`;
  if (e instanceof Error) return e.stack ?? e.message;
  return String(e);
}

/** First difference between two normalised transcripts, readable. */
export function diffTranscripts(a: unknown[], b: unknown[], la: string, lb: string): string | undefined {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (!isDeepStrictEqual(a[i], b[i])) {
      return [
        `transcripts differ at entry #${i} (${a.length} vs ${b.length} entries)`,
        `--- ${la}:`,
        show(a[i]),
        `--- ${lb}:`,
        show(b[i]),
        ...(i > 0 ? ["--- previous (equal) entry:", show(a[i - 1], 800)] : []),
      ].join("\n");
    }
  }
  return undefined;
}

/** Registers one test per client kind for this case. */
export function conformance(name: string, body: Body, opts: CaseOptions = {}): void {
  registerFileHooks();
  const kinds = opts.clients ?? ALL_CLIENTS;
  for (const kind of kinds) {
    test(`${name} [${kind}]`, { timeout: opts.timeoutMs ?? 120_000 }, async (t) => {
      const targets = conformanceTargets().filter((x) => x.available).map((x) => x.impl);
      if (targets.length === 0) {
        t.skip("no conformance target available");
        return;
      }
      const results = await Promise.all(targets.map((impl) => runOn(impl, kind, body, opts)));
      const ne = results.filter((r) => r.notExpressible !== undefined);
      if (ne.length === results.length) {
        // A case lists the client kinds that can express it (opts.clients); one that
        // cannot is a mistake in that list, not something to skip quietly.
        throw new Error(`not expressible with ${kind}: ${ne[0]!.notExpressible} — leave ${kind} out of this case's clients`);
      }
      const problems: string[] = [];
      if (ne.length > 0) problems.push(`NotExpressible on some targets only: ${ne.map((r) => `${r.impl}: ${r.notExpressible}`).join("; ")}`);
      for (const r of results) {
        if (r.error !== undefined) problems.push(`[${r.impl}] ${describeError(r.error)}\n[${r.impl}] server log tail:\n${r.log ?? ""}`);
      }
      const etcd = results.find((r) => r.impl === "etcd");
      const ours = results.find((r) => r.impl === "ours");
      if (etcd?.norm && ours?.norm && etcd.error === undefined && ours.error === undefined && ne.length === 0) {
        const a = normaliseEntries(etcd.transcript.entries, etcd.norm);
        const b = normaliseEntries(ours.transcript.entries, ours.norm);
        const d = diffTranscripts(a, b, "etcd", "ours");
        if (d) problems.push(`ours differs from etcd:\n${d}`);
      } else if (etcd && ours) {
        // A body failed somewhere: still show where the transcripts first diverged, it usually explains why.
        if (etcd.norm && ours.norm) {
          const d = diffTranscripts(normaliseEntries(etcd.transcript.entries, etcd.norm), normaliseEntries(ours.transcript.entries, ours.norm), "etcd", "ours");
          if (d) problems.push(`(for context) ${d}`);
        }
      }
      if (process.env["CONFORMANCE_DUMP"]) {
        for (const r of results) if (r.norm) t.diagnostic(`${r.impl} transcript: ${JSON.stringify(normaliseEntries(r.transcript.entries, r.norm))}`);
      }
      if (problems.length > 0) throw new Error(problems.join("\n\n"));
    });
  }
}
