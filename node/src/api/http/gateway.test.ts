// The JSON gateway compared byte for byte with real etcd's own gateway.
//
// Two fresh etcd processes A and B receive the same requests in the same
// order. Our gateway (createHttpHandler) serves requests whose handlers
// forward over gRPC to A (a genuine proxy, etcd-harness.testlib.ts); B answers
// with its own grpc-gateway. Status, the meaningful headers, trailers and body
// must match after normalising cluster/member ids, raft term and ports.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { AlarmRequestSchema, AlarmRequest_AlarmAction, RangeRequestSchema, StatusRequestSchema } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { AlarmResponse, RangeResponse, StatusResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { AnyServiceImpl, CallContext } from "../registry.js";
import { createHttpHandler } from "./index.js";
import type { HealthSource } from "./index.js";
import { etcdAvailable, proxyServices, startEtcd } from "./etcd-harness.testlib.js";
import type { EtcdProcess } from "./etcd-harness.testlib.js";
import { headerView, normalize, openStream, request } from "./httpclient.testlib.js";
import type { HttpResult, RequestOptions, StreamCall } from "./httpclient.testlib.js";

const available = etcdAvailable();

function call<T>(services: AnyServiceImpl[], svc: string, method: string, req: unknown, signal?: AbortSignal): Promise<T> {
  const impl = services.find((s) => s.service.typeName === svc)!;
  const h = impl.handlers[method] as (r: unknown, ctx: CallContext) => Promise<T>;
  return h(req, { metadata: new Map(), signal: signal ?? new AbortController().signal });
}

/** A HealthSource answered by the member behind `services`. */
function healthFrom(services: AnyServiceImpl[]): HealthSource & { refresh(): Promise<void> } {
  let alarms: string[] = [];
  let leader = false;
  return {
    async refresh() {
      const a = await call<AlarmResponse>(services, "etcdserverpb.Maintenance", "alarm", create(AlarmRequestSchema, { action: AlarmRequest_AlarmAction.GET }));
      alarms = a.alarms.map((x) => (x.alarm === 1 ? "NOSPACE" : x.alarm === 2 ? "CORRUPT" : "UNKNOWN"));
      const s = await call<StatusResponse>(services, "etcdserverpb.Maintenance", "status", create(StatusRequestSchema));
      leader = s.leader !== 0n;
    },
    alarms: () => alarms,
    hasLeader: () => leader,
    async serializableRead(signal) {
      await call<RangeResponse>(services, "etcdserverpb.KV", "range", create(RangeRequestSchema, { key: new Uint8Array([0]), keysOnly: true, limit: 1n, serializable: true }), signal);
    },
    async linearizableRead(signal) {
      await call<RangeResponse>(services, "etcdserverpb.KV", "range", create(RangeRequestSchema, { key: new Uint8Array([0]), keysOnly: true, limit: 1n }), signal);
    },
  };
}

describe("JSON gateway vs real etcd's gateway", { skip: !available }, () => {
  let a: EtcdProcess;
  let b: EtcdProcess;
  let proxy: ReturnType<typeof proxyServices>;
  let server: http.Server;
  let ours = 0;
  let real = 0;

  before(async () => {
    [a, b] = await Promise.all([startEtcd("gw"), startEtcd("gw")]);
    real = b.clientPort;
    proxy = proxyServices(a.endpoint);
    const health = healthFrom(proxy.services);
    await health.refresh();
    const v = JSON.parse((await request(real, "/version", { method: "GET" })).body) as { etcdserver: string; etcdcluster: string };
    server = http.createServer(
      createHttpHandler({
        services: proxy.services,
        health,
        versions: () => ({ etcdserver: v.etcdserver, etcdcluster: v.etcdcluster }),
        flavor: "3.4",
      }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    ours = (server.address() as AddressInfo).port;
  });

  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    proxy?.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  function compare(what: string, o: HttpResult, r: HttpResult, norm: (s: string) => string = normalize): void {
    assert.equal(o.status, r.status, `${what}: status (ours ${o.body} / etcd ${r.body})`);
    assert.deepEqual(headerView(o.headers), headerView(r.headers), `${what}: headers`);
    assert.equal(norm(o.body), norm(r.body), `${what}: body`);
    assert.deepEqual(o.trailers, r.trailers, `${what}: trailers`);
  }

  async function same(path: string, opts: RequestOptions = {}, norm?: (s: string) => string): Promise<HttpResult> {
    const [o, r] = await Promise.all([request(ours, path, opts), request(real, path, opts)]);
    compare(`${opts.method ?? "POST"} ${path} ${String(opts.body ?? "")}`, o, r, norm);
    return o;
  }

  const post = (path: string, body?: string) => same(path, body === undefined ? {} : { body });

  test("kv put / range / deleterange", async () => {
    await post("/v3/kv/put", '{"key": "Zm9v", "value": "YmFy"}');
    await post("/v3/kv/put", '{"key":"Zm9v","value":"YmF6","prev_kv":true}');
    await post("/v3/kv/put", '{"key":"Zm9vMQ==","value":"","prevKv":true,"unknown_field":{"x":[1]}}');
    await post("/v3/kv/range", '{"key":"Zm9v"}');
    await post("/v3/kv/range", '{"key":"Zm9v","range_end":"Zm9w","sort_order":"DESCEND","sort_target":"KEY","limit":"1"}');
    await post("/v3/kv/range", '{"key":"Zm9v","rangeEnd":"Zm9w","keys_only":true,"countOnly":false,"sort_order":1,"sort_target":4}');
    await post("/v3/kv/range", '{"key":"Zm9v","range_end":"Zm9w","count_only":true}');
    await post("/v3/kv/range", '{"key":"bm9uZQ=="}');
    await post("/v3/kv/range", '{"key":"AA==","range_end":"AA=="}');
    await post("/v3/kv/deleterange", '{"key":"Zm9vMQ==","prev_kv":true}');
    await post("/v3/kv/deleterange", '{"key":"bm9uZQ=="}');
    await post("/v3/kv/put", '{"key":"Zm9v","value":"PGE+JjwvYT4="}');
  });

  test("kv txn", async () => {
    await post(
      "/v3/kv/txn",
      '{"compare":[{"target":"VALUE","key":"Zm9v","value":"PGE+JjwvYT4="}],"success":[{"request_put":{"key":"Zm9v","value":"YmF6"}},{"requestRange":{"key":"Zm9v"}}],"failure":[]}',
    );
    await post(
      "/v3/kv/txn",
      '{"compare":[{"target":"CREATE","key":"Zm9v","create_revision":0}],"success":[],"failure":[{"request_delete_range":{"key":"Zm9v","prev_kv":true}},{"request_txn":{"success":[{"request_put":{"key":"eA==","value":"eQ=="}}]}}]}',
    );
    await post("/v3/kv/txn", '{"compare":[{"result":"GREATER","target":"MOD","key":"eA==","mod_revision":"1"}]}');
    await post("/v3/kv/txn", "{}");
    await post("/v3/kv/txn", '{"success":[{"request_put":{"key":"YQ=="}},{"request_put":{"key":"YQ=="}}]}');
  });

  test("kv errors: empty key, future and compacted revisions", async () => {
    await post("/v3/kv/put", '{"key": ""}');
    await post("/v3/kv/put", "");
    await post("/v3/kv/put", "null");
    await post("/v3/kv/range", '{"key":"Zm9v","revision":100000}');
    await post("/v3/kv/compaction", '{"revision":3}');
    await post("/v3/kv/range", '{"key":"Zm9v","revision":2}');
    await post("/v3/kv/compaction", '{"revision":2}');
    await post("/v3/kv/compaction", '{"revision":"100000","physical":true}');
  });

  test("request decoding errors match Go's encoding/json byte for byte", async () => {
    const bodies = [
      '{"key": "my-key"}', // the tutorial's plain text key
      '{"key":"Zm9"}', '{"key":"Zm9v="}', '{"key":"Zm9=v"}', '{"key":"Zm-_"}', '{"key":"Zm9vYg"}',
      '{"key":"Zm\\n9v","value":"YQ=="}', '{"key":"\\u005a\\u006d\\u0038\\u003d"}',
      '{"key":5}', '{"key":true}', '{"key":{}}', '{"key":[90,300]}', '{"key":[90,"a"]}', '{"key":[90,109]}',
      '{"key": ', '{"key" "a"}', '{"key":"Zm9v",}', '{"key":"Zm9v" "a"}', "xx", "<x>", "'", "[]", "123", "12x", '"abc"',
      '{} xx', '{5:1}', '{"key":"a\\x"}', '{"key":"\\u12"}', '{"key":-}', '{"key":1.}', '{"key":1e}', '{"key":tru}',
      '{"key":nul }', '{"key":[1,2,}', '{"key":[1 2]}', '{"key":"Zm9v","lease":"abc"}', '{"key":"Zm9v","lease":1.5}',
      '{"key":"Zm9v","lease":"0x10"}', '{"key":"Zm9v","lease":"1e2"}', '{"key":"Zm9v","lease":""}', '{"key":"Zm9v","lease":"-"}',
      '{"key":"Zm9v","lease":"01"}', '{"key":"Zm9v","lease":01}', '{"key":"Zm9v","lease":{}}', '{"key":"Zm9v","lease":[]}',
      '{"key":"Zm9v","lease":true}', '{"key":"Zm9v","lease":"\\"5\\""}', '{"key":"Zm9v","lease":12345678901234567890}',
      '{"key":"Zm9v","prev_kv":"true"}', '{"key":"Zm9v","value":null,"lease":null,"prev_kv":null}',
      "\u0001", '{"key":"\\u0000"}',
    ];
    for (const body of bodies) await post("/v3/kv/put", body);
    await same("/v3/kv/put", { body: Buffer.from([0x7b, 0x22, 0x6b, 0x65, 0x79, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]) });
    await same("/v3/kv/put", { body: Buffer.from([0xff]) });
    // Deep nesting in an unknown field, at and past encoding/json's depth limit.
    for (const n of [9998, 10001]) await post("/v3/kv/range", `{"key":"Zm9v","x":${"[".repeat(n)}${"]".repeat(n)}}`);
    await post("/v3/kv/range", '{"key":"Zm9v","sort_order":1.5}');
    await post("/v3/kv/range", '{"key":"Zm9v","sort_order":"5"}');
    await post("/v3/kv/range", '{"key":"Zm9v","sort_order":"NOPE","sort_target":"KEY"}');
    await post("/v3/kv/range", '{"key":"Zm9v","sort_order":true}');
    await post("/v3/kv/txn", '{"compare":{}}');
    await post("/v3/kv/txn", '{"compare":[5]}');
    await post("/v3/kv/txn", '{"compare":[{"target":"CREATE","key":"Zm9v","create_revision":"x"}]}');
    await post("/v3/cluster/member/remove", '{"ID":-1}');
    await post("/v3/cluster/member/remove", '{"ID":"18446744073709551616"}');
    await post("/v3/auth/user/get", '{"name":5}');
  });

  test("large values: accepted up to the request limit, then etcd's error", async () => {
    const big = (n: number) => JSON.stringify({ key: "Ymln", value: Buffer.alloc(n, 0x61).toString("base64") });
    await post("/v3/kv/put", big(1024 * 1024));
    await post("/v3/kv/put", big(1600 * 1024));
    await post("/v3/kv/put", big(3 * 1024 * 1024));
    await post("/v3/kv/range", '{"key":"Ymln","keys_only":true}');
  });

  test("leases: grant, timetolive, leases, revoke (both bindings)", async () => {
    await post("/v3/lease/grant", '{"TTL":600,"ID":4242}');
    await post("/v3/lease/grant", '{"TTL":600,"ID":4242}');
    await post("/v3/lease/grant", '{"TTL":9000000000000}');
    await post("/v3/kv/put", '{"key":"bGVhc2Vk","value":"eA==","lease":"4242"}');
    await post("/v3/kv/put", '{"key":"bGVhc2Vk","value":"eA==","lease":"4243"}');
    const ttl = (s: string) => normalize(s).replace(/"TTL":"\d+"/, '"TTL":"T"');
    await same("/v3/lease/timetolive", { body: '{"ID":4242,"keys":true}' }, ttl);
    await same("/v3/kv/lease/timetolive", { body: '{"ID":"4242"}' }, ttl);
    await post("/v3/lease/timetolive", '{"ID":77}');
    await post("/v3/lease/leases", "{}");
    await post("/v3/kv/lease/leases", "");
    await post("/v3/lease/revoke", '{"ID":78}');
    await post("/v3/kv/lease/revoke", '{"ID":78}');
    await post("/v3/kv/lease/revoke", '{"ID":4242}');
    await post("/v3/kv/range", '{"key":"bGVhc2Vk"}');
  });

  test("lease keepalive: body of several values, bad first value, empty body", async () => {
    await post("/v3/lease/grant", '{"TTL":600,"ID":5151}');
    await post("/v3/lease/keepalive", '{"ID":5151} {"ID":"5151"}\n{"ID":5}');
    await post("/v3/lease/keepalive", '{"ID":5151} {"ID":x} {"ID":5151}');
    await post("/v3/lease/keepalive", '{"ID":x}');
    await post("/v3/lease/keepalive", '{"ID":"abc"}');
    await post("/v3/lease/keepalive");
  });

  async function sameLine(calls: StreamCall[], what: string): Promise<string | null> {
    const [o, r] = await Promise.all(
      calls.map((c, i) => c.nextLine().catch((e: Error) => Promise.reject(new Error(`${what}: ${i === 0 ? "ours" : "etcd"}: ${e.message}; pending ${JSON.stringify(c.rest())}`)))),
    );
    assert.equal(o === null || o === undefined ? o : normalize(o), r === null || r === undefined ? r : normalize(r), what);
    return o ?? null;
  }

  test("watch: streamed responses, requests written while the stream is open", async () => {
    const first = '{"create_request":{"key":"d2F0Y2hlZA==","prev_kv":true}}';
    const calls = [openStream(ours, "/v3/watch", first), openStream(real, "/v3/watch", first)];
    try {
      const [ro, rr] = await Promise.all(calls.map((c) => c.response));
      assert.equal(ro!.status, rr!.status);
      assert.deepEqual(headerView(ro!.headers), headerView(rr!.headers));
      await sameLine(calls, "created");
      await post("/v3/kv/put", '{"key":"d2F0Y2hlZA==","value":"MQ=="}');
      await sameLine(calls, "put event");
      await post("/v3/kv/put", '{"key":"d2F0Y2hlZA==","value":"Mg=="}');
      await sameLine(calls, "put event with prev_kv");
      await post("/v3/kv/deleterange", '{"key":"d2F0Y2hlZA=="}');
      await sameLine(calls, "delete event");
      for (const c of calls) c.write('{"create_request":{"key":"eA==","range_end":"eQ==","watch_id":7,"filters":["NODELETE"]}}');
      await sameLine(calls, "second watcher created");
      for (const c of calls) c.write('{"create_request":{"key":"eA==","watch_id":7}}');
      await sameLine(calls, "duplicate watch id");
      for (const c of calls) c.write('{"cancel_request":{"watch_id":7}}\n');
      await sameLine(calls, "canceled");
      for (const c of calls) c.write(' {"progress_request":{}}');
      await sameLine(calls, "progress");
      for (const c of calls) c.write('{"create_request":{"key":""}}');
      await sameLine(calls, "empty key watch");
    } finally {
      for (const c of calls) c.destroy();
    }
  });

  test("watch: compacted start revision, then the request body ends (stream stays open)", async () => {
    const body = '{"create_request":{"key":"Zm9v","start_revision":1}}';
    const calls = [openStream(ours, "/v3/watch", body), openStream(real, "/v3/watch", body)];
    try {
      for (const c of calls) c.end();
      await sameLine(calls, "created");
      await sameLine(calls, "canceled with compact_revision");
    } finally {
      for (const c of calls) c.destroy();
    }
  });

  test("watch: bad first value is a 500 with code 2; a bad later value ends the request stream", async () => {
    await post("/v3/watch", '{"create_request":{"key":5}}');
    await post("/v3/watch", "{");
    const body = '{"create_request":{"key":"eg=="}} {"create_request":{"key":x}} {"create_request":{"key":"eg=="}}';
    const calls = [openStream(ours, "/v3/watch", body), openStream(real, "/v3/watch", body)];
    try {
      await sameLine(calls, "created");
      await post("/v3/kv/put", '{"key":"eg==","value":"MQ=="}');
      await sameLine(calls, "one watcher only");
    } finally {
      for (const c of calls) c.destroy();
    }
  });

  test("snapshot streams {\"result\":...} lines", async () => {
    const [o, r] = await Promise.all([request(ours, "/v3/maintenance/snapshot", {}), request(real, "/v3/maintenance/snapshot", {})]);
    assert.equal(o.status, r.status);
    assert.deepEqual(headerView(o.headers), headerView(r.headers));
    for (const res of [o, r]) {
      assert.ok(res.body.endsWith("\n"));
      const lines = res.body.trimEnd().split("\n");
      assert.ok(lines.length >= 1);
      for (const l of lines) {
        const j = JSON.parse(l) as { result: { blob?: string; remaining_bytes?: string } };
        assert.ok(j.result.blob !== undefined);
      }
      const last = JSON.parse(lines[lines.length - 1]!) as { result: { remaining_bytes?: string } };
      assert.equal(last.result.remaining_bytes, undefined);
    }
  });

  test("cluster, maintenance, auth, election", async () => {
    await post("/v3/cluster/member/list", "{}");
    await post("/v3/maintenance/alarm", '{"action":"GET"}');
    await post("/v3/maintenance/alarm", '{"action":"FOO"}');
    await same("/v3/maintenance/hash", { body: "{}" }, (s) => normalize(s).replace(/"hash":\d+/, '"hash":H'));
    await post("/v3/auth/enable", "{}");
    await post("/v3/auth/user/get", '{"name":"nobody"}');
    await post("/v3/auth/role/get", '{"role":"nobody"}');
    await post("/v3/auth/user/add", '{"name":"<a&b>\\u2028\\u00e9\\u0001","password":"p"}');
    await post("/v3/auth/user/add", '{"name":"\\ud800x\\u0007","password":"p"}');
    await post("/v3/auth/user/list", "{}");
    await post("/v3/auth/user/delete", '{"name":"<a&b>\\u2028\\u00e9\\u0001"}');
    await post("/v3/auth/user/delete", '{"name":"\\ud800x\\u0007"}');
    await post("/v3/auth/role/add", '{"name":"r"}');
    await post("/v3/auth/role/grant", '{"name":"r","perm":{"permType":"READWRITE","key":"YQ==","range_end":"Yg=="}}');
    await post("/v3/auth/role/get", '{"role":"r"}');
    await post("/v3/auth/role/grant", '{"name":"r","perm":{"permType":"NOPE"}}');
    await post("/v3/auth/role/delete", '{"role":"r"}');
    await post("/v3/election/leader", '{"name":"ZWw="}');
    await same("/v3/kv/range", { body: '{"key":"Zm9v"}', headers: { Authorization: "bogus" } });
  });

  test("routing: methods, unknown paths, redirects, /v3beta, OPTIONS", async () => {
    await same("/v3/kv/range", { method: "GET" });
    await same("/v3/kv/range", { method: "PUT", body: "{}" });
    await same("/v3/kv/range", { method: "HEAD" });
    await post("/v3/kv/nothing", "{}");
    await post("/v3/kv/range/", "{}");
    await post("/v3/", "{}");
    await post("/v3", "{}");
    await same("/v3", { method: "GET" });
    await post("//v3/kv/range", '{"key":"Zm9v"}');
    await post("/v3/kv/../kv/range?x=1", '{"key":"Zm9v"}');
    await post("/v3/kv%2Frange", '{"key":"Zm9v"}');
    await post("/v3beta/kv/range", '{"key":"Zm9v"}');
    await post("/v3alpha/kv/range", '{"key":"Zm9v"}');
    await post("/V3/kv/range", "{}");
    await post("/nothing", "{}");
    await same("/v3/kv/range", { method: "OPTIONS" });
    await same("/health", { method: "OPTIONS" });
  });

  test("/health and /version", async () => {
    await same("/health", { method: "GET" });
    await same("/health?serializable=true", { method: "GET" });
    await same("/health?exclude=NOSPACE", { method: "GET" });
    await same("/health", { method: "POST" });
    await same("/version", { method: "GET" });
    await same("/version", { method: "POST" });
    const v = JSON.parse((await request(ours, "/version", { method: "GET" })).body) as Record<string, unknown>;
    assert.deepEqual(Object.keys(v), ["etcdserver", "etcdcluster"]);
  });
});
