// member list, endpoint health, endpoint status.

import { Cluster, KV, Maintenance } from "../../gen/etcdserverpb/rpc_pb.js";
import { toRpcError } from "./client.js";
import type { EtcdClient } from "./client.js";
import { CtlError, Exit } from "./exit.js";
import type { Command } from "./flags.js";
import type { EpHealth, EpStatus } from "./format.js";
import { goDurationString } from "./gofmt.js";
import { Session } from "./session.js";

const memberList: Command = {
  name: "list",
  use: "list",
  short: "Lists all members in the cluster",
  long: `When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.
`,
  run: async (inv) => {
    const s = new Session(inv);
    try {
      const resp = await (await s.client()).service(Cluster).memberList({}, { timeoutMs: s.commandTimeoutMs })
        .catch((e) => { throw new CtlError(Exit.Error, toRpcError(e).message); });
      s.display.memberList(resp);
    } finally {
      s.close();
    }
  },
};

export const memberCommand: Command = {
  name: "member",
  use: "member <subcommand>",
  short: "Membership related commands",
  children: [memberList],
};

/** --endpoints, or with --cluster every client URL of every member (endpointsFromCluster). */
export async function endpointsFromCluster(s: Session, base?: EtcdClient): Promise<string[]> {
  if (!s.flags.bool("cluster")) return s.endpoints();
  const client = base ?? await s.client();
  const resp = await client.service(Cluster).memberList({}, { timeoutMs: s.commandTimeoutMs }).catch((e) => {
    throw new CtlError(Exit.Error, `failed to fetch endpoints from etcd cluster member list: ${toRpcError(e).message}`);
  });
  return resp.members.flatMap((m) => m.clientURLs);
}

/** One endpoint's health: a linearizable read of "health" (permission denied still counts as healthy). */
async function checkHealth(s: Session, ep: string): Promise<EpHealth> {
  let client;
  try {
    client = await s.client([ep]);
  } catch (e) {
    return { ep, health: false, took: "", error: (e as Error).message };
  }
  // Time the request, not the connection setup (clientv3 is connected by then);
  // both share the one --command-timeout.
  const deadline = Date.now() + s.commandTimeoutMs;
  await client.ready(s.commandTimeoutMs);
  const start = process.hrtime.bigint();
  let error = "";
  try {
    await client.service(KV).range({ key: Buffer.from("health") }, { timeoutMs: Math.max(0, deadline - Date.now()) });
  } catch (e) {
    const msg = toRpcError(e).message;
    if (msg !== "etcdserver: permission denied") error = msg;
  }
  const took = goDurationString(process.hrtime.bigint() - start);
  return { ep, health: error === "", took, error };
}

const health: Command = {
  name: "health",
  use: "health",
  short: "Checks the healthiness of endpoints specified in `--endpoints` flag",
  run: async (inv) => {
    const s = new Session(inv);
    try {
      s.configure();
      const eps = await endpointsFromCluster(s);
      const results = await Promise.all(eps.map((ep) => checkHealth(s, ep)));
      s.display.endpointHealth(results);
      if (results.some((h) => h.error !== "")) throw new CtlError(Exit.Error, "unhealthy cluster");
    } finally {
      s.close();
    }
  },
};

const status: Command = {
  name: "status",
  use: "status",
  short: "Prints out the status of endpoints specified in `--endpoints` flag",
  long: `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.
`,
  run: async (inv) => {
    const s = new Session(inv);
    try {
      const base = await s.client();
      const eps = await endpointsFromCluster(s, base);
      const list: EpStatus[] = [];
      let failed = false;
      for (const ep of eps) {
        try {
          const client = s.clientFor(base, ep);
          list.push({ ep, resp: await client.service(Maintenance).status({}, { timeoutMs: s.commandTimeoutMs }) });
        } catch (e) {
          failed = true;
          s.sink.err(`Failed to get the status of endpoint ${ep} (${e instanceof CtlError ? e.message : toRpcError(e).message})\n`);
        }
      }
      s.display.endpointStatus(list);
      if (failed) throw new CtlError(Exit.Error, "", true);
    } finally {
      s.close();
    }
  },
};

export const endpointCommand: Command = {
  name: "endpoint",
  use: "endpoint <subcommand>",
  short: "Endpoint related commands",
  persistentFlags: [{ name: "cluster", kind: "bool", def: "false", usage: "use all endpoints from the cluster member list" }],
  children: [health, status],
};
