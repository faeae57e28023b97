// snapshot save, defrag, alarm list / disarm.

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";

import { create } from "@bufbuild/protobuf";

import { AlarmRequest_AlarmAction, AlarmResponseSchema, Maintenance } from "../../gen/etcdserverpb/rpc_pb.js";
import type { AlarmMember } from "../../gen/etcdserverpb/rpc_pb.js";
import { toRpcError } from "./client.js";
import { CtlError, Exit, badArgs } from "./exit.js";
import type { Command } from "./flags.js";
import { goPathError, humanizeBytes } from "./gofmt.js";
import { endpointsFromCluster } from "./cluster.js";
import { Session } from "./session.js";

// ---------------------------------------------------------------------------
// snapshot save

/** A one-line progress bar on stderr, redrawn at most every 100ms; only when stderr is a terminal. */
class Progress {
  private last = 0;
  private shown = false;
  constructor(private readonly enabled: boolean) {}

  update(received: number, remaining: bigint): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 100) return;
    this.last = now;
    const total = received + Number(remaining);
    const width = 30;
    const filled = total > 0 ? Math.min(width, Math.round((received / total) * width)) : 0;
    const bar = "=".repeat(Math.max(0, filled - 1)) + (filled > 0 ? ">" : "") + " ".repeat(width - filled);
    process.stderr.write(`\r[${bar}] ${humanizeBytes(BigInt(received))} / ${humanizeBytes(BigInt(total))}\u001b[K`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) process.stderr.write("\r\u001b[K");
  }
}

/** clientv3/snapshot Save: stream the backend into <path>.part, fsync, rename. */
async function saveSnapshot(s: Session, path: string): Promise<void> {
  const endpoints = s.endpoints();
  if (endpoints.length !== 1) {
    throw new CtlError(Exit.Interrupted, `snapshot must be requested to one selected node, not multiple [${endpoints.join(" ")}]`);
  }
  const client = await s.client();
  const part = path + ".part";
  let fd: number;
  try {
    fd = openSync(part, "w", 0o600);
  } catch (e) {
    throw new CtlError(Exit.Interrupted, `could not open ${part} (${goPathError("open", part, e)})`);
  }
  const progress = new Progress(process.stderr.isTTY === true);
  try {
    // Without an explicit --command-timeout a snapshot may take as long as it needs.
    const timeoutMs = s.flags.changed("command-timeout") ? s.commandTimeoutMs : undefined;
    const stream = await client.service(Maintenance).snapshot({}, timeoutMs === undefined ? {} : { timeoutMs });
    let received = 0;
    try {
      for await (const chunk of stream) {
        writeSync(fd, chunk.blob);
        received += chunk.blob.length;
        progress.update(received, chunk.remainingBytes);
      }
    } catch (e) {
      throw new CtlError(Exit.Interrupted, toRpcError(e).message);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    try {
      renameSync(part, path);
    } catch (e) {
      throw new CtlError(Exit.Interrupted, `could not rename ${part} to ${path} (${goPathError("rename", `${part} ${path}`, e)})`);
    }
  } finally {
    progress.done();
    if (fd >= 0) closeSync(fd);
    rmSync(part, { force: true });
  }
}

const snapshotSave: Command = {
  name: "save",
  use: "save <filename>",
  short: "Stores an etcd node backend snapshot to a given file",
  run: async (inv) => {
    const s = new Session(inv);
    try {
      if (s.args.length !== 1) throw badArgs("snapshot save expects one argument");
      const path = s.args[0] as string;
      await saveSnapshot(s, path);
      s.sink.out(`Snapshot saved at ${path}\n`);
    } finally {
      s.close();
    }
  },
};

export const snapshotCommand: Command = {
  name: "snapshot",
  use: "snapshot <subcommand>",
  short: "Manages etcd node snapshots",
  children: [snapshotSave],
};

// ---------------------------------------------------------------------------
// defrag

export const defragCommand: Command = {
  name: "defrag",
  use: "defrag",
  short: "Defragments the storage of the etcd members with given endpoints",
  flags: [
    { name: "cluster", kind: "bool", def: "false", usage: "use all endpoints from the cluster member list" },
    { name: "data-dir", kind: "string", def: "", usage: "Optional. If present, defragments a data directory not in use by etcd." },
  ],
  run: async (inv) => {
    const s = new Session(inv);
    try {
      if (s.flags.string("data-dir") !== "") throw new CtlError(Exit.Error, "offline defragmentation (--data-dir) is not supported");
      const base = await s.client();
      let failures = 0;
      for (const ep of await endpointsFromCluster(s, base)) {
        try {
          const client = s.clientFor(base, ep);
          await client.service(Maintenance).defragment({}, { timeoutMs: s.commandTimeoutMs });
          s.sink.out(`Finished defragmenting etcd member[${ep}]\n`);
        } catch (e) {
          failures++;
          s.sink.err(`Failed to defragment etcd member[${ep}] (${e instanceof CtlError ? e.message : toRpcError(e).message})\n`);
        }
      }
      if (failures > 0) throw new CtlError(Exit.Error, "", true);
    } finally {
      s.close();
    }
  },
};

// ---------------------------------------------------------------------------
// alarm

const alarmList: Command = {
  name: "list",
  use: "list",
  short: "Lists all alarms",
  run: async (inv) => {
    const s = new Session(inv);
    try {
      if (s.args.length !== 0) throw badArgs("alarm list command accepts no arguments");
      const resp = await (await s.client()).service(Maintenance).alarm({ action: AlarmRequest_AlarmAction.GET }, { timeoutMs: s.commandTimeoutMs })
        .catch((e) => { throw new CtlError(Exit.Error, toRpcError(e).message); });
      s.display.alarm(resp);
    } finally {
      s.close();
    }
  },
};

/** clientv3 AlarmDisarm of everything: list, then deactivate each alarm; the result lists what was disarmed. */
const alarmDisarm: Command = {
  name: "disarm",
  use: "disarm",
  short: "Disarms all alarms",
  run: async (inv) => {
    const s = new Session(inv);
    try {
      if (s.args.length !== 0) throw badArgs("alarm disarm command accepts no arguments");
      const m = (await s.client()).service(Maintenance);
      const opts = { timeoutMs: s.commandTimeoutMs };
      const fail = (e: unknown): never => { throw new CtlError(Exit.Error, toRpcError(e).message); };
      const list = await m.alarm({ action: AlarmRequest_AlarmAction.GET }, opts).catch(fail);
      const disarmed: AlarmMember[] = [];
      for (const a of list.alarms) {
        const r = await m.alarm({ action: AlarmRequest_AlarmAction.DEACTIVATE, memberID: a.memberID, alarm: a.alarm }, opts).catch(fail);
        disarmed.push(...r.alarms);
      }
      s.display.alarm(create(AlarmResponseSchema, { alarms: disarmed }));
    } finally {
      s.close();
    }
  },
};

export const alarmCommand: Command = {
  name: "alarm",
  use: "alarm <subcommand>",
  short: "Alarm related commands",
  children: [alarmDisarm, alarmList],
};
