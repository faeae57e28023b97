// The bed's process kubelet as a process: `node dist/test/kube/kubelet/main.js <kubelet.json>`.
// Started (detached) by the bed (test/kube/bed.ts). SIGTERM stops every pod it runs, with each
// pod's grace period (at most 10 s), removes their network namespaces, and exits.

import { Kubelet, readConfig } from "./kubelet.js";

const file = process.argv[2];
if (file === undefined) {
  process.stderr.write("usage: main.js <kubelet.json>\n");
  process.exit(2);
}
const kubelet = new Kubelet(readConfig(file));
let stopping = false;
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    void kubelet.stop().finally(() => process.exit(0));
  });
}
kubelet.start().catch((err: unknown) => {
  process.stderr.write(`kubelet failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
