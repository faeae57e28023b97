// The membership client and the decisions, against real etcd 3.4 members (the oracle): a
// seed, a learner added before its process starts, promotion once it caught up, leadership
// moved away before removal, and removal. The decisions see exactly what etcd reports.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { etcdBinaries, freePorts, startMember, banner } from "../../test/harness/index.js";
import type { Member } from "../../test/harness/index.js";
import { decide } from "../src/checks.js";
import type { Facts, MemberFact } from "../src/checks.js";
import { GrpcMembership } from "../src/membership.js";
import type { EtcdMember } from "../src/membership.js";

// No skip: without the oracle these tests fail loudly.
const bins = etcdBinaries();
if (!bins.ok) {
  banner(["operator membership tests need real etcd 3.4 (etcd-server)", bins.reason]);
  throw new Error(`real etcd 3.4 is required: ${bins.reason}`);
}

/** ordinal by peer URL: the test knows which URL it gave which ordinal. */
const ordinals = new Map<string, number>();
const clientURLs = new Map<number, string>();

async function factsFrom(mem: GrpcMembership, size: number, stsReplicas: number): Promise<Facts> {
  const list = await mem.list();
  let leaderId: string | undefined;
  const members: MemberFact[] = [];
  for (const m of list) {
    const ordinal = ordinals.get(m.peerURLs[0] ?? "");
    const url = ordinal === undefined ? undefined : clientURLs.get(ordinal);
    let healthy = false;
    let raftIndex = 0n;
    if (url !== undefined && m.name !== "") {
      try {
        const s = await mem.status(url);
        healthy = true;
        raftIndex = s.raftIndex;
        if (!m.isLearner) leaderId = s.leaderId;
      } catch { /* unhealthy */ }
    }
    members.push({ id: m.id, name: m.name, peerURL: m.peerURLs[0] ?? "", ordinal, isLearner: m.isLearner, healthy, raftIndex, unhealthySince: undefined });
  }
  return {
    size, bootstrapped: true, stsReplicas, members, leaderId, holders: [], pods: [], persistent: true,
    onScaleIn: "Delete", replaceUnhealthyAfterMs: 300_000, now: Date.now(),
  };
}

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last !== undefined ? `: ${String(last)}` : ""}`);
}

describe("membership steps against real etcd 3.4", () => {
  let seed: Member;
  let mem: GrpcMembership;
  let joiner: ChildProcess | undefined;
  let joinerDir: string | undefined;

  before(async () => {
    seed = await startMember({ impl: "etcd", name: "demo-0" });
    ordinals.set(seed.peerUrl, 0);
    clientURLs.set(0, seed.clientUrl);
    mem = new GrpcMembership([seed.clientUrl], 5000);
  });
  after(async () => {
    mem?.close();
    if (joiner?.pid !== undefined && joiner.exitCode === null) {
      process.kill(joiner.pid, "SIGKILL");
      await new Promise((r) => joiner?.once("exit", r));
    }
    if (joinerDir) rmSync(joinerDir, { recursive: true, force: true });
    await seed?.dispose();
  });

  let learner: EtcdMember;
  let peer1 = "";

  test("a single seed: one voting member that leads; nothing to do at size 1", async () => {
    const list = await mem.list();
    assert.equal(list.length, 1);
    assert.equal(list[0]?.name, "demo-0");
    assert.equal(list[0]?.isLearner, false);
    const f = await factsFrom(mem, 1, 1);
    assert.equal(f.leaderId, list[0]?.id);
    assert.deepEqual(decide(f).action, { kind: "none" });
  });

  test("size 2: the decision is to add ordinal 1 as a learner; MemberAdd before any process starts", async () => {
    const d = decide(await factsFrom(mem, 2, 1));
    assert.equal(d.action.kind, "addLearner");
    assert.equal(d.action.kind === "addLearner" && d.action.ordinal, 1);
    const [client1, peerPort1] = await freePorts(2);
    peer1 = `http://127.0.0.1:${peerPort1}`;
    ordinals.set(peer1, 1);
    clientURLs.set(1, `http://127.0.0.1:${client1}`);
    learner = await mem.add(peer1, true);
    assert.equal(learner.isLearner, true);
    assert.match(learner.id, /^[0-9a-f]{16}$/);
    const list = await mem.list();
    assert.equal(list.length, 2);
    assert.equal(list.find((m) => m.id === learner.id)?.name, "", "an added member has no name until it starts");
  });

  test("the operator stopped before growing the StatefulSet: the next pass finishes the step", async () => {
    const d = decide(await factsFrom(mem, 2, 1));
    assert.deepEqual(d.action, { kind: "setReplicas", replicas: 2, reason: "FinishingMemberAdd", message: "member of ordinal 1 was added; starting its pod" });
  });

  test("a learner that has not started cannot be promoted (etcd says why), and the decision is to wait", async () => {
    await assert.rejects(mem.promote(learner.id), /can only promote a learner member which is in sync with leader/);
    const d = decide(await factsFrom(mem, 2, 2));
    assert.equal(d.action.kind, "wait");
    assert.equal(d.action.kind === "wait" && d.action.reason, "LearnerCatchingUp");
  });

  test("the learner starts, catches up, and the decision is to promote it", async () => {
    assert.ok(bins.ok);
    joinerDir = mkdtempSync(join(tmpdir(), "etcdts-op-learner-"));
    const c1 = clientURLs.get(1) ?? "";
    joiner = spawn(bins.value.etcd, [
      "--name", "demo-1", "--data-dir", join(joinerDir, "data"),
      "--listen-client-urls", c1, "--advertise-client-urls", c1,
      "--listen-peer-urls", peer1, "--initial-advertise-peer-urls", peer1,
      "--initial-cluster", `demo-0=${seed.peerUrl},demo-1=${peer1}`,
      "--initial-cluster-state", "existing", "--initial-cluster-token", "conformance-demo-0",
    ], { stdio: "ignore" });
    const d = await eventually("a promote decision", async () => {
      const x = decide(await factsFrom(mem, 2, 2));
      return x.action.kind === "promote" ? x : undefined;
    });
    assert.equal(d.action.kind === "promote" && d.action.member.id, learner.id);
    // etcd may still answer "not in sync" for a moment after the learner reports its index.
    await eventually("promotion", async () => { await mem.promote(learner.id); return true; });
    const list = await mem.list();
    assert.equal(list.find((m) => m.id === learner.id)?.isLearner, false);
    assert.equal(list.find((m) => m.id === learner.id)?.name, "demo-1");
    assert.deepEqual(decide(await factsFrom(mem, 2, 2)).action, { kind: "none" });
  });

  test("scale in to 1: leadership leaves demo-1 first, then demo-1 is removed", async () => {
    let f = await factsFrom(mem, 1, 2);
    const one = f.members?.find((m) => m.ordinal === 1);
    assert.ok(one);
    if (f.leaderId !== one.id) {
      // Make demo-1 the leader so the test always exercises the hand-over.
      await mem.moveLeader(seed.clientUrl, one.id);
      f = await eventually("demo-1 leading", async () => {
        const g = await factsFrom(mem, 1, 2);
        return g.leaderId === one.id ? g : undefined;
      });
    }
    const d1 = decide(f);
    assert.equal(d1.action.kind, "moveLeader");
    if (d1.action.kind !== "moveLeader") return;
    assert.equal(d1.action.to.ordinal, 0);
    await mem.moveLeader(clientURLs.get(1) ?? "", d1.action.to.id);
    const d2 = await eventually("a remove decision", async () => {
      const x = decide(await factsFrom(mem, 1, 2));
      return x.action.kind === "remove" ? x : undefined;
    });
    assert.equal(d2.action.kind === "remove" && d2.action.member.id, one.id);
    assert.equal(d2.action.kind === "remove" && d2.action.replicasAfter, 1);
    // etcd refuses with "unhealthy cluster" until the leader has been connected to the
    // remaining members for 5 s (its HealthInterval); the operator simply retries next pass.
    await eventually("removal", async () => { await mem.remove(one.id); return true; });
    const list = await mem.list();
    assert.deepEqual(list.map((m) => m.name), ["demo-0"]);
    assert.deepEqual(decide(await factsFrom(mem, 1, 1)).action, { kind: "none" });
  });
});
