// Membership with etcdctl 3.4 (Debian's), the way an operator of a cluster
// does it by hand, on a 3-member cluster of real etcd 3.6 and one of ours:
// member add --learner, start the new member with --initial-cluster-state
// existing, member promote, member list and endpoint status as tables,
// move-leader, member remove. Every command's output, with member and
// cluster IDs replaced by names and the numbers that differ between any two
// runs (sizes, raft indexes and terms) masked, must be the same on both.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { Cluster, eventually, type ClusterNode, type Impl } from "../harness/launch.js";
import { freePort } from "../harness/ports.js";
import { debianEtcd, etcdBinaries, isCI } from "../harness/provision.js";

interface Run {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

function ctl(bin: string, endpoints: readonly ClusterNode[], args: readonly string[]): Run {
  const r = spawnSync(bin, [`--endpoints=${endpoints.map((n) => n.clientUrl).join(",")}`, ...args], { encoding: "utf8", timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Member IDs (hex and decimal) to member names, the cluster ID to <cluster>, masked numbers. */
function normalise(text: string, ids: ReadonlyMap<string, string>, clusterId: string): string {
  let t = text;
  for (const [hex, name] of ids) t = t.split(hex).join(`<${name}>`).split(BigInt(`0x${hex}`).toString()).join(`<${name}>`);
  t = t.split(clusterId).join("<cluster>").split(BigInt(`0x${clusterId}`).toString()).join("<cluster>");
  // etcdctl prints IDs with %16x: an ID with a leading zero nibble is padded with a space.
  t = t.replace(/ +(<m\d>|<cluster>)/g, " $1");
  // endpoint status -w table: DB SIZE, RAFT TERM, RAFT INDEX, RAFT APPLIED INDEX vary by run and by server.
  t = t.replace(/\| *[\d.]+ (?:kB|MB|B) *\|/g, "| <size> |");
  t = t.replace(/(\| *(?:true|false|<leader\?>) *\| *(?:true|false) *)\| *\d+ *\| *\d+ *\| *\d+ *\|/g, "$1| <term> | <index> | <applied> |");
  t = t.replace(/\| +/g, "| ").replace(/ +\|/g, " |").replace(/-{2,}/g, "--");
  // Addresses are per run; the version's patch level is the build's (etcd 3.6.16 says 3.6.16, ours 3.6.0).
  t = t.replace(/127\.0\.0\.1:\d+/g, "<addr>").replace(/\| 3\.6\.\d+ \|/g, "| 3.6.x |");
  // Member order follows the IDs, which differ from run to run: sort what lists members.
  t = t.replace(/ETCD_INITIAL_CLUSTER="([^"]*)"/, (_, l: string) => `ETCD_INITIAL_CLUSTER="${l.split(",").sort().join(",")}"`);
  const lines = t.split("\n");
  const byMember = (l: string) => /<m\d>/.exec(l)?.[0] ?? l;
  const rows = lines.filter((l) => /^\| (<m\d>|http)/.test(l)).sort((a, b) => byMember(a).localeCompare(byMember(b)));
  let k = 0;
  t = lines.map((l) => (/^\| (<m\d>|http)/.test(l) ? rows[k++]! : l)).join("\n");
  return t;
}

async function script(impl: Impl, bin: string): Promise<string[]> {
  const c = await Cluster.start(impl, await Cluster.specs(3));
  const log: string[] = [];
  try {
    const ids = new Map<string, string>();
    const list = () => ctl(bin, c.nodes.filter((n) => n.running), ["member", "list", "-w", "json"]);
    const learnIds = () => {
      const l = list();
      const clusterId = /"cluster_id":(\d+)/.exec(l.out)?.[1];
      for (const m of l.out.matchAll(/"ID":(\d+),"name":"([^"]*)"/g)) ids.set(BigInt(m[1]!).toString(16), m[2]!);
      return clusterId === undefined ? "" : BigInt(clusterId).toString(16);
    };
    const clusterId = learnIds();
    assert.ok(clusterId !== "" && ids.size === 3, `member list: ${list().out}`);
    const step = (what: string, r: Run) => {
      // etcdctl's own JSON log lines carry times and a client UUID: keep only their "error".
      const err = r.err.replace(/^\{"level".*"error":"([^"]*)"\}$/gm, "log: $1");
      const line = `${what} -> exit ${r.code}\n${normalise(r.out, ids, clusterId)}${err.trim() === "" ? "" : `stderr: ${normalise(err, ids, clusterId)}`}`;
      log.push(line);
      return r;
    };
    const running = () => c.nodes.filter((n) => n.running);

    // 1. A learner.
    const spec = { name: "m4", clientPort: await freePort(), peerPort: await freePort() };
    // etcd refuses membership changes until the leader has been connected to a quorum
    // for a few seconds ("etcdserver: unhealthy cluster"): a fresh cluster waits.
    const add = await eventually("member add to be accepted", async () => {
      const r = ctl(bin, running(), ["member", "add", "m4", `--peer-urls=http://127.0.0.1:${spec.peerPort}`, "--learner"]);
      return r.code === 0 ? r : undefined;
    });
    const newId = /Member +([0-9a-f]+) added/.exec(add.out)?.[1];
    assert.ok(newId !== undefined, `member add: ${add.out} ${add.err}`);
    ids.set(newId, "m4");
    step("member add m4 --learner", { ...add, out: add.out.replace(/127\.0\.0\.1:\d+/g, "<addr>") });
    step("member list -w table (learner not started)", ctl(bin, running(), ["member", "list", "-w", "table"]));
    // 2. Started with --initial-cluster-state existing; promoted once it has caught up.
    const m4 = c.join(spec);
    await eventually("m4 to be promoted (it must catch up first)", async () => {
      const r = ctl(bin, running(), ["member", "promote", newId]);
      if (r.code !== 0) return undefined;
      step("member promote m4", r);
      return true;
    }, 120_000);
    await eventually("m4 to publish its client URLs", async () => (/"clientURLs":\["http/.test(list().out.split(`"name":"m4"`)[1] ?? "") ? true : undefined));
    step("member list -w table", ctl(bin, running(), ["member", "list", "-w", "table"]));
    // Which of m1..m3 the election picked is chance: only "one leader, not a learner" is compared here.
    const st = ctl(bin, running(), ["endpoint", "status", "-w", "table"]);
    assert.equal((st.out.match(/\| +true +\| +false +\|/g) ?? []).length, 1, st.out);
    step("endpoint status -w table", { ...st, out: st.out.replace(/\| +(true|false) +(\| +false +\|)/g, "| <leader?> $2") });
    // 3. Leadership to m4, from wherever it is.
    const moved = ctl(bin, running(), ["move-leader", newId]);
    step("move-leader m4", { ...moved, out: moved.out.replace(/from [0-9a-f]+ to/, "from <leader> to") });
    await eventually("m4 to lead", async () => ((await c.status(m4))?.leader === BigInt(`0x${newId}`) ? true : undefined));
    step("endpoint status -w table (m4 leads)", ctl(bin, running(), ["endpoint", "status", "-w", "table"]));
    // 4. Remove m1 (a follower now); it stops.
    const m1 = c.nodes[0]!;
    const m1Id = [...ids].find(([, n]) => n === "m1")![0];
    // Right after m4 joined, a member may not count it as connected for the whole health
    // interval yet and refuse with "etcdserver: unhealthy cluster" (etcd does too): retry that.
    const removed = await eventually("member remove m1 to be accepted", async () => {
      // Not through m1 itself: a member that applies its own removal may stop before
      // answering (etcd then says "etcdserver: server stopped", or not: a race).
      const r = ctl(bin, running().filter((n) => n !== m1), ["member", "remove", m1Id]);
      if (r.code !== 0 && r.err.includes("etcdserver: unhealthy cluster")) return undefined;
      return r;
    });
    step("member remove m1", removed);
    await eventually("m1 to exit after its removal", async () => (m1.running ? undefined : true), 60_000);
    step("member list -w table (after remove)", ctl(bin, running(), ["member", "list", "-w", "table"]));
    step("member remove m1 again", ctl(bin, running(), ["member", "remove", m1Id]));
    return log;
  } catch (e) {
    const peers = c.nodes.map((n) => `--- ${n.spec.name}\n${n.logTail(800).split("\n").filter((l) => /became (in)?active|unhealthy|leader/.test(l)).map((l) => l.slice(0, 240)).join("\n")}`).join("\n");
    throw new Error(`${impl}: ${e instanceof Error ? e.message : String(e)}\nsteps so far:\n${log.join("\n")}\n${peers}`);
  } finally {
    await c.dispose();
  }
}

const debian = debianEtcd();
const judge = etcdBinaries();
test("etcdctl 3.4 membership commands on a 3-member cluster: member add --learner, promote, list, endpoint status, move-leader, remove — same outcomes as etcd 3.6", { timeout: 600_000 }, async (t) => {
  if (!debian.ok || !judge.ok) {
    const why = !debian.ok ? debian.reason : judge.ok ? "" : judge.reason;
    if (isCI) throw new Error(`CI=true and ${why}`);
    t.skip(why);
    return;
  }
  const ver = spawnSync(debian.value.etcdctl, ["version"], { encoding: "utf8" }).stdout;
  assert.match(ver, /^etcdctl version: 3\.4\./);
  const theirs = await script("etcd", debian.value.etcdctl);
  const ours = await script("ours", debian.value.etcdctl);
  for (let i = 0; i < Math.max(theirs.length, ours.length); i++) assert.equal(ours[i], theirs[i], `step ${i + 1} (ours, then etcd 3.6)`);
  t.diagnostic(theirs.join("\n"));
});
