// kube-apiserver and kube-controller-manager on a 3-member cluster of real
// etcd 3.6 and on a 3-member cluster of etcd-ts (test/harness/cluster.ts,
// --etcd-servers lists all three), driven by kubectl through the same
// scenario (scenario.ts), which kills the leader member mid-way and restarts
// it. Real etcd is the oracle: a step that fails on ours but passes on etcd is
// our bug.
//
// K8S_TARGETS=etcd,ours (default) picks targets; ETCDTS_CLUSTER_SIZE changes
// the size (1 leaves out the member kill); K8S_ETCD_ENDPOINTS=url,... adds a
// target "external" (servers you started; no member is killed there).
// K8S_CONFIGMAPS sets the bulk count (default 2000).
// kube-apiserver's and kube-controller-manager's logs are kept in
// test/k8s/logs/<target>/ (git-ignored). The Kubernetes binaries come from `npm run tools`; missing ones fail the run.

import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { startCluster, type Cluster } from "../harness/cluster.js";
import { repoRoot } from "../harness/provision.js";
import { startControlPlane, type ControlPlane } from "./controlplane.js";
import { scenario, type Members } from "./scenario.js";
import { tool } from "./tools.js";

const targets = (process.env["K8S_TARGETS"] ?? "etcd,ours").split(",").map((s) => s.trim()).filter(Boolean);
const external = (process.env["K8S_ETCD_ENDPOINTS"] ?? "").split(",").map((s) => s.trim()).filter(Boolean);
if (external.length > 0) targets.push("external");
const configMaps = Number(process.env["K8S_CONFIGMAPS"] ?? "2000");

for (const target of targets) {
  describe(`kubectl scenario: kube-apiserver on ${target}`, { concurrency: 1 }, () => {
    let cluster: Cluster | undefined;
    let cp: ControlPlane | undefined;
    // Steps are created against a late-bound control plane.
    const deferred: { cp?: ControlPlane } = {};

    before(async () => {
      for (const t of ["kube-apiserver", "kube-controller-manager", "kubectl"] as const) tool(t);
      let endpoints: string[];
      if (target === "external") {
        endpoints = external;
      } else if (target === "etcd" || target === "ours") {
        if (target === "etcd") tool("etcd");
        cluster = await startCluster(target);
        endpoints = [...cluster.endpoints];
      } else {
        throw new Error(`K8S_TARGETS: unknown target ${target} (etcd, ours)`);
      }
      cp = await startControlPlane({ etcdServers: endpoints, keepLogsIn: join(repoRoot, "test", "k8s", "logs", target) });
      deferred.cp = cp;
    });

    after(async () => {
      await cp?.stop();
      await cluster?.dispose();
    });

    const proxy: ControlPlane = {
      get dir() { return need().dir; },
      get server() { return need().server; },
      get kubeconfig() { return need().kubeconfig; },
      get apiserverLog() { return need().apiserverLog; },
      get controllerManagerLog() { return need().controllerManagerLog; },
      api: (m, p, b) => need().api(m, p, b),
      apiserverLines: (re, max) => need().apiserverLines(re, max),
      stop: () => need().stop(),
    };
    function need(): ControlPlane {
      if (!deferred.cp) throw new Error("control plane did not start");
      return deferred.cp;
    }
    // The member kill needs a cluster this test started, of 3 or more.
    const members: Members = {
      get size() { return cluster?.members.length ?? 0; },
      async killLeader() {
        if (!cluster) throw new Error("no cluster started by this test");
        const leader = await cluster.leader();
        await leader.kill9();
        return leader.spec.name;
      },
      async restart(name: string) {
        const m = cluster?.members.find((x) => x.spec.name === name);
        if (!cluster || !m) throw new Error(`no member ${name}`);
        m.start();
        // Back when every member (the restarted one too) follows one leader,
        // and caught up when it has the revision the leader had then.
        const c = cluster;
        const leader = await c.leader(120_000).catch(() => undefined);
        if (!leader || c.members.some((x) => !x.running)) throw new Error(`${name} did not rejoin:\n${m.logTail(20)}`);
        const want = (await c.status(leader))?.header?.revision ?? 0n;
        const deadline = Date.now() + 60_000;
        for (;;) {
          const have = (await c.status(m))?.header?.revision ?? 0n;
          if (want > 0n && have >= want) break;
          if (Date.now() > deadline) throw new Error(`${name} did not catch up: revision ${have}, leader had ${want}\n${m.logTail(20)}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      },
    };
    for (const step of scenario(proxy, { configMaps, members: target === "external" ? undefined : members })) {
      it(step.name, async () => {
        const t0 = Date.now();
        try {
          await step.run();
        } finally {
          process.stderr.write(`[k8s ${target}] ${step.name}: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
        }
      });
    }
  });
}
