// Real-process clusters: three members started with etcd's clustering flags,
// ours and (as the oracle) real etcd, put through the same script:
// replication, linearizable reads through another member, kill -9 of the
// leader, no acknowledged write lost, a restarted member catching up, and
// membership changes (learner add, join, promote, remove).

import assert from "node:assert/strict";
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Cluster as ClusterSvc, KV, Lease, Maintenance, Watch, WatchRequestSchema, type WatchResponse } from "../../node/gen/etcdserverpb/rpc_pb.js";
import { GrpcCallError, GrpcConn } from "../harness/grpc.js";
import { etcdBinaries } from "../harness/provision.js";
import { freePort } from "../harness/ports.js";
import { Cluster, eventually, type ClusterNode, type Impl } from "../harness/launch.js";

const enc = (s: string) => new Uint8Array(Buffer.from(s));
const dec = (u: Uint8Array) => Buffer.from(u).toString();

const conns: GrpcConn[] = [];
const clusters: Cluster[] = [];
after(async () => {
  for (const c of conns.splice(0)) c.close();
  for (const c of clusters.splice(0)) await c.dispose();
});

function conn(n: ClusterNode): GrpcConn {
  const c = new GrpcConn(n.target, { deadlineMs: 20_000 });
  conns.push(c);
  return c;
}

function impls(): Impl[] {
  return etcdBinaries().ok ? ["ours", "etcd"] : ["ours"];
}

async function withCluster(impl: Impl, fn: (c: Cluster) => Promise<void>): Promise<void> {
  const c = await Cluster.start(impl, await Cluster.specs(3));
  clusters.push(c);
  try {
    await fn(c);
  } catch (e) {
    const tails = c.nodes.map((n) => `--- ${impl} ${n.spec.name}\n${n.logTail(15)}`).join("\n");
    throw new Error(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n${tails}`);
  } finally {
    await c.dispose();
  }
}

for (const impl of impls()) {
  test(`${impl}: 3 members — writes through a follower, linearizable reads elsewhere, kill -9 of the leader loses nothing, the restarted member catches up`, async () => {
    await withCluster(impl, async (c) => {
      const leader = await c.waitLeader(c.nodes);
      const followers = c.nodes.filter((n) => n !== leader);
      const [a, b] = [followers[0]!, followers[1]!];
      const ca = conn(a);
      const cb = conn(b);
      const acked = new Map<string, string>();
      for (let i = 0; i < 30; i++) {
        const k = `k${i}`;
        await ca.unary(KV.method.put, { key: enc(k), value: enc(`v${i}`) });
        acked.set(k, `v${i}`);
        // Linearizable: a read through another member right after the ack sees it.
        const r = await cb.unary(KV.method.range, { key: enc(k) });
        assert.equal(r.kvs.length, 1, `read of ${k} through ${b.spec.name}`);
        assert.equal(dec(r.kvs[0]!.value), `v${i}`);
      }
      // The leader dies without warning.
      await leader.kill9();
      const newLeader = await c.waitLeader(followers);
      assert.ok(followers.includes(newLeader));
      for (let i = 30; i < 40; i++) {
        await eventually(`put k${i} after the leader died`, async () => {
          await ca.unary(KV.method.put, { key: enc(`k${i}`), value: enc(`v${i}`) });
          return true;
        });
        acked.set(`k${i}`, `v${i}`);
      }
      const all = await cb.unary(KV.method.range, { key: enc("k"), rangeEnd: enc("l") });
      assert.deepEqual(new Map(all.kvs.map((kv) => [dec(kv.key), dec(kv.value)])), acked, "every acknowledged write is there");
      // The old leader comes back on its data dir and catches up.
      leader.start();
      const cl = conn(leader);
      await eventually("the restarted member to catch up", async () => {
        const r = await cl.unary(KV.method.range, { key: enc("k"), rangeEnd: enc("l"), serializable: true });
        return r.kvs.length === acked.size ? true : undefined;
      });
      const back = await cl.unary(KV.method.range, { key: enc("k"), rangeEnd: enc("l") });
      assert.deepEqual(new Map(back.kvs.map((kv) => [dec(kv.key), dec(kv.value)])), acked);
      assert.equal(back.header!.revision, all.header!.revision, "same revision everywhere");
    });
  });

  test(`${impl}: a member serves clients only once it has published itself through raft (etcd's ReadyNotify); until then requests wait`, async () => {
    await withCluster(impl, async (c) => {
      for (const n of c.nodes) await n.stop();
      const [m1, m2] = [c.nodes[0]!, c.nodes[1]!];
      m1.start();
      await eventually("m1's client port to accept connections", async () =>
        new Promise<true | undefined>((resolve) => {
          const sock = connect(m1.spec.clientPort, "127.0.0.1", () => {
            sock.destroy();
            resolve(true);
          });
          sock.on("error", () => resolve(undefined));
        }),
      );
      // Alone it has no quorum, so it cannot publish: its client port takes connections but answers nothing.
      const early = fetch(`${m1.clientUrl}/health`, { signal: AbortSignal.timeout(120_000) }).then(async (r) => (await r.json()) as { health: string });
      const waiting = new GrpcConn(m1.target, { deadlineMs: 3000 });
      try {
        await assert.rejects(waiting.unary(Maintenance.method.status, {}), (e: unknown) => e instanceof GrpcCallError && e.code === 4, "Status before publishing");
      } finally {
        waiting.close();
      }
      // A second member makes a quorum; the held request is answered.
      m2.start();
      assert.deepEqual((await early).health, "true");
      const st = await conn(m1).unary(Maintenance.method.status, {});
      assert.notEqual(st.leader, 0n);
    });
  });

  test(`${impl}: a member restarted over a wiped data dir with its old ID refuses to bootstrap again instead of serving`, async () => {
    await withCluster(impl, async (c) => {
      const leader = await c.waitLeader(c.nodes);
      const cl = conn(leader);
      for (let i = 0; i < 20; i++) await cl.unary(KV.method.put, { key: enc(`w${i}`), value: enc("x") });
      const victim = c.nodes.find((n) => n !== leader)!;
      // It has the writes, then loses its disk but keeps its name, URLs and ID.
      await eventually("the follower to have the writes", async () => {
        const r = await conn(victim).unary(KV.method.range, { key: enc("w19"), serializable: true });
        return r.kvs.length === 1 ? true : undefined;
      });
      await victim.stop();
      rmSync(victim.dataDir, { recursive: true, force: true });
      victim.start();
      // Its peers know it published before (etcd's isMemberBootstrapped): it exits.
      // (Were it to start, the leader's next heartbeat would commit past its empty
      // log: raft's "tocommit(N) is out of range", fatal in etcd and in ours.)
      await eventually("the wiped member to exit", async () => (victim.running ? undefined : true), 60_000);
      assert.notEqual(victim.exitCode, 0, "exit status of the wiped member");
      assert.match(victim.logTail(400), /member [0-9a-f]+ has already been bootstrapped/);
      // The rest keep serving.
      const r = await cl.unary(KV.method.range, { key: enc("w"), rangeEnd: enc("x") });
      assert.equal(r.kvs.length, 20);
    });
  });

  test(`${impl}: membership — add a learner, start it with --initial-cluster-state existing, promote it, remove a member`, async () => {
    await withCluster(impl, async (c) => {
      const leader = await c.waitLeader(c.nodes);
      const follower = c.nodes.find((n) => n !== leader)!;
      const cf = conn(follower);
      await cf.unary(KV.method.put, { key: enc("before"), value: enc("join") });
      // Errors first: promoting a voter, removing an unknown member.
      const voterId = (await cf.unary(ClusterSvc.method.memberList, {})).members[0]!.ID;
      await assert.rejects(cf.unary(ClusterSvc.method.memberPromote, { ID: voterId }), (e: GrpcCallError) => {
        assert.equal(e.details, "etcdserver: can only promote a learner member");
        return true;
      });
      await assert.rejects(cf.unary(ClusterSvc.method.memberRemove, { ID: 12345n }), (e: GrpcCallError) => {
        assert.equal(e.details, "etcdserver: member not found");
        return true;
      });
      const spec = { name: "m4", clientPort: await freePort(), peerPort: await freePort() };
      // Right after start, etcd refuses reconfiguration until every voter has been
      // connected for its health interval (5 s): "etcdserver: unhealthy cluster".
      const added = await eventually("MemberAdd to be accepted", async () => {
        try {
          return await cf.unary(ClusterSvc.method.memberAdd, { peerURLs: [`http://127.0.0.1:${spec.peerPort}`], isLearner: true });
        } catch (e) {
          if (e instanceof GrpcCallError && e.details === "etcdserver: unhealthy cluster") return undefined;
          throw e;
        }
      });
      const id = added.member!.ID;
      assert.equal(added.member!.isLearner, true);
      assert.equal(added.members.length, 4);
      const m4 = c.join(spec);
      const c4 = conn(m4);
      // The learner publishes its name and client URLs once it has caught up.
      await eventually("the learner to publish itself", async () => {
        const l = await cf.unary(ClusterSvc.method.memberList, {});
        const me = l.members.find((m) => m.ID === id);
        return me !== undefined && me.name === "m4" && me.clientURLs.length === 1 ? true : undefined;
      });
      const st = await c.status(m4);
      assert.equal(st?.isLearner, true);
      // A learner does not serve linearizable reads in etcd; a serializable one shows it replicated.
      await eventually("the learner to have the data", async () => {
        const r = await c4.unary(KV.method.range, { key: enc("before"), serializable: true });
        return r.kvs.length === 1 ? true : undefined;
      });
      // Promote (etcd refuses until the learner is in sync; retry until it is).
      await eventually("the promotion", async () => {
        const r = await cf.unary(ClusterSvc.method.memberPromote, { ID: id });
        return r.members.find((m) => m.ID === id)?.isLearner === false ? true : undefined;
      });
      await eventually("the promoted member to know it is a voter", async () => ((await c.status(m4))?.isLearner === false ? true : undefined));
      const r4 = await c4.unary(KV.method.range, { key: enc("before") });
      assert.equal(r4.kvs.length, 1);
      // Remove a follower that is not the one we talk to: it stops serving, the rest go on.
      const victim = c.nodes.find((n) => n !== follower && n !== m4 && n !== leader)!;
      const victimId = (await c.status(victim))!.header!.memberId;
      const rm = await cf.unary(ClusterSvc.method.memberRemove, { ID: victimId });
      assert.equal(rm.members.length, 3);
      assert.ok(!rm.members.some((m) => m.ID === victimId));
      await cf.unary(KV.method.put, { key: enc("after"), value: enc("remove") });
      const r = await c4.unary(KV.method.range, { key: enc("after") });
      assert.equal(dec(r.kvs[0]!.value), "remove");
      if (impl === "ours") {
        // etcd-ts exits once it applies its own removal (etcd 3.4 exits too, on its own schedule).
        await victim.waitExit();
      }
    });
  });

  test(`${impl}: MemberRemove keeps an active quorum (etcd's mayRemoveMember); a removed ID is "member not found" and a removed member is refused`, async () => {
    await withCluster(impl, async (c) => {
      const leader = await c.waitLeader(c.nodes);
      const [f1, f2] = c.nodes.filter((n) => n !== leader) as [ClusterNode, ClusterNode];
      const cf = conn(f1);
      const id = async (n: ClusterNode) => (await c.status(n))!.header!.memberId;
      const leaderId = await id(leader);
      const f2Id = await id(f2);
      await f2.kill9();
      // f1 is asked to remove the leader while f2 is down: of the two voters that
      // would remain, only f1 itself is connected — not a quorum.
      await assert.rejects(cf.unary(ClusterSvc.method.memberRemove, { ID: leaderId }), (e: GrpcCallError) => {
        assert.equal(e.details, "etcdserver: unhealthy cluster");
        assert.equal(e.code, 14); // Unavailable
        return true;
      });
      // A member that is down is not part of the active quorum: removing it is allowed.
      // (Retried while f1 still counts f2's link as up, right after the kill.)
      const rm = await eventually("the removal of the downed member", async () => {
        try {
          return await cf.unary(ClusterSvc.method.memberRemove, { ID: f2Id });
        } catch (e) {
          if (e instanceof GrpcCallError && e.details === "etcdserver: unhealthy cluster") return undefined;
          throw e;
        }
      });
      assert.deepEqual(rm.members.map((m) => m.ID).sort(), [leaderId, await id(f1)].sort());
      // Its ID is gone for good: etcd answers ErrIDRemoved as "member not found".
      for (const [what, call] of [
        ["remove", () => cf.unary(ClusterSvc.method.memberRemove, { ID: f2Id })],
        ["update", () => cf.unary(ClusterSvc.method.memberUpdate, { ID: f2Id, peerURLs: ["http://127.0.0.1:1"] })],
        ["promote", () => cf.unary(ClusterSvc.method.memberPromote, { ID: f2Id })],
      ] as const) {
        await assert.rejects(call(), (e: GrpcCallError) => {
          assert.equal(e.details, "etcdserver: member not found", what);
          return true;
        });
      }
      // The removed member comes back with its data: the peers refuse it, it says why and stops.
      f2.start();
      await eventually("the removed member to stop", async () => (f2.running ? undefined : true), 60_000);
      assert.match(f2.logTail(200), /the member has been permanently removed from the cluster/);
      // The two that remain serve.
      await cf.unary(KV.method.put, { key: enc("after"), value: enc("remove") });
      const r = await conn(leader).unary(KV.method.range, { key: enc("after") });
      assert.equal(dec(r.kvs[0]!.value), "remove");
    });
  });

  test(`${impl}: watches on a follower and on the leader see every event exactly once and in order while MoveLeader moves the leader twice under writes`, async (t) => {
    await withCluster(impl, async (c) => {
      const leader = await c.waitLeader(c.nodes);
      const [f1, f2] = c.nodes.filter((n) => n !== leader) as [ClusterNode, ClusterNode];
      const idOf = async (n: ClusterNode) => (await c.status(n))!.header!.memberId;
      const cw = conn(f2); // the writer talks to f2 throughout (a follower, then the leader)
      const first = await cw.unary(KV.method.put, { key: enc("w/start"), value: enc("0") });
      const start = first.header!.revision + 1n;
      type Ev = { key: string; value: string; rev: bigint; type: number };
      const open = (n: ClusterNode, from: bigint) => {
        const s = conn(n).bidi(Watch.method.watch);
        const w = { events: [] as Ev[], created: false, problem: undefined as string | undefined, close: () => s.cancel() };
        s.on("data", (r: WatchResponse) => {
          if (r.created) w.created = true;
          if (r.canceled) w.problem = `canceled: ${r.cancelReason}`;
          for (const e of r.events) w.events.push({ key: dec(e.kv!.key), value: dec(e.kv!.value), rev: e.kv!.modRevision, type: e.type });
        });
        s.on("error", (e: { code?: number; details?: string }) => {
          if (e.code !== 1) w.problem ??= `stream error ${e.code}: ${e.details}`; // 1: cancelled by us
        });
        s.write(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc("w/"), rangeEnd: enc("w0"), startRevision: from } } }));
        return w;
      };
      const onFollower = open(f1, start);
      const onLeader = open(leader, start);
      await eventually("both watches to be created", async () => (onFollower.created && onLeader.created ? true : undefined));

      const N = 300;
      const acked = new Map<bigint, string>();
      const retried: string[] = [];
      const transient = (e: unknown) =>
        e instanceof GrpcCallError &&
        /leader changed|request timed out|no leader|context deadline exceeded|not leader|stopped/.test(e.details);
      const writer = async () => {
        for (let i = 0; i < N; i++) {
          for (;;) {
            try {
              const r = await cw.unary(KV.method.put, { key: enc(`w/${i}`), value: enc(`v${i}`) });
              acked.set(r.header!.revision, `w/${i}=v${i}`);
              break;
            } catch (e) {
              if (!transient(e)) throw e;
              retried.push((e as GrpcCallError).details); // may have applied: then the key appears twice in the history
            }
          }
        }
      };
      const moves: string[] = [];
      const mover = async () => {
        let lead = leader;
        for (const [at, to] of [[N / 3, f1], [(2 * N) / 3, f2]] as const) {
          await eventually(`${at} writes`, async () => (acked.size >= at ? true : undefined));
          await conn(lead).unary(Maintenance.method.moveLeader, { targetID: await idOf(to) });
          lead = to;
          moves.push(`${at}: -> ${to.spec.name}`);
        }
      };
      await Promise.all([writer(), mover()]);
      assert.equal((await c.waitLeader(c.nodes)).spec.name, f2.spec.name, "the leader moved twice, to f2");
      const end = [...acked.keys()].reduce((a, b) => (a > b ? a : b));
      for (const [name, w] of [["on the first follower", onFollower], ["on the first leader", onLeader]] as const) {
        await eventually(`the watch ${name} to reach revision ${end}`, async () => (w.problem !== undefined || w.events.at(-1)?.rev === end ? true : undefined));
        assert.equal(w.problem, undefined, name);
        // Every revision from the start exactly once, in order: nothing else writes, so no gap either.
        assert.deepEqual(
          w.events.map((e) => e.rev),
          Array.from({ length: Number(end - start + 1n) }, (_, i) => start + BigInt(i)),
          `revisions seen ${name}`,
        );
        for (const [rev, kv] of acked) assert.equal(`${w.events[Number(rev - start)]!.key}=${w.events[Number(rev - start)]!.value}`, kv, `${name}: revision ${rev}`);
      }
      // And they are the history itself: a watch opened afterwards from the same revision replays the same events.
      const replay = open(f1, start);
      await eventually("the replay", async () => (replay.problem !== undefined || replay.events.at(-1)?.rev === end ? true : undefined));
      assert.deepEqual(onFollower.events, replay.events);
      assert.deepEqual(onLeader.events, replay.events);
      for (const w of [onFollower, onLeader, replay]) w.close();
      t.diagnostic(`${impl}: ${acked.size} writes, revisions ${start}..${end}, moves ${moves.join(", ")}, transient errors retried: ${retried.length}`);
    });
  });

  test(`${impl}: leases — granted and kept alive through a follower, they survive the leader's death`, async () => {
    await withCluster(impl, async (c) => {
      const leader = await c.waitLeader(c.nodes);
      const [a, b] = c.nodes.filter((n) => n !== leader) as [ClusterNode, ClusterNode];
      const ca = conn(a);
      const g = await ca.unary(Lease.method.leaseGrant, { TTL: 30n });
      await ca.unary(KV.method.put, { key: enc("leased"), value: enc("x"), lease: g.ID });
      // A keep-alive through a follower reaches the leader and answers the TTL.
      const ka = ca.client.makeBidiStreamRequest(
        "/etcdserverpb.Lease/LeaseKeepAlive",
        (m: Uint8Array) => Buffer.from(m),
        (b: Buffer) => b,
      );
      const first = new Promise<Buffer>((resolve, reject) => {
        ka.once("data", resolve);
        ka.once("error", reject);
      });
      const { toBinary, fromBinary, create } = await import("@bufbuild/protobuf");
      const { LeaseKeepAliveRequestSchema, LeaseKeepAliveResponseSchema } = await import("../../node/gen/etcdserverpb/rpc_pb.js");
      ka.write(toBinary(LeaseKeepAliveRequestSchema, create(LeaseKeepAliveRequestSchema, { ID: g.ID })));
      const resp = fromBinary(LeaseKeepAliveResponseSchema, await first);
      ka.end();
      ka.cancel();
      assert.equal(resp.ID, g.ID);
      assert.equal(resp.TTL, 30n);
      // Keep-alives arriving together go to the leader in one request: each gets its own TTL
      // (0 for a lease the leader does not know), whichever stream asked.
      const g2 = await ca.unary(Lease.method.leaseGrant, { TTL: 20n });
      const together = await Promise.all(
        [g.ID, g2.ID, 424242n, g.ID].map((id) => {
          const s = ca.client.makeBidiStreamRequest("/etcdserverpb.Lease/LeaseKeepAlive", (m: Uint8Array) => Buffer.from(m), (b: Buffer) => b);
          const got = new Promise<Buffer>((resolve, reject) => {
            s.once("data", resolve);
            s.once("error", reject);
          });
          s.write(toBinary(LeaseKeepAliveRequestSchema, create(LeaseKeepAliveRequestSchema, { ID: id })));
          return got.finally(() => {
            s.end();
            s.cancel();
          });
        }),
      );
      assert.deepEqual(
        together.map((b) => {
          const r = fromBinary(LeaseKeepAliveResponseSchema, b);
          return [r.ID, r.TTL];
        }),
        [[g.ID, 30n], [g2.ID, 20n], [424242n, 0n], [g.ID, 30n]],
      );
      await leader.kill9();
      await c.waitLeader([a, b]);
      const cb = conn(b);
      const ttl = await eventually("TimeToLive after the leader died", async () => cb.unary(Lease.method.leaseTimeToLive, { ID: g.ID, keys: true }));
      assert.equal(ttl.grantedTTL, 30n);
      assert.ok(ttl.TTL > 0n, `the lease is alive (TTL ${ttl.TTL})`);
      assert.deepEqual(ttl.keys.map(dec), ["leased"]);
      const r = await cb.unary(KV.method.range, { key: enc("leased") });
      assert.equal(r.kvs[0]?.lease, g.ID);
    });
  });

  test(`${impl}: without a quorum there is no leader — requests fail with etcd's errors instead of hanging`, async () => {
    await withCluster(impl, async (c) => {
      const leader = await c.waitLeader(c.nodes);
      const others = c.nodes.filter((n) => n !== leader);
      for (const n of others) await n.kill9();
      const cl = conn(leader);
      // With check-quorum the lone leader steps down; then "hasleader" calls are refused at once.
      const err = await eventually("etcdserver: no leader", async () => {
        try {
          await cl.unary(KV.method.put, { key: enc("x"), value: enc("y") }, { metadata: { hasleader: "true" }, deadlineMs: 3000 });
          return undefined;
        } catch (e) {
          return e instanceof GrpcCallError && e.details === "etcdserver: no leader" ? e : undefined;
        }
      });
      assert.equal(err.code, 14);
      // A plain write waits for a leader until the server's request timeout, then
      // fails with the context's error, as etcd 3.6 passes it through (DeadlineExceeded;
      // etcd 3.4 sends the same text as Unknown).
      await assert.rejects(cl.unary(KV.method.put, { key: enc("x"), value: enc("y") }, { deadlineMs: 30_000 }), (e: GrpcCallError) => {
        assert.equal(e.details, "context deadline exceeded");
        assert.equal(e.code, 4);
        return true;
      });
    });
  });

  if (impl === "ours") {
    // etcd 3.4 has no --snapshot-catchup-entries (it keeps 5000 entries), so only ours is made to need a snapshot here.
    test(`${impl}: a follower that fell behind a compacted log catches up from a snapshot of the leader's state`, async () => {
      const c = await Cluster.start(impl, await Cluster.specs(3), ["--snapshot-count", "40", "--snapshot-catchup-entries", "5"]);
      clusters.push(c);
      try {
        const leader = await c.waitLeader(c.nodes);
        const [a, b] = c.nodes.filter((n) => n !== leader) as [ClusterNode, ClusterNode];
        const cl = conn(leader);
        await cl.unary(KV.method.put, { key: enc("early"), value: enc("1") });
        await eventually("b has the early key", async () => {
          const r = await conn(b).unary(KV.method.range, { key: enc("early"), serializable: true });
          return r.kvs.length === 1 ? true : undefined;
        });
        await b.kill9();
        for (let i = 0; i < 150; i++) await cl.unary(KV.method.put, { key: enc(`s${String(i).padStart(3, "0")}`), value: enc(`v${i}`) });
        const lease = await cl.unary(Lease.method.leaseGrant, { TTL: 60n });
        await cl.unary(KV.method.put, { key: enc("leased"), value: enc("y"), lease: lease.ID });
        const want = await cl.unary(KV.method.range, { key: enc("\0"), rangeEnd: enc("\0") });
        b.start();
        const cb = conn(b);
        await eventually("b to catch up", async () => {
          const r = await cb.unary(KV.method.range, { key: enc("\0"), rangeEnd: enc("\0"), serializable: true });
          return r.header!.revision === want.header!.revision ? r : undefined;
        });
        const got = await cb.unary(KV.method.range, { key: enc("\0"), rangeEnd: enc("\0") });
        assert.deepEqual(
          got.kvs.map((kv) => [dec(kv.key), dec(kv.value), kv.modRevision, kv.lease]),
          want.kvs.map((kv) => [dec(kv.key), dec(kv.value), kv.modRevision, kv.lease]),
        );
        assert.match(b.logTail(400), /restored the backend from a leader snapshot/, "b caught up through the snapshot path");
        const ttl = await cb.unary(Lease.method.leaseTimeToLive, { ID: lease.ID, keys: true });
        assert.deepEqual(ttl.keys.map(dec), ["leased"]);
        // b keeps working as a member: a write through it, read everywhere.
        await cb.unary(KV.method.put, { key: enc("from-b"), value: enc("ok") });
        const r = await conn(a).unary(KV.method.range, { key: enc("from-b") });
        assert.equal(dec(r.kvs[0]!.value), "ok");
        // And it restarts cleanly from the restored state.
        await b.kill9();
        b.start();
        await eventually("b back after a restart", async () => {
          const x = await cb.unary(KV.method.range, { key: enc("from-b"), serializable: true });
          return x.kvs.length === 1 ? true : undefined;
        });
      } catch (e) {
        throw new Error(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n${c.nodes.map((n) => `--- ${n.spec.name}\n${n.logTail(15)}`).join("\n")}`);
      } finally {
        await c.dispose();
      }
    });

    // Found by the driver simulator (seed 1000037): a MsgSnap used to carry the stored
    // snapshot's configuration, which a member added after that snapshot is not in, so
    // its raft refused it ("not in the ConfState") and, with the log compacted past its
    // start, it waited for the next snapshot: forever on an idle cluster. etcd rewrites
    // a MsgSnap when it sends it (applied index and term, current configuration).
    test(`${impl}: a learner added after the leader's latest snapshot catches up by snapshot on an idle cluster`, async () => {
      const c = await Cluster.start(impl, await Cluster.specs(3), ["--snapshot-count", "40", "--snapshot-catchup-entries", "5"]);
      clusters.push(c);
      try {
        const leader = await c.waitLeader(c.nodes);
        const cl = conn(leader);
        for (let i = 0; i < 100; i++) await cl.unary(KV.method.put, { key: enc(`k${String(i).padStart(3, "0")}`), value: enc(`v${i}`) });
        const spec = { name: "m4", clientPort: await freePort(), peerPort: await freePort() };
        await eventually("MemberAdd to be accepted", async () => {
          try {
            return await cl.unary(ClusterSvc.method.memberAdd, { peerURLs: [`http://127.0.0.1:${spec.peerPort}`], isLearner: true });
          } catch (e) {
            if (e instanceof GrpcCallError && e.details === "etcdserver: unhealthy cluster") return undefined;
            throw e;
          }
        });
        const want = await cl.unary(KV.method.range, { key: enc("k"), rangeEnd: enc("l") });
        // Nothing else is written: the cluster stays idle while the learner joins.
        const m4 = c.join(spec);
        const c4 = conn(m4);
        await eventually("the learner to have every key", async () => {
          const r = await c4.unary(KV.method.range, { key: enc("k"), rangeEnd: enc("l"), serializable: true });
          return r.kvs.length === want.kvs.length ? r : undefined;
        });
        assert.match(m4.logTail(400), /restored the backend from a leader snapshot/, "the learner caught up through the snapshot path");
      } catch (e) {
        throw new Error(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n${c.nodes.map((n) => `--- ${n.spec.name}\n${n.logTail(15)}`).join("\n")}`);
      } finally {
        await c.dispose();
      }
    });

    test(`${impl}: a ~30 MB snapshot streams to a follower over the peer port and restores into an equal store (HashKV); the follower's peak RSS is reported`, async (t) => {
      const c = await Cluster.start(impl, await Cluster.specs(3), ["--snapshot-count", "40", "--snapshot-catchup-entries", "5"]);
      clusters.push(c);
      try {
        const leader = await c.waitLeader(c.nodes);
        const b = c.nodes.find((n) => n !== leader)!;
        await b.kill9();
        const cl = conn(leader);
        // 16 keys rewritten 40 times with 48 KiB values: ~30 MB of history, 16 live values.
        for (let i = 0; i < 40; i++) {
          await Promise.all(
            Array.from({ length: 16 }, (_, k) => cl.unary(KV.method.put, { key: enc(`big/${k}`), value: new Uint8Array(48 * 1024).fill((k * 40 + i) % 251) })),
          );
        }
        const want = await cl.unary(KV.method.range, { key: enc("big/"), rangeEnd: enc("big0"), countOnly: true });
        const rev = want.header!.revision;
        b.start();
        const cb = conn(b);
        await eventually("b to catch up", async () => {
          const r = await cb.unary(KV.method.range, { key: enc("big/"), rangeEnd: enc("big0"), serializable: true, countOnly: true });
          return r.header!.revision >= rev ? true : undefined;
        });
        assert.match(b.logTail(400), /restored the backend from a leader snapshot/, "b caught up through the snapshot path");
        const hl = await cl.unary(Maintenance.method.hashKV, { revision: rev });
        const hb = await cb.unary(Maintenance.method.hashKV, { revision: rev });
        assert.equal(hb.hash, hl.hash, "HashKV of the restored follower equals the leader's");
        assert.equal(hb.compactRevision, hl.compactRevision);
        const restored = b.logTail(400).split("\n").find((l) => l.includes("restored the backend from a leader snapshot"))!;
        const bytes = Number((JSON.parse(restored) as { bytes?: number }).bytes ?? 0);
        assert.ok(bytes > 25 * 1024 * 1024, `the snapshot was ${bytes} bytes`);
        assert.deepEqual(readdirSync(join(b.dataDir, "member", "snap")), [], "the applied snapshot file is deleted");
        assert.deepEqual(readdirSync(join(b.dataDir, "member")).sort(), ["snap", "store", "wal"]);
        const kb = (pid: number | undefined, field: string) =>
          Number(/\d+/.exec(readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith(field)) ?? "")?.[0] ?? NaN);
        const mb = (k: number) => `${(k / 1024).toFixed(0)} MB`;
        const other = c.nodes.find((n) => n !== leader && n !== b)!;
        t.diagnostic(
          `snapshot ${(bytes / 1024 / 1024).toFixed(1)} MB; peak RSS (VmHWM): restored follower ${mb(kb(b.child?.pid, "VmHWM"))}, ` +
            `follower that applied the same writes as entries ${mb(kb(other.child?.pid, "VmHWM"))}, leader ${mb(kb(leader.child?.pid, "VmHWM"))}`,
        );
      } catch (e) {
        throw new Error(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n${c.nodes.map((n) => `--- ${n.spec.name}\n${n.logTail(15)}`).join("\n")}`);
      } finally {
        await c.dispose();
      }
    });
  }
}
