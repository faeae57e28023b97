// Lease: grant, minimum/maximum TTL, client IDs, keepalive, time-to-live,
// list, revoke (with keys), expiry.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { conformance } from "./framework.js";
import { b, s, keys, rev, expectError, Code } from "./expect.js";
import { WAIT_CAP_MS } from "./client.js";
import { KV } from "../../node/gen/etcdserverpb/rpc_pb.js";

conformance("grant with a server-chosen ID; time-to-live and list show it", async ({ c }) => {
  const g = await c.leaseGrant({ TTL: 60n });
  assert.ok(g.ID > 0n, "server-chosen lease IDs are positive");
  assert.equal(g.TTL, 60n);
  assert.equal(g.error, "");
  assert.equal(rev(g.header), 1n, "a grant makes no KV revision");
  const t = await c.leaseTimeToLive({ ID: g.ID });
  assert.equal(t.ID, g.ID);
  assert.equal(t.grantedTTL, 60n);
  assert.ok(t.TTL > 0n && t.TTL <= 60n, `remaining TTL ${t.TTL}`);
  assert.deepEqual(t.keys, []);
  const g2 = await c.leaseGrant({ TTL: 30n });
  assert.notEqual(g2.ID, g.ID);
  const list = await c.leaseLeases();
  assert.deepEqual(list.leases.map((l) => l.ID).sort(), [g.ID, g2.ID].sort());
});

conformance("TTL below the minimum is raised to 2 s (1 s election timeout); 0 and negative too", async ({ c }) => {
  for (const ttl of [1n, 0n, -5n]) {
    const g = await c.leaseGrant({ TTL: ttl });
    assert.equal(g.TTL, 2n, `granted TTL for ${ttl}`);
    const t = await c.leaseTimeToLive({ ID: g.ID });
    assert.equal(t.grantedTTL, 2n);
  }
  const three = await c.leaseGrant({ TTL: 3n });
  assert.equal(three.TTL, 3n);
}, { clients: ["grpc", "http", "etcd3"] });

conformance("the minimum TTL follows --election-timeout", async ({ c }) => {
  // minTTL = ceil(3/2 * election timeout): 2000 ms -> 3 s.
  const g = await c.leaseGrant({ TTL: 1n });
  assert.equal(g.TTL, 3n);
}, { clients: ["grpc"], flags: ["--heartbeat-interval", "100", "--election-timeout", "2000"] });

conformance("too large TTL, and the largest allowed", async ({ c }) => {
  await expectError(c.leaseGrant({ TTL: 9_000_000_001n }), { code: Code.OutOfRange, message: "etcdserver: too large lease TTL" });
  const max = await c.leaseGrant({ TTL: 9_000_000_000n });
  assert.equal(max.TTL, 9_000_000_000n);
});

conformance("client-chosen lease IDs; an ID already in use", async ({ c }) => {
  const g = await c.leaseGrant({ TTL: 60n, ID: 100n });
  assert.equal(g.ID, 100n);
  await expectError(c.leaseGrant({ TTL: 60n, ID: 100n }), { code: Code.FailedPrecondition, message: "etcdserver: lease already exists" });
  // etcd 3.4 accepts a negative client-chosen ID.
  const neg = await c.leaseGrant({ TTL: 60n, ID: -100n });
  assert.equal(neg.ID, -100n);
  const list = await c.leaseLeases();
  assert.deepEqual(list.leases.map((l) => l.ID).sort(), [-100n, 100n]);
}, { clients: ["grpc", "http", "etcd3"] });

conformance("keepalive returns the granted TTL", async ({ c }) => {
  const g = await c.leaseGrant({ TTL: 45n });
  const k = await c.leaseKeepAliveOnce(g.ID);
  assert.equal(k.ID, g.ID);
  assert.equal(k.TTL, 45n);
  assert.equal(rev(k.header), 1n);
});

conformance("keepalive of an unknown lease answers TTL 0 (not an error)", async ({ c }) => {
  const k = await c.leaseKeepAliveOnce(4242n);
  assert.equal(k.ID, 4242n);
  assert.equal(k.TTL, 0n);
}, { clients: ["grpc", "etcd3"] });

conformance("keepalive of an unknown lease with etcdctl", async ({ c }) => {
  await expectError(c.leaseKeepAliveOnce(4242n), { code: Code.NotFound, message: "requested lease not found" });
}, { clients: ["etcdctl"] });

conformance("time-to-live of an unknown lease is TTL -1 (not an error)", async ({ c }) => {
  const t = await c.leaseTimeToLive({ ID: 4242n, keys: true });
  assert.equal(t.ID, 4242n);
  assert.equal(t.TTL, -1n);
  assert.equal(t.grantedTTL, 0n);
  assert.deepEqual(t.keys, []);
});

conformance("time-to-live lists attached keys; deleting a key detaches it", async ({ c }) => {
  const g = await c.leaseGrant({ TTL: 600n });
  await c.put({ key: b("lk/b"), value: b("1"), lease: g.ID });
  await c.put({ key: b("lk/a"), value: b("2"), lease: g.ID });
  await c.put({ key: b("lk/c"), value: b("3"), lease: g.ID });
  const t = await c.leaseTimeToLive({ ID: g.ID, keys: true });
  assert.deepEqual(t.keys.map(s).sort(), ["lk/a", "lk/b", "lk/c"]);
  const nokeys = await c.leaseTimeToLive({ ID: g.ID });
  assert.deepEqual(nokeys.keys, [], "keys only when asked");
  await c.deleteRange({ key: b("lk/b") });
  await c.put({ key: b("lk/c"), value: b("plain") }); // re-put without lease detaches
  const t2 = await c.leaseTimeToLive({ ID: g.ID, keys: true });
  assert.deepEqual(t2.keys.map(s), ["lk/a"]);
  const r = await c.range({ key: b("lk/"), rangeEnd: b("lk0") });
  assert.deepEqual(r.kvs.map((kv) => [s(kv.key), kv.lease === g.ID]), [["lk/a", true], ["lk/c", false]]);
});

conformance("revoke deletes all attached keys in one revision and forgets the lease", async ({ c }) => {
  const g = await c.leaseGrant({ TTL: 600n });
  await c.put({ key: b("r/1"), value: b("a"), lease: g.ID }); // 2
  await c.put({ key: b("r/2"), value: b("b"), lease: g.ID }); // 3
  await c.put({ key: b("r/3"), value: b("c") }); // 4, no lease
  const rv = await c.leaseRevoke(g.ID);
  assert.equal(rev(rv.header), 5n, "one revision for all deletions");
  const now = await c.range({ key: b("r/"), rangeEnd: b("r0") });
  assert.deepEqual(keys(now.kvs), ["r/3"]);
  const before = await c.range({ key: b("r/"), rangeEnd: b("r0"), revision: 4n });
  assert.deepEqual(keys(before.kvs), ["r/1", "r/2", "r/3"]);
  const t = await c.leaseTimeToLive({ ID: g.ID });
  assert.equal(t.TTL, -1n);
  assert.deepEqual((await c.leaseLeases()).leases, []);
  await expectError(c.leaseRevoke(g.ID), { code: Code.NotFound, message: "etcdserver: requested lease not found" });
  await expectError(c.put({ key: b("r/9"), value: b("x"), lease: g.ID }), { code: Code.NotFound, message: "etcdserver: requested lease not found" });
});

conformance("revoking a lease without keys makes no revision", async ({ c }) => {
  const g = await c.leaseGrant({ TTL: 600n });
  const rv = await c.leaseRevoke(g.ID);
  assert.equal(rev(rv.header), 1n);
});

conformance("revoke of an unknown lease", async ({ c }) => {
  await expectError(c.leaseRevoke(4242n), { code: Code.NotFound, message: "etcdserver: requested lease not found" });
});

conformance("an expired lease deletes its keys", async ({ c, raw }) => {
  const g = await c.leaseGrant({ TTL: 2n });
  await c.put({ key: b("exp"), value: b("v"), lease: g.ID }); // 2
  await c.put({ key: b("stay"), value: b("v") }); // 3
  // Poll (generous cap) on the unrecorded connection: how many polls it takes
  // depends on timing, so they stay out of the compared transcript. Expiry
  // takes about TTL seconds; we only require that it happens.
  const deadline = Date.now() + WAIT_CAP_MS;
  let gone = false;
  while (Date.now() < deadline) {
    const r = await raw.unary(KV.method.range, { key: b("exp") });
    if (r.kvs.length === 0) {
      gone = true;
      break;
    }
    await sleep(250);
  }
  assert.ok(gone, "key with an expired lease still there after the wait cap");
  const t = await c.leaseTimeToLive({ ID: g.ID });
  assert.equal(t.TTL, -1n);
  const all = await c.range({ key: b("\0"), rangeEnd: b("\0") });
  assert.deepEqual(keys(all.kvs), ["stay"]);
  assert.equal(rev(all.header), 4n, "the expiry deleted the key in one revision");
}, { clients: ["grpc"] });
