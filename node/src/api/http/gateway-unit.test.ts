// Gateway and plain-endpoint behaviour that needs no etcd: streams that fail,
// missing handlers, cancellation, metadata, flavors, health endpoints.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { Registry, Counter } from "prom-client";
import {
  KV,
  Lease,
  LeaseKeepAliveResponseSchema,
  Maintenance,
  RangeResponseSchema,
  ResponseHeaderSchema,
  SnapshotResponseSchema,
  Watch,
  WatchResponseSchema,
} from "../../../gen/etcdserverpb/rpc_pb.js";
import type { LeaseKeepAliveRequest, RangeRequest, SnapshotRequest, WatchRequest } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Errors } from "../../errors.js";
import { defineService } from "../registry.js";
import type { BidiStream, CallContext, ServerStream } from "../registry.js";
import { createHttpHandler } from "./index.js";
import type { HealthSource, HttpDeps } from "./index.js";
import { openStream, request } from "./httpclient.testlib.js";

const header = create(ResponseHeaderSchema, { clusterId: 1n, memberId: 2n, revision: 3n, raftTerm: 4n });

interface Probe {
  lastCtx?: CallContext;
  aborted?: Promise<void>;
  sendRejected?: Promise<unknown>;
}

function services(probe: Probe) {
  return [
    defineService(KV, {
      async range(req: RangeRequest, ctx: CallContext) {
        probe.lastCtx = ctx;
        if (new TextDecoder().decode(req.key) === "fail") throw Errors.LeaseExist;
        return create(RangeResponseSchema, { header, count: 1n });
      },
    }),
    defineService(Maintenance, {
      async snapshot(req: SnapshotRequest, stream: ServerStream<never>) {
        void req;
        await stream.send(create(SnapshotResponseSchema, { header, remainingBytes: 3n, blob: new Uint8Array([1, 2]) }) as never);
        await stream.send(create(SnapshotResponseSchema, { header, blob: new Uint8Array([3]) }) as never);
        throw Errors.Corrupt;
      },
    }),
    defineService(Lease, {
      async leaseKeepAlive(stream: BidiStream<LeaseKeepAliveRequest, never>) {
        for await (const r of stream.requests) {
          if (r.ID === 13n) throw Errors.NoLeader;
          await stream.send(create(LeaseKeepAliveResponseSchema, { header, ID: r.ID, TTL: 5n }) as never);
        }
        throw Errors.LeaseNotFound;
      },
    }),
    defineService(Watch, {
      async watch(stream: BidiStream<WatchRequest, never>, ctx: CallContext) {
        probe.aborted = new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
        for await (const r of stream.requests) {
          if (r.requestUnion.case === "createRequest") {
            await stream.send(create(WatchResponseSchema, { header, watchId: r.requestUnion.value.watchId, created: true }) as never);
          }
        }
        // Keep sending until the client goes away.
        probe.sendRejected = (async () => {
          for (;;) {
            await stream.send(create(WatchResponseSchema, { header, watchId: 99n }) as never);
            await new Promise((r) => setTimeout(r, 5));
          }
        })().catch((e: unknown) => e);
        await probe.aborted;
      },
    }),
  ];
}

const healthy: HealthSource = {
  alarms: () => [],
  hasLeader: () => true,
  serializableRead: async () => {},
  linearizableRead: async () => {},
};

async function serve(deps: HttpDeps): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer(createHttpHandler(deps));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("gateway without etcd", () => {
  const probe: Probe = {};
  let s34: Awaited<ReturnType<typeof serve>>;
  let s36: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    const base = { services: services(probe), health: healthy, versions: () => ({ etcdserver: "3.6.0", etcdcluster: "3.6.0", storage: "3.6.0" }) };
    s34 = await serve({ ...base, flavor: "3.4" });
    s36 = await serve({ ...base, flavor: "3.6" });
  });
  after(async () => {
    await s34.close();
    await s36.close();
  });

  test("unary success and handler error, both flavors", async () => {
    let r = await request(s34.port, "/v3/kv/range", { body: '{"key":"YQ=="}' });
    assert.equal(r.status, 200);
    assert.equal(r.body, '{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},"count":"1"}');
    assert.equal(r.headers["grpc-metadata-content-type"], "application/grpc");
    r = await request(s34.port, "/v3/kv/range", { body: '{"key":"ZmFpbA=="}' });
    assert.equal(r.status, 412);
    assert.equal(r.body, '{"error":"etcdserver: lease already exists","message":"etcdserver: lease already exists","code":9}');
    assert.equal(r.trailers["grpc-trailer-content-type"], "application/grpc");
    r = await request(s36.port, "/v3/kv/range", { body: '{"key":"ZmFpbA=="}' });
    assert.equal(r.status, 400);
    assert.equal(r.body, '{"code":9,"message":"etcdserver: lease already exists"}');
    assert.equal(r.headers["content-length"], String(r.body.length));
    r = await request(s36.port, "/v3/kv/put", { body: '{"key":"a"}' });
    assert.equal(r.status, 400);
    assert.equal(r.body, '{"code":3,"message":"proto: (line 1:8): invalid value for bytes field key: \\"a\\""}');
  });

  test("routing errors: text in 3.4, google.rpc.Status in 3.6", async () => {
    let r = await request(s34.port, "/v3/kv/nope", { body: "{}" });
    assert.deepEqual([r.status, r.body], [404, "Not Found\n"]);
    r = await request(s34.port, "/v3/kv/range", { method: "GET" });
    assert.deepEqual([r.status, r.body], [405, "Method Not Allowed\n"]);
    r = await request(s36.port, "/v3/kv/nope", { body: "{}" });
    assert.deepEqual([r.status, r.body, r.headers["content-type"]], [404, '{"code":5,"message":"Not Found"}', "application/json"]);
    r = await request(s36.port, "/v3/kv/range", { method: "GET" });
    assert.deepEqual([r.status, r.body], [501, '{"code":12,"message":"Method Not Allowed"}']);
    r = await request(s36.port, "/nothing", { method: "GET" });
    assert.deepEqual([r.status, r.body], [404, "404 page not found\n"]);
  });

  test("missing service / method is Unimplemented (501)", async () => {
    let r = await request(s34.port, "/v3/auth/status", { body: "{}" });
    assert.equal(r.status, 501);
    assert.equal(JSON.parse(r.body).message, "unknown service etcdserverpb.Auth");
    r = await request(s34.port, "/v3/kv/put", { body: '{"key":"YQ=="}' });
    assert.equal(r.status, 501);
    assert.equal(JSON.parse(r.body).message, "unknown method Put for service etcdserverpb.KV");
  });

  test("server stream: lines, then an error chunk (3.4 without newline, 3.6 with)", async () => {
    const r = await request(s34.port, "/v3/maintenance/snapshot", { body: "" });
    assert.equal(r.status, 200);
    assert.equal(r.headers["transfer-encoding"], "chunked");
    assert.equal(
      r.body,
      '{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},"remaining_bytes":"3","blob":"AQI="}}\n' +
        '{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},"blob":"Aw=="}}\n' +
        '{"error":{"grpc_code":15,"http_code":500,"message":"etcdserver: corrupt cluster","http_status":"Internal Server Error"}}',
    );
    const r6 = await request(s36.port, "/v3/maintenance/snapshot", { body: "" });
    // grpc-gateway v2 writes its delimiter after the error chunk too.
    assert.ok(r6.body.endsWith('\n{"error":{"code":15,"message":"etcdserver: corrupt cluster"}}\n'));
  });

  test("bidi: error before any response is a plain error; after one, an error chunk", async () => {
    let r = await request(s34.port, "/v3/lease/keepalive", { body: '{"ID":13}' });
    assert.equal(r.status, 503);
    assert.equal(r.body, '{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}');
    r = await request(s34.port, "/v3/lease/keepalive", { body: '{"ID":1}{"ID":13}' });
    assert.equal(r.status, 200);
    assert.equal(
      r.body,
      '{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},"ID":"1","TTL":"5"}}\n' +
        '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}',
    );
    // Empty body: the handler fails at once; etcd's gateway reports it as a stream error.
    r = await request(s34.port, "/v3/lease/keepalive", {});
    assert.equal(r.status, 404);
    assert.equal(r.headers["transfer-encoding"], "chunked");
    assert.equal(r.headers["grpc-metadata-content-type"], undefined);
    assert.equal(r.body, '{"error":{"grpc_code":5,"http_code":404,"message":"etcdserver: requested lease not found","http_status":"Not Found"}}');
  });

  test("bidi: values split across body chunks are delivered as they complete", async () => {
    const c = openStream(s34.port, "/v3/watch", '{"create_request":{"ke');
    try {
      await new Promise((r) => setTimeout(r, 30));
      c.write('y":"YQ==","watch_id":"4"}}   {"create_re');
      const l1 = await c.nextLine();
      assert.match(l1 ?? "", /"watch_id":"4","created":true/);
      c.write('quest":{"watch_id":5}}');
      const l2 = await c.nextLine();
      assert.match(l2 ?? "", /"watch_id":"5","created":true/);
    } finally {
      c.destroy();
    }
  });

  test("client going away aborts the call's signal and fails send()", async () => {
    const c = openStream(s34.port, "/v3/watch", '{"create_request":{"key":"YQ=="}}');
    await c.nextLine();
    c.end();
    await c.nextLine();
    c.destroy();
    await probe.aborted;
    const e = (await probe.sendRejected) as { code?: number };
    assert.equal(e.code, 1);
  });

  test("request metadata follows grpc-gateway", async () => {
    await request(s34.port, "/v3/kv/range", {
      body: '{"key":"YQ=="}',
      headers: { Authorization: "tok", "Grpc-Metadata-Hasleader": "true", "User-Agent": "ua", "X-Other": "no" },
    });
    const md = probe.lastCtx!.metadata;
    assert.equal(md.get("authorization"), "tok");
    assert.equal(md.get("grpcgateway-authorization"), "tok");
    assert.equal(md.get("hasleader"), "true");
    assert.equal(md.get("grpcgateway-user-agent"), "ua");
    assert.equal(md.get("x-other"), undefined);
    assert.match(md.get("x-forwarded-host") ?? "", /^127\.0\.0\.1:\d+$/);
  });

  test("/version with storage; 3.6 /health carries a reason", async () => {
    let r = await request(s36.port, "/version", { method: "GET" });
    assert.equal(r.body, '{"etcdserver":"3.6.0","etcdcluster":"3.6.0","storage":"3.6.0"}');
    assert.equal(r.headers["content-type"], "application/json");
    r = await request(s36.port, "/health", { method: "GET" });
    assert.equal(r.status, 200);
    assert.equal(r.body, '{"health":"true","reason":""}');
    r = await request(s34.port, "/health", { method: "GET" });
    assert.equal(r.body, '{"health":"true"}');
  });
});

describe("health endpoints", () => {
  const state = { alarms: [] as string[], leader: true, serial: null as Error | null, linear: null as Error | null, slow: false };
  const src: HealthSource = {
    alarms: () => state.alarms,
    hasLeader: () => state.leader,
    serializableRead: async () => {
      if (state.serial) throw state.serial;
    },
    linearizableRead: (signal) =>
      new Promise<void>((resolve, reject) => {
        if (state.linear) return reject(state.linear);
        if (!state.slow) return resolve();
        signal.addEventListener("abort", () => reject(signal.reason as Error));
      }),
  };
  let s: Awaited<ReturnType<typeof serve>>;
  let s34: Awaited<ReturnType<typeof serve>>;
  const registry = new Registry();
  new Counter({ name: "etcd_test_counter_total", help: "a test counter", registers: [registry] }).inc(3);
  before(async () => {
    const deps = { services: [], health: src, versions: () => ({ etcdserver: "3.6.0", etcdcluster: "not_decided" }), metrics: registry, healthTimeoutMs: 100 };
    s = await serve({ ...deps, flavor: "3.6" });
    s34 = await serve({ ...deps, flavor: "3.4" });
  });
  after(async () => {
    await s.close();
    await s34.close();
  });
  const get = (path: string, port = s.port) => request(port, path, { method: "GET" });

  test("/health reasons", async () => {
    state.alarms = ["NOSPACE"];
    let r = await get("/health");
    assert.equal(r.status, 503);
    assert.equal(r.body, '{"health":"false","reason":"ALARM NOSPACE"}\n');
    assert.equal(r.headers["x-content-type-options"], "nosniff");
    r = await get("/health?exclude=NOSPACE");
    assert.equal(r.body, '{"health":"true","reason":""}');
    r = await get("/health", s34.port);
    assert.equal(r.body, '{"health":"false"}\n');
    state.alarms = [];
    state.leader = false;
    r = await get("/health");
    assert.equal(r.body, '{"health":"false","reason":"RAFT NO LEADER"}\n');
    r = await get("/health?serializable=true");
    assert.equal(r.body, '{"health":"true","reason":""}');
    state.leader = true;
    state.linear = Errors.Timeout;
    r = await get("/health");
    assert.equal(r.body, '{"health":"false","reason":"RANGE ERROR:etcdserver: request timed out"}\n');
    state.linear = null;
    state.slow = true;
    r = await get("/health");
    assert.equal(r.body, '{"health":"false","reason":"RANGE ERROR:etcdserver: request timed out"}\n');
    state.slow = false;
    r = await request(s.port, "/health", { method: "HEAD" });
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, "GET");
  });

  test("/livez and /readyz", async () => {
    let r = await get("/livez");
    assert.equal(r.status, 200);
    assert.equal(r.body, "ok\n");
    r = await get("/readyz?verbose");
    assert.equal(r.body, "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n");
    state.linear = Errors.NoLeader;
    r = await get("/readyz");
    assert.equal(r.status, 503);
    assert.equal(r.body, "[+]data_corruption ok\n[+]serializable_read ok\n[-]linearizable_read failed: etcdserver: no leader\n\n");
    r = await get("/readyz?exclude=linearizable_read");
    assert.equal(r.status, 200);
    r = await get("/livez/serializable_read?verbose");
    assert.equal(r.body, "[+]serializable_read ok\nok\n");
    r = await get("/readyz/linearizable_read");
    assert.equal(r.status, 503);
    state.linear = null;
    state.alarms = ["CORRUPT"];
    r = await get("/readyz/data_corruption");
    assert.equal(r.body, "[-]data_corruption failed: alarm activated: CORRUPT\n\n");
    state.alarms = [];
    r = await get("/livez/linearizable_read");
    assert.equal(r.status, 404);
    r = await request(s.port, "/readyz", { method: "POST" });
    assert.equal(r.status, 405);
  });

  test("/version without storage, /metrics", async () => {
    let r = await get("/version");
    assert.equal(r.body, '{"etcdserver":"3.6.0","etcdcluster":"not_decided"}');
    r = await request(s.port, "/metrics", { method: "POST" });
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], registry.contentType);
    assert.match(r.body, /^etcd_test_counter_total 3$/m);
  });
});

describe("access control", () => {
  test("CORS origins and host whitelist", async () => {
    const s = await serve({
      services: [],
      health: healthy,
      versions: () => ({ etcdserver: "3.6.0", etcdcluster: "3.6.0" }),
      cors: ["http://ok.example"],
      hostWhitelist: ["localhost", "127.0.0.1"],
    });
    try {
      let r = await request(s.port, "/version", { method: "GET", headers: { Origin: "http://ok.example" } });
      assert.equal(r.headers["access-control-allow-origin"], "http://ok.example");
      r = await request(s.port, "/version", { method: "GET", headers: { Origin: "http://evil.example" } });
      assert.equal(r.headers["access-control-allow-origin"], undefined);
      r = await request(s.port, "/version", { method: "GET", headers: { Host: "evil.example:2379" } });
      assert.equal(r.status, 421);
      assert.match(r.body, /etcd --host-whitelist "evil\.example"\n/);
    } finally {
      await s.close();
    }
  });
});
