// Desired objects: golden files pin the generated manifests (review changes as a diff;
// regenerate with UPDATE_GOLDEN=1 node test/run.mjs operator/test/desired), plus the
// properties every child must have whatever the spec.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as yaml from "js-yaml";
import { API_VERSION, ANNOTATION_INPUT_HASH } from "../src/api.js";
import type { EtcdCluster } from "../src/api.js";
import {
  canonicalJSON, clusterConfigMap, inputHashOf, ordinalOf, peerURL, podDisruptionBudget, quantityBytes, quorum, specChildren, statefulSet,
} from "../src/desired.js";
import type { KObject } from "../src/desired.js";
import { repoRoot } from "../../test/harness/provision.js";

const goldenDir = join(repoRoot, "operator", "testdata", "golden");
const build = { defaultRepository: "ghcr.io/etcd-ts/etcd-ts" };

function cluster(spec: Partial<EtcdCluster["spec"]> = {}, name = "demo"): EtcdCluster {
  return {
    apiVersion: API_VERSION, kind: "EtcdCluster",
    metadata: { name, namespace: "prod", uid: "0b5c3f4e-1111-2222-3333-444455556666", generation: 1 },
    spec: { size: 3, version: "0.1.0", storage: { size: "8Gi", storageClassName: "fast" }, ...spec },
  };
}

const cases: Record<string, () => KObject[]> = {
  "pvc-3-members": () => {
    const c = cluster();
    return [...specChildren(c), clusterConfigMap(c, [0, 1, 2].map((k) => ({ name: `demo-${k}`, peerURL: peerURL(c, k) })), "existing"), statefulSet(c, 3, build)];
  },
  "emptydir-with-overrides": () => {
    const c = cluster({
      size: 5, repository: "registry.example/etcd-ts", storage: { emptyDir: { medium: "Memory", sizeLimit: "1Gi" } },
      resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { memory: "1Gi" } },
      podTemplate: {
        metadata: { labels: { team: "storage" }, annotations: { "example.com/scrape": "true" } },
        spec: { nodeSelector: { disk: "ssd" }, tolerations: [{ key: "dedicated", operator: "Equal", value: "etcd", effect: "NoSchedule" }], priorityClassName: "system-cluster-critical", affinity: { nodeAffinity: {} } },
      },
      etcdOptions: ["--quota-backend-bytes=4294967296", "--auto-compaction-retention=1h"],
    }, "cache");
    return [...specChildren(c), clusterConfigMap(c, [{ name: "cache-0", peerURL: peerURL(c, 0) }], "new"), statefulSet(c, 1, build)];
  },
};

describe("golden manifests", () => {
  for (const [name, make] of Object.entries(cases)) {
    test(name, () => {
      const text = make().map((o) => yaml.dump(o, { sortKeys: true, lineWidth: 200 })).join("---\n");
      const file = join(goldenDir, `${name}.yaml`);
      if (process.env["UPDATE_GOLDEN"] === "1" || !existsSync(file)) {
        mkdirSync(goldenDir, { recursive: true });
        writeFileSync(file, text);
        if (process.env["UPDATE_GOLDEN"] !== "1") assert.fail(`golden file ${file} did not exist; written now, review and commit it`);
      }
      assert.equal(text, readFileSync(file, "utf8"), `generated ${name} differs from ${file}; if intended, regenerate with UPDATE_GOLDEN=1`);
    });
  }
});

describe("every child", () => {
  const c = cluster();
  const all = [...specChildren(c), statefulSet(c, 3, build), clusterConfigMap(c, [], "existing")];
  test("is owned by the EtcdCluster as its controller", () => {
    for (const o of all) {
      assert.deepEqual(o.metadata.ownerReferences, [{ apiVersion: API_VERSION, kind: "EtcdCluster", name: "demo", uid: c.metadata.uid, controller: true, blockOwnerDeletion: true }], o.kind);
      assert.equal(o.metadata.namespace, "prod");
    }
  });
  test("carries a hash of its own content, so equal input means no write", () => {
    for (const o of all) assert.match(inputHashOf(o) ?? "", /^[0-9a-f]{16}$/, o.kind);
    assert.equal(inputHashOf(statefulSet(c, 3, build)), inputHashOf(statefulSet(cluster(), 3, build)), "same input, same hash");
    assert.notEqual(inputHashOf(statefulSet(c, 3, build)), inputHashOf(statefulSet(c, 4, build)), "replicas are input");
    assert.notEqual(inputHashOf(statefulSet(c, 3, build)), inputHashOf(statefulSet(cluster({ version: "0.2.0" }), 3, build)), "version is input");
  });
  test("the hash ignores key order", () => {
    assert.equal(canonicalJSON({ b: 1, a: [{ d: 2, c: 3 }] }), canonicalJSON({ a: [{ c: 3, d: 2 }], b: 1 }));
    const s = statefulSet(c, 3, build);
    assert.ok(s.metadata.annotations?.[ANNOTATION_INPUT_HASH]);
  });
});

describe("quorum and the disruption budget", () => {
  for (const [size, q] of [[1, 1], [2, 2], [3, 2], [4, 3], [5, 3], [7, 4], [9, 5]] as const) {
    test(`size ${size}: minAvailable ${q}`, () => {
      assert.equal(quorum(size), q);
      assert.equal((podDisruptionBudget(cluster({ size }))["spec"] as { minAvailable: number }).minAvailable, q);
    });
  }
});

describe("ordinals", () => {
  const c = cluster();
  const table: [string, number | undefined][] = [
    ["demo-0", 0], ["demo-12", 12], ["demo-01", undefined], ["demo-", undefined], ["demox-1", undefined], ["other-1", undefined],
    ["http://demo-4.demo-members.prod.svc:2380", 4], ["https://demo-2.demo-members.prod.svc:2380", 2], ["http://10.0.0.1:2380", undefined],
  ];
  for (const [input, want] of table) test(`${input} → ${String(want)}`, () => assert.equal(ordinalOf(c, input), want));
});

describe("the StatefulSet", () => {
  test("runs the image's own command with operator-managed flags as ETCD_* env, user options as args", () => {
    const s = statefulSet(cluster({ etcdOptions: ["--snapshot-count=5000"] }), 3, build);
    const ctr = (s["spec"] as { template: { spec: { containers: { command: string[]; args?: string[]; env: { name: string; value?: string }[] }[] } } }).template.spec.containers[0];
    assert.ok(ctr);
    assert.deepEqual(ctr.command, ["node", "/app/dist/node/src/main.js"]);
    assert.deepEqual(ctr.args, ["--snapshot-count=5000"]);
    const env = Object.fromEntries(ctr.env.map((e) => [e.name, e.value]));
    assert.equal(env["ETCD_INITIAL_ADVERTISE_PEER_URLS"], "http://$(POD_NAME).demo-members.$(POD_NAMESPACE).svc:2380");
    assert.equal(env["ETCD_NAME"], "$(POD_NAME)");
  });
  test("user labels cannot override the selector labels", () => {
    const s = statefulSet(cluster({ podTemplate: { metadata: { labels: { "app.kubernetes.io/instance": "evil" } } } }), 3, build);
    const labels = (s["spec"] as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
    assert.equal(labels["app.kubernetes.io/instance"], "demo");
  });
});

describe("quantities (storage sizes)", () => {
  const table: [string | number, bigint | undefined][] = [
    ["1Gi", 1073741824n], ["1024Mi", 1073741824n], ["1G", 1000000000n], ["1.5Gi", 1610612736n], ["500M", 500000000n],
    [1073741824, 1073741824n], ["0.1", 1n], ["8Ti", 8n * 1024n ** 4n], ["1e9", undefined], ["lots", undefined], ["-1Gi", undefined],
  ];
  for (const [q, want] of table) test(`${q} → ${String(want)}`, () => assert.equal(quantityBytes(q), want));
});
