// Maintenance, cluster and health: status, alarms, defragment, snapshot,
// member list, grpc.health.v1, and the plain HTTP /health and /version.
import assert from "node:assert/strict";
import { conformance } from "./framework.js";
import { b, keys, rev, Code } from "./expect.js";
import { Health } from "../../node/gen/grpc/health/v1/health_pb.js";
import { HealthCheckResponse_ServingStatus } from "../../node/gen/grpc/health/v1/health_pb.js";
import { GrpcCallError } from "../harness/grpc.js";

conformance("status: version, leader is this member, sizes and indexes, no errors", async ({ c, member }) => {
  await c.put({ key: b("a"), value: b("1") });
  const st = await c.status();
  assert.match(st.version, /^3\.\d+\.\d+/, "a plausible etcd version (kube-apiserver parses it)");
  assert.ok(st.header, "status has a header");
  assert.equal(st.leader, st.header.memberId, "a single member leads itself");
  assert.equal(rev(st.header), 2n);
  assert.ok(st.dbSize > 0n, "dbSize > 0");
  assert.ok(st.dbSizeInUse > 0n && st.dbSizeInUse <= st.dbSize, "0 < dbSizeInUse <= dbSize");
  assert.ok(st.raftIndex > 0n);
  assert.ok(st.raftTerm > 0n);
  assert.equal(st.raftTerm, st.header.raftTerm);
  assert.ok(st.raftAppliedIndex > 0n && st.raftAppliedIndex <= st.raftIndex);
  assert.deepEqual(st.errors, []);
  assert.equal(st.isLearner, false);
  void member;
});

conformance("alarm list is empty", async ({ c }) => {
  const a = await c.alarmList();
  assert.deepEqual(a.alarms, []);
});

conformance("defragment succeeds and keeps the data", async ({ c }) => {
  await c.put({ key: b("a"), value: b("1") });
  await c.put({ key: b("a"), value: b("2") });
  await c.compact({ revision: 3n });
  await c.defragment();
  const r = await c.range({ key: b("a") });
  assert.deepEqual(keys(r.kvs), ["a"]);
  assert.equal(rev(r.header), 3n);
});

conformance("snapshot streams a non-empty database and ends with remaining_bytes 0", async ({ c }) => {
  await c.put({ key: b("a"), value: b("x".repeat(1000)) });
  const snap = await c.snapshot();
  assert.ok(snap.bytes > 0, "snapshot has bytes");
  assert.ok(snap.chunks >= 1);
  assert.equal(snap.lastRemaining, 0n);
}, { clients: ["grpc", "etcdctl"] });

conformance("member list: one member with its name and URLs", async ({ c, member }) => {
  const ml = await c.memberList();
  assert.equal(ml.members.length, 1);
  const m = ml.members[0]!;
  assert.equal(m.name, member.name);
  assert.deepEqual(m.peerURLs, [member.peerUrl]);
  assert.deepEqual(m.clientURLs, [member.clientUrl]);
  assert.equal(m.isLearner, false);
  assert.ok(ml.header);
  assert.equal(m.ID, ml.header.memberId);
  const st = await c.status();
  assert.equal(st.header?.clusterId, ml.header.clusterId);
  assert.equal(ml.header.revision, 0n, "etcd 3.4 leaves revision unset in MemberList's header");
});

conformance("grpc.health.v1 Check: '' is SERVING, an unknown service is NotFound", async ({ raw, note }) => {
  const ok = await raw.unary(Health.method.check, { service: "" });
  assert.equal(ok.status, HealthCheckResponse_ServingStatus.SERVING);
  note("check ''", { status: ok.status });
  let err: unknown;
  try {
    await raw.unary(Health.method.check, { service: "no.such.Service" });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof GrpcCallError);
  assert.equal(err.code, Code.NotFound);
  assert.equal(err.details, "unknown service");
  note("check unknown", { code: err.code, message: err.details });
}, { clients: ["grpc"] });

conformance("HTTP GET /health and /version", async ({ member, note }) => {
  const h = await fetch(`${member.clientUrl}/health`);
  assert.equal(h.status, 200);
  const hb = (await h.json()) as Record<string, unknown>;
  assert.equal(hb["health"], "true");
  note("GET /health", { status: h.status, body: hb });
  const v = await fetch(`${member.clientUrl}/version`);
  assert.equal(v.status, 200);
  const vb = (await v.json()) as Record<string, unknown>;
  assert.match(String(vb["etcdserver"]), /^3\.\d+\.\d+/);
  assert.match(String(vb["etcdcluster"]), /^3\.\d+\.\d+$/);
  note("GET /version keys", Object.keys(vb).filter((k) => k !== "storage").sort());
  const post = await fetch(`${member.clientUrl}/health`, { method: "POST" });
  assert.equal(post.status, 405);
  note("POST /health", post.status);
}, { clients: ["http"] });

conformance("gateway: unknown path is 404; bad JSON is a 400 with InvalidArgument", async ({ member, note }) => {
  const nf = await fetch(`${member.clientUrl}/v3/kv/nope`, { method: "POST", body: "{}" });
  assert.equal(nf.status, 404);
  note("unknown path", nf.status);
  const bad = await fetch(`${member.clientUrl}/v3/kv/range`, { method: "POST", body: "{not json" });
  assert.equal(bad.status, 400);
  const body = (await bad.json()) as Record<string, unknown>;
  assert.equal(body["code"], Code.InvalidArgument);
  note("bad json", { status: bad.status, code: body["code"] });
  const err = await fetch(`${member.clientUrl}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: "" }) });
  const eb = (await err.json()) as Record<string, unknown>;
  assert.equal(err.status, 400);
  // etcd 3.6's gateway (grpc-gateway v2) answers a google.rpc.Status body.
  assert.deepEqual(eb, { code: 3, message: "etcdserver: key is not provided" });
  note("etcd error", { status: err.status, body: eb });
  const nfLease = await fetch(`${member.clientUrl}/v3/lease/revoke`, { method: "POST", body: JSON.stringify({ ID: "42" }) });
  assert.equal(nfLease.status, 404, "NotFound maps to HTTP 404");
  note("lease not found", { status: nfLease.status, body: await nfLease.json() });
  const oor = await fetch(`${member.clientUrl}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: "YQ==", revision: "99" }) });
  assert.equal(oor.status, 400, "OutOfRange maps to HTTP 400");
  note("future rev", { status: oor.status, body: await oor.json() });
}, { clients: ["http"] });
