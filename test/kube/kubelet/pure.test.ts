// The bed kubelet's pure decisions: image → process, addresses and names, /etc/hosts, $(VAR)
// expansion, the launch script and restart rules. No machine, no API server.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../../harness/provision.js";
import {
  IMAGES, bedIndexOf, bedPrefix, bridgeAddress, bridgeName, expandVars, freeBedIndex, hostsFile, imageName, launchScript,
  mapContainer, netnsName, nextSlot, ownedBy, podAddress, restartDelayMs, shouldRestart, shq, vethName,
} from "./pure.js";

describe("images", () => {
  test("the repository's last path component names the image, whatever the registry, tag or digest", () => {
    assert.equal(imageName("ghcr.io/etcd-ts/etcd-ts:0.1.0"), "etcd-ts");
    assert.equal(imageName("registry.test:5000/x/etcd-ts-operator@sha256:abcd"), "etcd-ts-operator");
    assert.equal(imageName("etcd-ts"), "etcd-ts");
    assert.equal(imageName("localhost:5000/etcd-ts:v1@sha256:ff"), "etcd-ts");
  });

  test("Docker's rules: no command or args runs CMD; command replaces it; args alone replace CMD (no ENTRYPOINT)", () => {
    const member = mapContainer("ghcr.io/etcd-ts/etcd-ts:0.1.0");
    assert.ok(member.ok);
    assert.deepEqual(member.argv, ["node", "/app/dist/node/src/main.js"]);
    const op = mapContainer("ghcr.io/etcd-ts/etcd-ts-operator:0.1.0");
    assert.ok(op.ok);
    assert.deepEqual(op.argv, ["node", "/app/dist/operator/src/main.js"]);
    // The chart runs the operator from the member image by command.
    const chart = mapContainer("ghcr.io/etcd-ts/etcd-ts:0.1.0", ["node", "/app/dist/operator/src/main.js"], ["--leader-elect=true"]);
    assert.ok(chart.ok);
    assert.deepEqual(chart.argv, ["node", "/app/dist/operator/src/main.js", "--leader-elect=true"]);
    const args = mapContainer("etcd-ts", undefined, ["node", "/app/dist/node/src/main.js", "--name", "x"]);
    assert.ok(args.ok);
    assert.deepEqual(args.argv, ["node", "/app/dist/node/src/main.js", "--name", "x"]);
  });

  test("an image that is not ours is refused with the names that are", () => {
    const r = mapContainer("docker.io/library/busybox:1");
    assert.equal(r.ok, false);
    assert.match(r.ok ? "" : r.reason, /busybox:1 is not one of this checkout's images \(etcd-ts, etcd-ts-operator\)/);
  });

  test("the image environment, WORKDIR and USER are the Dockerfile's", () => {
    const df = readFileSync(join(repoRoot, "Dockerfile"), "utf8");
    assert.match(df, /ENV NODE_ENV=production \\\s*\n\s*ETCD_DATA_DIR=\/var\/lib\/etcd-ts\/data/);
    assert.match(df, /WORKDIR \/app\n/);
    assert.match(df, /USER 1000:1000/);
    for (const img of Object.values(IMAGES)) {
      assert.equal(img.env["NODE_ENV"], "production");
      assert.equal(img.env["ETCD_DATA_DIR"], "/var/lib/etcd-ts/data");
      assert.equal(img.workingDir, "/app");
      assert.deepEqual([img.uid, img.gid], [1000, 1000]);
    }
  });
});

describe("addresses and names", () => {
  test("a bed index is one /24 of 198.18.0.0/15", () => {
    assert.equal(bedPrefix(0), "198.18.0");
    assert.equal(bedPrefix(255), "198.18.255");
    assert.equal(bedPrefix(256), "198.19.0");
    assert.equal(bedPrefix(511), "198.19.255");
    assert.throws(() => bedPrefix(512), /out of range/);
    assert.throws(() => bedPrefix(-1), /out of range/);
    assert.equal(bridgeAddress(3), "198.18.3.1");
    assert.equal(podAddress(3, 2), "198.18.3.2");
    assert.equal(podAddress(300, 254), "198.19.44.254");
    assert.throws(() => podAddress(0, 1), /slot 1 out of range/);
    assert.throws(() => podAddress(0, 255), /slot 255 out of range/);
    for (const i of [0, 1, 255, 256, 511]) assert.equal(bedIndexOf(podAddress(i, 7)), i);
    assert.equal(bedIndexOf("10.0.0.1"), undefined);
    assert.equal(bedIndexOf("198.20.0.1"), undefined);
  });

  test("the lowest free bed index is taken", () => {
    assert.equal(freeBedIndex(new Set()), 0);
    assert.equal(freeBedIndex(new Set([0, 1, 3])), 2);
    assert.throws(() => freeBedIndex(new Set(Array.from({ length: 512 }, (_, i) => i))), /in use/);
  });

  test("pod slots go round-robin, skip used ones and wrap", () => {
    assert.equal(nextSlot(new Set(), 1), 2);
    assert.equal(nextSlot(new Set(), 2), 3);
    assert.equal(nextSlot(new Set([3, 4]), 2), 5);
    assert.equal(nextSlot(new Set(), 254), 2);
    assert.equal(nextSlot(new Set([2]), 254), 3);
    // A freed slot is not reused at once.
    assert.equal(nextSlot(new Set([5]), 6), 7);
    const all = new Set(Array.from({ length: 253 }, (_, i) => i + 2));
    assert.throws(() => nextSlot(all, 2), /no free pod address/);
    all.delete(100);
    assert.equal(nextSlot(all, 2), 100);
  });

  test("link and namespace names fit Linux's 15 characters and belong to exactly one bed", () => {
    assert.equal(bridgeName(511), "bed511");
    assert.equal(vethName(511, 254), "bed511v254");
    assert.equal(netnsName(511, 254), "bed511-254");
    assert.ok(vethName(511, 254).length <= 15);
    assert.ok(ownedBy(1, "bed1") && ownedBy(1, "bed1v2") && ownedBy(1, "bed1-2"));
    assert.ok(!ownedBy(1, "bed11") && !ownedBy(1, "bed11v2") && !ownedBy(1, "bed11-2") && !ownedBy(1, "etf123m1") && !ownedBy(1, "bed1x"));
  });
});

describe("/etc/hosts", () => {
  test("pod, headless per-pod names, ready endpoints, the first ready endpoint of a ClusterIP Service, and kubernetes", () => {
    const text = hostsFile({
      self: { ip: "198.18.0.3", hostname: "demo-1", subdomain: "demo-members", namespace: "apps" },
      apiserver: "198.18.0.1",
      services: [
        {
          namespace: "apps", name: "demo-members", headless: true, endpoints: [
            { ip: "198.18.0.3", hostname: "demo-1", ready: false, podName: "demo-1" },
            { ip: "198.18.0.2", hostname: "demo-0", ready: true, podName: "demo-0" },
          ],
        },
        {
          namespace: "apps", name: "demo", headless: false, endpoints: [
            { ip: "198.18.0.3", ready: true, podName: "demo-1" },
            { ip: "198.18.0.4", ready: true, podName: "demo-2" },
            { ip: "198.18.0.2", ready: false, podName: "demo-0" },
          ],
        },
        { namespace: "other", name: "empty", headless: false, endpoints: [{ ip: "198.18.0.9", ready: false }] },
        { namespace: "default", name: "kubernetes", headless: false, endpoints: [{ ip: "10.0.0.1", ready: true }] },
        { namespace: "etcd-ts-system", name: "op", headless: false, endpoints: [{ ip: "198.18.0.5", ready: true }] },
      ],
    });
    assert.equal(text, [
      "# Written by the etcd-ts bed kubelet (test/kube/kubelet); rewritten in place when endpoints change.",
      "127.0.0.1\tlocalhost",
      "::1\tlocalhost ip6-localhost ip6-loopback",
      "198.18.0.3\tdemo-1.demo-members.apps.svc.cluster.local demo-1",
      "198.18.0.1\tkubernetes.default.svc.cluster.local kubernetes.default.svc kubernetes.default",
      "198.18.0.3\tdemo.apps.svc.cluster.local demo.apps.svc demo.apps demo",
      "198.18.0.2\tdemo-0.demo-members.apps.svc.cluster.local demo-0.demo-members.apps.svc demo-0.demo-members.apps demo-0.demo-members",
      "198.18.0.3\tdemo-1.demo-members.apps.svc.cluster.local demo-1.demo-members.apps.svc demo-1.demo-members.apps demo-1.demo-members",
      "198.18.0.2\tdemo-members.apps.svc.cluster.local demo-members.apps.svc demo-members.apps demo-members",
      "198.18.0.5\top.etcd-ts-system.svc.cluster.local op.etcd-ts-system.svc op.etcd-ts-system",
      "",
    ].join("\n"));
  });

  test("a pod without a subdomain is its own name only", () => {
    const text = hostsFile({ self: { ip: "198.18.0.9", hostname: "op-abc", namespace: "default" }, apiserver: "198.18.0.1", services: [] });
    assert.match(text, /\n198\.18\.0\.9\top-abc\n/);
    assert.match(text, /\n198\.18\.0\.1\tkubernetes\.default\.svc\.cluster\.local kubernetes\.default\.svc kubernetes\.default kubernetes\n$/);
  });
});

describe("environment and launch", () => {
  test("$(VAR) expands defined variables, keeps unknown ones, and $$ escapes", () => {
    const env = new Map([["POD_NAME", "demo-0"], ["NS", "apps"]]);
    assert.equal(expandVars("$(POD_NAME).demo-members.$(NS).svc", env), "demo-0.demo-members.apps.svc");
    assert.equal(expandVars("$(MISSING)-x", env), "$(MISSING)-x");
    assert.equal(expandVars("$$(POD_NAME) $$ $", env), "$(POD_NAME) $ $");
    assert.equal(expandVars("$(unclosed", env), "$(unclosed");
    assert.equal(expandVars("plain", env), "plain");
  });

  test("shell quoting survives quotes, spaces and dollars", () => {
    assert.equal(shq("a b"), "'a b'");
    assert.equal(shq("it's $HOME"), `'it'\\''s $HOME'`);
  });

  test("the launch script mounts parents first, remounts read-only, and execs as the user with only the given environment", () => {
    const script = launchScript({
      mounts: [
        { source: "/bed/volumes/pvc-1", target: "/var/lib/etcd-ts", readOnly: false },
        { source: "/repo", target: "/app", readOnly: true },
        { source: "/bed/pods/x/cfg", target: "/app/cfg dir", readOnly: false },
      ],
      workingDir: "/app", uid: 1000, gid: 1000,
      env: new Map([["PATH", "/usr/bin"], ["X", "a'b"]]),
      argv: ["node", "/app/dist/node/src/main.js"],
    });
    assert.equal(script, [
      "set -e",
      "mount --bind '/repo' '/app'",
      "mount -o remount,bind,ro '/app'",
      "mount --bind '/bed/pods/x/cfg' '/app/cfg dir'",
      "mount --bind '/bed/volumes/pvc-1' '/var/lib/etcd-ts'",
      "cd '/app'",
      `exec setpriv --reuid=1000 --regid=1000 --clear-groups -- env -i 'PATH=/usr/bin' 'X=a'\\''b' 'node' '/app/dist/node/src/main.js'`,
      "",
    ].join("\n"));
  });

  test("restarts: back-off 10 s doubling to 5 min; restartPolicy decides", () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 20].map(restartDelayMs), [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
    assert.equal(shouldRestart(undefined, 0), true);
    assert.equal(shouldRestart("Always", 0), true);
    assert.equal(shouldRestart("OnFailure", 0), false);
    assert.equal(shouldRestart("OnFailure", 1), true);
    assert.equal(shouldRestart("Never", 137), false);
  });
});
