// v3electionpb.Election against a real in-process server (and, where
// /usr/bin/etcd exists, the same scenarios against real etcd for comparison),
// driven by a raw grpc-js client, etcdctl's client-side election recipe and
// the etcd3 npm client's (both share the ordering by create revision). No
// timing assertions: every wait is an "eventually" poll with a generous cap.

import * as grpc from "@grpc/grpc-js";
import { Etcd3 } from "etcd3";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { KV, Lease } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Election } from "../../../gen/v3electionpb/v3election_pb.js";
import { ETCD, ETCDCTL, type Target, startOurs, startEtcd, Client, eventually, rejectsWith, track, etcdctl, UNKNOWN, b, str } from "./rpc.testlib.js";

const targets: Array<{ name: "ours" | "etcd"; start: () => Promise<Target> }> = [{ name: "ours", start: () => startOurs("election") }];
if (existsSync(ETCD)) targets.push({ name: "etcd", start: () => startEtcd("election") });

// ---------------------------------------------------------------- tests

interface Seen {
  rev: bigint;
  key: string;
  value: string;
  create: bigint;
  mod: bigint;
}

/** Observe sequences per implementation, revisions relative to the scenario's start. */
const observed = new Map<string, Seen[]>();

for (const impl of targets) {
  describe(`v3election (${impl.name})`, () => {
    let t: Target;
    let c: Client;
    const grant = async (ttl: bigint) => (await c.unary(Lease.method.leaseGrant, { TTL: ttl })).ID;
    const keysUnder = async (name: string) =>
      (await c.unary(KV.method.range, { key: b(`${name}/`), rangeEnd: b(`${name}0`), sortTarget: 2 /* CREATE */, sortOrder: 1 })).kvs;
    const leaderValue = async (name: string) => str((await c.unary(Election.method.leader, { name: b(name) })).kv!.value);

    before(async () => {
      t = await impl.start();
      c = new Client(t.addr);
    });
    after(async () => {
      c.close();
      await t.stop();
    });

    test("errors: no leader, missing leader field, unknown lease (code Unknown, etcd's text)", async () => {
      await rejectsWith(c.unary(Election.method.leader, { name: b("none") }), UNKNOWN, "election: no leader");
      await rejectsWith(c.unary(Election.method.proclaim, { value: b("x") }), UNKNOWN, '"leader" field must be provided');
      await rejectsWith(c.unary(Election.method.resign, {}), UNKNOWN, '"leader" field must be provided');
      await rejectsWith(
        c.unary(Election.method.campaign, { name: b("none"), lease: 0x7654321n, value: b("v") }),
        UNKNOWN,
        "etcdserver: requested lease not found",
      );
      assert.equal((await keysUnder("none")).length, 0);
    });

    test("Campaign, Leader, Proclaim, Resign", async () => {
      const lease = await grant(100n);
      const camp = await c.unary(Election.method.campaign, { name: b("seq"), lease, value: b("v1") });
      const l = camp.leader!;
      assert.equal(str(l.name), "seq");
      assert.equal(str(l.key), `seq/${lease.toString(16)}`);
      assert.equal(l.lease, lease);
      assert.equal(l.rev, camp.header?.revision);

      const lead = await c.unary(Election.method.leader, { name: b("seq") });
      assert.equal(str(lead.kv!.key), str(l.key));
      assert.equal(str(lead.kv!.value), "v1");
      assert.equal(lead.kv!.createRevision, l.rev);
      assert.equal(lead.kv!.lease, lease);
      assert.equal(lead.header?.revision, l.rev);

      const p = await c.unary(Election.method.proclaim, { leader: l, value: b("v2") });
      assert.equal(p.header?.revision, l.rev + 1n);
      const lead2 = await c.unary(Election.method.leader, { name: b("seq") });
      assert.equal(str(lead2.kv!.value), "v2");
      assert.equal(lead2.kv!.modRevision, p.header?.revision);
      assert.equal(lead2.kv!.createRevision, l.rev);

      // A LeaderKey from another term: Proclaim refuses, Resign does nothing.
      const stale = { ...l, rev: l.rev - 1n };
      await rejectsWith(c.unary(Election.method.proclaim, { leader: stale, value: b("nope") }), UNKNOWN, "election: not leader");
      const rs = await c.unary(Election.method.resign, { leader: stale });
      assert.equal(rs.header?.revision, p.header?.revision);
      assert.equal(await leaderValue("seq"), "v2");

      const r = await c.unary(Election.method.resign, { leader: l });
      assert.equal(r.header?.revision, p.header!.revision + 1n);
      await rejectsWith(c.unary(Election.method.leader, { name: b("seq") }), UNKNOWN, "election: no leader");
      // Resigning again is not an error; proclaiming after resigning is.
      const r2 = await c.unary(Election.method.resign, { leader: l });
      assert.equal(r2.header?.revision, r.header?.revision);
      await rejectsWith(c.unary(Election.method.proclaim, { leader: l, value: b("v3") }), UNKNOWN, "election: not leader");
    });

    test("campaigning again with the same lease resumes the candidacy and proclaims the new value", async () => {
      const lease = await grant(100n);
      const first = await c.unary(Election.method.campaign, { name: b("resume"), lease, value: b("a") });
      const again = await c.unary(Election.method.campaign, { name: b("resume"), lease, value: b("b") });
      assert.equal(again.leader!.rev, first.leader!.rev);
      assert.equal(str(again.leader!.key), str(first.leader!.key));
      // The answer carries the header of the campaign's own txn (before the proclaim).
      assert.equal(again.header?.revision, first.header?.revision);
      const lead = await c.unary(Election.method.leader, { name: b("resume") });
      assert.equal(str(lead.kv!.value), "b");
      assert.equal(lead.kv!.modRevision, first.header!.revision + 1n);
      await c.unary(Election.method.resign, { leader: again.leader! });
    });

    test("lease 0: the server grants a 60 s session lease for the candidate", async () => {
      const camp = await c.unary(Election.method.campaign, { name: b("nolease"), value: b("v") });
      const lease = camp.leader!.lease;
      assert.ok(lease > 0n);
      assert.equal(str(camp.leader!.key), `nolease/${lease.toString(16)}`);
      assert.equal((await c.unary(Lease.method.leaseTimeToLive, { ID: lease })).grantedTTL, 60n);
      await c.unary(Lease.method.leaseRevoke, { ID: lease });
    });

    test("a second candidate waits until the leader resigns", async () => {
      const la = await grant(100n);
      const lb = await grant(100n);
      const a = await c.unary(Election.method.campaign, { name: b("two"), lease: la, value: b("A") });
      const bCall = track(c.unary(Election.method.campaign, { name: b("two"), lease: lb, value: b("B") }));
      await eventually(async () => (await keysUnder("two")).length === 2);
      assert.equal(await leaderValue("two"), "A");
      assert.equal(bCall.done(), false, "B must wait while A leads");
      await c.unary(Election.method.resign, { leader: a.leader! });
      const rb = await bCall.p;
      assert.equal(str(rb.leader!.key), `two/${lb.toString(16)}`);
      // The header is the one of B's campaign txn, from before it was elected.
      assert.equal(rb.header?.revision, rb.leader!.rev);
      assert.ok(rb.leader!.rev > a.leader!.rev);
      assert.equal(await leaderValue("two"), "B");
      await c.unary(Election.method.resign, { leader: rb.leader! });
    });

    test("the leader's lease expiring elects the next candidate", async () => {
      const short = await grant(2n);
      const long = await grant(100n);
      await c.unary(Election.method.campaign, { name: b("expire"), lease: short, value: b("old") });
      const r = await c.unary(Election.method.campaign, { name: b("expire"), lease: long, value: b("new") });
      assert.equal(str(r.leader!.key), `expire/${long.toString(16)}`);
      assert.equal(await leaderValue("expire"), "new");
      await c.unary(Election.method.resign, { leader: r.leader! });
    });

    test("a candidate that goes away withdraws", async () => {
      const la = await grant(100n);
      const lb = await grant(100n);
      const a = await c.unary(Election.method.campaign, { name: b("gone"), lease: la, value: b("A") });
      const call = c.start(Election.method.campaign, { name: b("gone"), lease: lb, value: b("B") });
      call.result.catch(() => undefined);
      await eventually(async () => (await keysUnder("gone")).length === 2);
      call.cancel();
      await eventually(async () => (await keysUnder("gone")).length === 1);
      assert.equal(await leaderValue("gone"), "A");
      await c.unary(Election.method.resign, { leader: a.leader! });
    });

    test("Observe streams the leader, its new values and each next leader until cancelled", async () => {
      const la = await grant(100n);
      const lc = await grant(100n);
      const base = (await c.unary(KV.method.range, { key: b("x") })).header!.revision;
      const seen: Seen[] = [];
      const obs = c.stream(Election.method.observe, { name: b("obs") });
      let ended: unknown;
      obs.on("data", (m: { header?: { revision: bigint }; kv?: { key: Uint8Array; value: Uint8Array; createRevision: bigint; modRevision: bigint } }) =>
        seen.push({
          rev: (m.header?.revision ?? 0n) - base,
          key: str(m.kv!.key),
          value: str(m.kv!.value),
          create: m.kv!.createRevision - base,
          mod: m.kv!.modRevision - base,
        }),
      );
      obs.on("error", (err: { code?: number }) => (ended = err.code));
      const upTo = (n: number) => eventually(async () => seen.length >= n, 20000);

      const a = await c.unary(Election.method.campaign, { name: b("obs"), lease: la, value: b("v1") });
      await upTo(1);
      const cCall = c.unary(Election.method.campaign, { name: b("obs"), lease: lc, value: b("v2") });
      await eventually(async () => (await keysUnder("obs")).length === 2);
      await c.unary(Election.method.proclaim, { leader: a.leader!, value: b("v1b") });
      await upTo(2);
      await c.unary(Election.method.resign, { leader: a.leader! });
      const cl = await cCall;
      await upTo(3);
      await c.unary(Election.method.proclaim, { leader: cl.leader!, value: b("v2b") });
      await upTo(4);
      await c.unary(KV.method.put, { key: b("obs/zzz"), value: b("plain") });
      await c.unary(Election.method.resign, { leader: cl.leader! });
      await upTo(5);
      // A plain put under the prefix then a delete of it: leader goes, nothing new to report.
      await c.unary(KV.method.deleteRange, { key: b("obs/zzz") });
      const la2 = await grant(100n);
      const a2 = await c.unary(Election.method.campaign, { name: b("obs"), lease: la2, value: b("v3") });
      await upTo(6);
      obs.cancel();
      await eventually(async () => ended !== undefined);
      assert.equal(ended, grpc.status.CANCELLED);

      const ka = `obs/${la.toString(16)}`;
      const kc = `obs/${lc.toString(16)}`;
      const ka2 = `obs/${la2.toString(16)}`;
      assert.deepEqual(
        seen.map((s) => [s.key, s.value]),
        [
          [ka, "v1"],
          [ka, "v1b"],
          [kc, "v2"],
          [kc, "v2b"],
          ["obs/zzz", "plain"],
          [ka2, "v3"],
        ],
      );
      // Headers: the revision of the read or of the watched change that reported it.
      assert.equal(seen[0]!.rev, seen[0]!.mod);
      assert.equal(seen[1]!.rev, seen[1]!.mod);
      assert.equal(seen[2]!.rev, seen[1]!.mod + 1n); // read right after A's resignation
      assert.equal(seen[3]!.rev, seen[3]!.mod);
      assert.equal(seen[5]!.rev, seen[5]!.mod);
      assert.equal(a2.leader!.rev - base, seen[5]!.create);
      observed.set(impl.name, seen);
      await c.unary(Election.method.resign, { leader: a2.leader! });
    });

    test("etcdctl elect (client-side recipe) and the Election RPCs see each other", { skip: !existsSync(ETCDCTL) }, async () => {
      // etcdctl observes; our Campaign and Proclaim show up there.
      const watcher = etcdctl(t.addr, ["elect", "-l", "ctl"]);
      const candidate = etcdctl(t.addr, ["elect", "ctl2", "ctl-proposal"]);
      try {
        const lease = await grant(100n);
        const camp = await c.unary(Election.method.campaign, { name: b("ctl"), lease, value: b("from-rpc") });
        const key = `ctl/${lease.toString(16)}`;
        await eventually(async () => watcher.out().includes(`${key}\nfrom-rpc\n`));
        await c.unary(Election.method.proclaim, { leader: camp.leader!, value: b("proclaimed") });
        await eventually(async () => watcher.out().includes(`${key}\nproclaimed\n`));
        await c.unary(Election.method.resign, { leader: camp.leader! });

        // etcdctl campaigns and wins; our candidate waits until it resigns.
        await eventually(async () => /^ctl2\/[0-9a-f]+\nctl-proposal$/m.test(candidate.out()));
        assert.equal(await leaderValue("ctl2"), "ctl-proposal");
        const mine = track(c.unary(Election.method.campaign, { name: b("ctl2"), lease, value: b("rpc-candidate") }));
        await eventually(async () => (await keysUnder("ctl2")).length === 2);
        assert.equal(mine.done(), false);
        candidate.proc.kill("SIGINT"); // etcdctl resigns
        const r = await mine.p;
        assert.equal(str(r.leader!.key), `ctl2/${lease.toString(16)}`);
        assert.equal(await leaderValue("ctl2"), "rpc-candidate");
        await c.unary(Election.method.resign, { leader: r.leader! });
      } finally {
        watcher.proc.kill("SIGKILL");
        candidate.proc.kill("SIGKILL");
        await Promise.all([watcher.exited, candidate.exited]);
      }
    });

    test("the etcd3 client's election recipe and the Election RPCs see each other", async () => {
      // etcd3 names its election keys "election/<name>/<lease id in decimal>";
      // the order is by create revision, so both recipes agree on the leader.
      const e3 = new Etcd3({ hosts: `http://${t.addr}` });
      try {
        const election = e3.election("npm");
        const campaign = election.campaign("npm-leader");
        await campaign.wait();
        assert.equal(await leaderValue("election/npm"), "npm-leader");
        const observer = await election.observe();
        const changes: Array<string | undefined> = [];
        observer.on("change", (v) => changes.push(v));

        const lease = await grant(100n);
        const mine = track(c.unary(Election.method.campaign, { name: b("election/npm"), lease, value: b("rpc-leader") }));
        await eventually(async () => (await e3.getAll().prefix("election/npm/").keys()).length === 2);
        assert.equal(mine.done(), false);
        await campaign.resign();
        const r = await mine.p;
        assert.equal(str(r.leader!.key), `election/npm/${lease.toString(16)}`);
        assert.equal(await election.leader(), "rpc-leader");
        await eventually(async () => observer.leader() === "rpc-leader");
        assert.equal(changes[changes.length - 1], "rpc-leader");
        await observer.cancel();
        await c.unary(Election.method.resign, { leader: r.leader! });
      } finally {
        e3.close();
      }
    });
  });
}

describe("v3election: ours and etcd agree", { skip: !existsSync(ETCD) }, () => {
  test("the same Observe scenario yields the same messages and revisions", () => {
    const ours = observed.get("ours");
    const etcd = observed.get("etcd");
    assert.ok(ours !== undefined && etcd !== undefined, "both Observe scenarios ran");
    assert.deepEqual(
      ours.map((s) => ({ ...s, key: s.key.replace(/[0-9a-f]+$/, "") })),
      etcd.map((s) => ({ ...s, key: s.key.replace(/[0-9a-f]+$/, "") })),
    );
  });
});
