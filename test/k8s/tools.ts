// Paths of the Kubernetes reference binaries built by `npm run tools`
// (tools/build.sh; pins in tools/versions.env). An environment variable wins,
// as in tools/env.sh. A missing binary is an error, never a skip: these
// suites exist to run the real software.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../harness/provision.js";

const toolsBin = (): string => process.env["ETCDTS_TOOLS_BIN"] || join(repoRoot, ".tools", "bin");

const table = {
  etcd: "ETCD36_BIN",
  etcdctl: "ETCDCTL36_BIN",
  "kube-apiserver": "KUBE_APISERVER_BIN",
  "kube-controller-manager": "KUBE_CONTROLLER_MANAGER_BIN",
  kubectl: "KUBECTL_BIN",
} as const;

export type Tool = keyof typeof table;

/** Absolute path of a reference binary; throws (with how to build it) when it is missing. */
export function tool(name: Tool): string {
  const p = process.env[table[name]] || join(toolsBin(), name);
  if (!existsSync(p)) {
    throw new Error(`MISSING ${name}: ${p} does not exist. Build the reference toolchain with \`npm run tools\` (or set ${table[name]}).`);
  }
  return p;
}

/** Points the shared harness (test/harness/provision.ts) at etcd 3.6 from the toolchain. */
export function useEtcd36(): void {
  process.env["ETCD_BIN"] = tool("etcd");
  process.env["ETCDCTL_BIN"] = tool("etcdctl");
}
