// npm run bed:up / bed:down (see test/kube/bed.ts and test/kube/README.md).
//   node dist/test/kube/bed-main.js up [--etcd=ours|etcd]   prints KUBECONFIG=<path> last
//   node dist/test/kube/bed-main.js down
// State directory: $BED_DIR, default <repo>/.bed.

import { bedDown, bedUp, defaultBedDir, readState } from "./bed.js";
import type { BedEtcd } from "./bed.js";

const [cmd, ...rest] = process.argv.slice(2);
const dir = defaultBedDir();

if (cmd === "up") {
  const flag = rest.find((a) => a.startsWith("--etcd="));
  const etcd = flag === undefined ? undefined : (flag.slice("--etcd=".length) as BedEtcd);
  bedUp({ dir, etcd, say: (l) => console.log(l) }).then((bed) => {
    if (bed.alreadyUp) console.log(`the bed in ${dir} is already up (bed:down stops it)`);
    else console.log(`bed up on ${bed.state.etcd === "ours" ? "etcd-ts" : "etcd 3.6"}; logs in ${dir}/logs, pod logs in ${dir}/pods`);
    console.log(`KUBECONFIG=${bed.kubeconfig}`);
  }, (err: unknown) => {
    console.error(`bed:up failed: ${(err as Error).message}`);
    process.exit(1);
  });
} else if (cmd === "down") {
  const was = readState(dir) !== undefined;
  const done = bedDown(dir);
  for (const l of done) console.log(l);
  console.log(was ? `bed in ${dir} is down` : `no bed in ${dir}: nothing to do`);
} else {
  console.error("usage: bed-main.js up [--etcd=ours|etcd] | down");
  process.exit(2);
}
