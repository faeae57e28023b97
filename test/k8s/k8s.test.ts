// kube-apiserver and kube-controller-manager on real etcd 3.6 and on etcd-ts,
// driven by kubectl through the same scenario (scenario.ts). Real etcd is the
// oracle: a step that fails on ours but passes on etcd is our bug.
//
// K8S_TARGETS=etcd,ours (default) picks targets; K8S_ETCD_ENDPOINTS=url,...
// adds a target "external" (an already running server or cluster, e.g. a
// 3-member etcd-ts cluster). K8S_CONFIGMAPS sets the bulk count (default 2000).
// kube-apiserver's and kube-controller-manager's logs are kept in
// test/k8s/logs/<target>/ (git-ignored). The Kubernetes binaries come from `npm run tools`; missing ones fail the run.

import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { startMember, type Member } from "../harness/member.js";
import { repoRoot } from "../harness/provision.js";
import { startControlPlane, type ControlPlane } from "./controlplane.js";
import { scenario } from "./scenario.js";
import { tool, useEtcd36 } from "./tools.js";

const targets = (process.env["K8S_TARGETS"] ?? "etcd,ours").split(",").map((s) => s.trim()).filter(Boolean);
const external = (process.env["K8S_ETCD_ENDPOINTS"] ?? "").split(",").map((s) => s.trim()).filter(Boolean);
if (external.length > 0) targets.push("external");
const configMaps = Number(process.env["K8S_CONFIGMAPS"] ?? "2000");

for (const target of targets) {
  describe(`kubectl scenario: kube-apiserver on ${target}`, { concurrency: 1 }, () => {
    let member: Member | undefined;
    let cp: ControlPlane | undefined;
    // Steps are created against a late-bound control plane.
    const deferred: { cp?: ControlPlane } = {};

    before(async () => {
      for (const t of ["kube-apiserver", "kube-controller-manager", "kubectl"] as const) tool(t);
      let endpoints: string[];
      if (target === "external") {
        endpoints = external;
      } else if (target === "etcd" || target === "ours") {
        if (target === "etcd") useEtcd36();
        member = await startMember({ impl: target, name: "k8s" });
        endpoints = [member.clientUrl];
      } else {
        throw new Error(`K8S_TARGETS: unknown target ${target} (etcd, ours)`);
      }
      cp = await startControlPlane({ etcdServers: endpoints, keepLogsIn: join(repoRoot, "test", "k8s", "logs", target) });
      deferred.cp = cp;
    });

    after(async () => {
      await cp?.stop();
      await member?.dispose();
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
    for (const step of scenario(proxy, { configMaps })) {
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
