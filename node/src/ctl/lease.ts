// lease grant / revoke / timetolive / list / keep-alive. Lease IDs are
// written and read in hex, as etcdctl does.

import type { MessageInitShape } from "@bufbuild/protobuf";

import { Lease } from "../../gen/etcdserverpb/rpc_pb.js";
import type { LeaseKeepAliveRequestSchema, LeaseKeepAliveResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { toRpcError } from "./client.js";
import type { BidiStream, EtcdClient } from "./client.js";
import { CtlError, Exit, badArgs } from "./exit.js";
import type { Command } from "./flags.js";
import { goParseInt, hex64 } from "./gofmt.js";
import { Session } from "./session.js";

/** A lease ID argument: hex, as etcdctl prints them. */
export function leaseFromArg(arg: string): bigint {
  try {
    return goParseInt(arg, 16);
  } catch (e) {
    throw badArgs(`bad lease ID arg (${(e as Error).message}), expecting ID in Hex`);
  }
}

const rpcMessage = (e: unknown): string => toRpcError(e).message;

const grant: Command = {
  name: "grant",
  use: "grant <ttl>",
  short: "Creates leases",
  run: async (inv) => {
    const s = new Session(inv);
    try {
      if (s.args.length !== 1) throw badArgs("lease grant command needs TTL argument");
      let ttl: bigint;
      try {
        ttl = goParseInt(s.args[0] as string, 10);
      } catch (e) {
        throw badArgs(`bad TTL (${(e as Error).message})`);
      }
      const resp = await (await s.client()).service(Lease).leaseGrant({ TTL: ttl }, { timeoutMs: s.commandTimeoutMs })
        .catch((e) => { throw new CtlError(Exit.Error, `failed to grant lease (${rpcMessage(e)})`); });
      s.display.grant(resp);
    } finally {
      s.close();
    }
  },
};

const revoke: Command = {
  name: "revoke",
  use: "revoke <leaseID>",
  short: "Revokes leases",
  run: async (inv) => {
    const s = new Session(inv);
    try {
      if (s.args.length !== 1) throw badArgs("lease revoke command needs 1 argument");
      const id = leaseFromArg(s.args[0] as string);
      const resp = await (await s.client()).service(Lease).leaseRevoke({ ID: id }, { timeoutMs: s.commandTimeoutMs })
        .catch((e) => { throw new CtlError(Exit.Error, `failed to revoke lease (${rpcMessage(e)})`); });
      s.display.revoke(id, resp);
    } finally {
      s.close();
    }
  },
};

const timetolive: Command = {
  name: "timetolive",
  use: "timetolive <leaseID> [options]",
  short: "Get lease information",
  flags: [{ name: "keys", kind: "bool", def: "false", usage: "Get keys attached to this lease" }],
  run: async (inv) => {
    const s = new Session(inv);
    try {
      if (s.args.length !== 1) throw badArgs("lease timetolive command needs lease ID as argument");
      const client = await s.client();
      const keys = s.flags.bool("keys");
      const resp = await client.service(Lease).leaseTimeToLive({ ID: leaseFromArg(s.args[0] as string), keys })
        .catch((e) => { throw new CtlError(Exit.BadConnection, rpcMessage(e)); });
      s.display.timeToLive(resp, keys);
    } finally {
      s.close();
    }
  },
};

const list: Command = {
  name: "list",
  use: "list",
  short: "List all active leases",
  run: async (inv) => {
    const s = new Session(inv);
    try {
      const resp = await (await s.client()).service(Lease).leaseLeases({})
        .catch((e) => { throw new CtlError(Exit.BadConnection, rpcMessage(e)); });
      s.display.leases(resp);
    } finally {
      s.close();
    }
  },
};

type KeepAliveStream = BidiStream<MessageInitShape<typeof LeaseKeepAliveRequestSchema>, LeaseKeepAliveResponse>;

/** KeepAliveOnce: one request on a fresh stream; a lease that is gone is "not found". */
async function keepAliveOnce(client: EtcdClient, id: bigint): Promise<LeaseKeepAliveResponse> {
  const stream: KeepAliveStream = await client.service(Lease).leaseKeepAlive();
  try {
    stream.send({ ID: id });
    for await (const resp of stream) {
      if (resp.TTL <= 0n) throw new CtlError(Exit.BadConnection, "etcdserver: requested lease not found");
      return resp;
    }
    throw new CtlError(Exit.BadConnection, "rpc error: code = Canceled desc = stream closed");
  } catch (e) {
    if (e instanceof CtlError) throw e;
    throw new CtlError(Exit.BadConnection, rpcMessage(e));
  } finally {
    stream.cancel();
  }
}

/**
 * The Go client's keep-alive loop: renew now and then every TTL/3; the lease
 * is over when a response has TTL <= 0 or no response arrives before the last
 * granted TTL runs out (the first one may take dial-timeout + 1s). A broken
 * stream is reopened.
 */
async function keepAliveLoop(client: EtcdClient, id: bigint, firstTimeoutMs: number, onResp: (r: LeaseKeepAliveResponse) => void): Promise<void> {
  let deadline = Date.now() + firstTimeoutMs;
  let nextSend = 0;
  let stream: KeepAliveStream | undefined;
  let opening = false;
  let done = false;
  let finish: () => void = () => {};
  const finished = new Promise<void>((r) => { finish = r; });
  const end = (): void => { done = true; finish(); };

  const open = async (): Promise<void> => {
    opening = true;
    try {
      const st = await client.service(Lease).leaseKeepAlive();
      if (done) { st.cancel(); return; }
      stream = st;
      nextSend = 0;
      void (async () => {
        try {
          for await (const resp of st) {
            if (resp.TTL <= 0n) { end(); return; }
            const now = Date.now();
            nextSend = now + Number(resp.TTL) * 1000 / 3;
            deadline = now + Number(resp.TTL) * 1000;
            onResp(resp);
          }
        } catch {
          // fall through: reopen on the next tick
        }
        if (stream === st) stream = undefined;
      })();
    } catch {
      // not reachable yet; the next tick retries
    } finally {
      opening = false;
    }
  };

  const tick = (): void => {
    if (done) return;
    const now = Date.now();
    if (now >= deadline) { end(); return; }
    if (!stream) { if (!opening) void open(); return; }
    if (now >= nextSend) {
      nextSend = Infinity; // until the response schedules the next one
      try { stream.send({ ID: id }); } catch { stream = undefined; }
    }
  };
  const timer = setInterval(tick, 500);
  await open();
  tick();
  await finished;
  clearInterval(timer);
  (stream as KeepAliveStream | undefined)?.cancel();
}

const keepAlive: Command = {
  name: "keep-alive",
  use: "keep-alive [options] <leaseID>",
  short: "Keeps leases alive (renew)",
  flags: [{ name: "once", kind: "bool", def: "false", usage: "Resets the keep-alive time to its original value and exits immediately" }],
  run: async (inv) => {
    const s = new Session(inv);
    try {
      if (s.args.length !== 1) throw badArgs("lease keep-alive command needs lease ID as argument");
      const id = leaseFromArg(s.args[0] as string);
      const client = await s.client();
      if (s.flags.bool("once")) {
        s.display.keepAlive(await keepAliveOnce(client, id));
        return;
      }
      const firstTimeoutMs = s.flags.duration("dial-timeout") / 1e6 + 1000;
      await keepAliveLoop(client, id, firstTimeoutMs, (r) => s.display.keepAlive(r));
      if (s.flags.string("write-out") === "simple") s.sink.out(`lease ${hex64(id, 16)} expired or revoked.\n`);
    } finally {
      s.close();
    }
  },
};

export const leaseCommand: Command = {
  name: "lease",
  use: "lease <subcommand>",
  short: "Lease related commands",
  children: [grant, revoke, timetolive, list, keepAlive],
};
