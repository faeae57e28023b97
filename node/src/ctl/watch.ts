// watch: streams events for a key or range, like etcdctl (and its Go client):
// a watch survives a broken connection by resuming after the last revision it
// saw; a watch the server cancels (compacted revision, ...) ends the command
// with "watch is canceled by the server". With -i, watch/progress requests are
// read from stdin and share one stream.
//
// After "--", a command to run for every event, with ETCD_WATCH_* variables
// describing it.

import { spawnSync } from "node:child_process";

import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";

import { Watch, WatchCreateRequestSchema, WatchRequestSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import type { WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType } from "../../gen/mvccpb/kv_pb.js";
import { argBytes } from "./argv.js";
import { RpcError, sleep, toRpcError } from "./client.js";
import type { BidiStream, EtcdClient } from "./client.js";
import { CtlError, Exit, badArgs } from "./exit.js";
import { CommandTree, FlagError } from "./flags.js";
import type { Command, FlagDef, FlagSet } from "./flags.js";
import { goQuote } from "./gofmt.js";
import { prefixEnd } from "./kv.js";
import { EOFError, Session } from "./session.js";
import { argify } from "./txn.js";

const WATCH_FLAGS: readonly FlagDef[] = [
  { name: "interactive", short: "i", kind: "bool", def: "false", usage: "Interactive mode" },
  { name: "prefix", kind: "bool", def: "false", usage: "Watch on a prefix if prefix is set" },
  { name: "rev", kind: "int64", def: "0", usage: "Revision to start watching" },
  { name: "prev-kv", kind: "bool", def: "false", usage: "get the previous key-value pair before the event happens" },
  { name: "progress-notify", kind: "bool", def: "false", usage: "get periodic watch progress notification from server" },
];

const errBadArgsNum = "bad number of arguments";
const errConflictEnv = "bad number of arguments (found conflicting environment key)";
const errSeparator = "bad number of arguments (found separator --, but no commands)";

type CreateInit = MessageInitShape<typeof WatchCreateRequestSchema>;
type WatchStream = BidiStream<MessageInitShape<typeof WatchRequestSchema>, WatchResponse>;

/** getWatchChan's checks and clientv3's op options: positionals + flags → a create request. */
function createRequest(args: string[], f: FlagSet): CreateInit {
  if (args.length < 1) throw new Error(errBadArgsNum);
  const prefix = f.bool("prefix");
  let key: Uint8Array = argBytes(args[0] as string);
  let rangeEnd: Uint8Array = new Uint8Array();
  if (args.length === 2) {
    if (prefix) throw new Error("`range_end` and `--prefix` are mutually exclusive");
    rangeEnd = argBytes(args[1] as string);
  }
  if (prefix) {
    if (key.length === 0) { key = new Uint8Array([0]); rangeEnd = new Uint8Array([0]); }
    else rangeEnd = prefixEnd(key);
  }
  const rev = f.int("rev");
  return { key, rangeEnd, startRevision: rev, prevKv: f.bool("prev-kv"), progressNotify: f.bool("progress-notify") };
}

/** WatchResponse.Err() of the Go client, for a canceled watch. */
function cancelError(r: WatchResponse): string {
  if (r.compactRevision !== 0n) return "etcdserver: mvcc: required revision has been compacted";
  if (r.cancelReason !== "") {
    const e = toRpcError({ code: 9, details: r.cancelReason });
    return e.message;
  }
  return "etcdserver: mvcc: required revision is a future revision";
}

interface Watcher {
  readonly req: CreateInit;
  /** Highest revision delivered; a resumed watch starts after it. */
  lastRev: bigint;
  id?: bigint;
  deliver(r: WatchResponse): void;
  /** The watch is over: canceled by the server (with its response) or closed by an error. */
  close(r: WatchResponse | undefined, err: string): void;
}

/**
 * All watches of a command on one gRPC stream (as the Go client shares one per
 * context). Reconnects and re-creates live watches after a stream failure.
 */
class WatchMux {
  private stream: WatchStream | undefined;
  private readonly live: Watcher[] = [];
  private readonly pending: Watcher[] = [];
  private closed = false;

  /** onFatal: a watch's output failed (e.g. unsupported format); the command must end with this error. */
  constructor(private readonly client: EtcdClient, private readonly onFatal: (err: unknown) => void) {}

  async add(w: Watcher): Promise<void> {
    this.live.push(w);
    const st = await this.ensure();
    this.pending.push(w);
    st.send({ requestUnion: { case: "createRequest", value: create(WatchCreateRequestSchema, w.req) } });
  }

  async requestProgress(): Promise<void> {
    const st = await this.ensure();
    st.send({ requestUnion: { case: "progressRequest", value: {} } });
  }

  close(): void {
    this.closed = true;
    this.stream?.cancel();
  }

  private opening: Promise<WatchStream> | undefined;

  /** The open stream, opening one if needed (concurrent callers share the attempt). */
  private async ensure(): Promise<WatchStream> {
    if (this.stream) return this.stream;
    this.opening ??= this.client.service(Watch).watch({ metadata: { hasleader: "true" } }).then((st) => {
      this.stream = st;
      void this.pump(st);
      return st;
    }).finally(() => { this.opening = undefined; });
    return this.opening;
  }

  private async pump(st: WatchStream): Promise<void> {
    let failure: RpcError | undefined;
    try {
      for await (const r of st) {
        try {
          this.onResponse(r);
        } catch (e) {
          this.onFatal(e);
          return;
        }
      }
    } catch (e) {
      failure = toRpcError(e);
    }
    if (this.closed || this.stream !== st) return;
    this.stream = undefined;
    this.pending.length = 0;
    const etcdError = failure && failure.message === failure.details && failure.details !== "";
    if (etcdError) {
      // etcd ended the stream (e.g. "etcdserver: no leader"): the watches are over.
      for (const w of this.live.splice(0)) w.close(undefined, failure?.message ?? "");
      return;
    }
    // Connection trouble: resume every live watch after what it has seen.
    await sleep(500);
    const again = this.live.splice(0);
    for (const w of again) {
      if (w.lastRev > 0n) w.req.startRevision = w.lastRev + 1n;
      w.id = undefined;
      await this.add(w).catch(() => undefined);
    }
  }

  private onResponse(r: WatchResponse): void {
    if (r.created) {
      const w = this.pending.shift();
      if (w) w.id = r.watchId;
      if (w && r.canceled) this.cancel(w, r);
      return;
    }
    const w = this.live.find((x) => x.id === r.watchId);
    if (!w) {
      // A progress response for the whole stream (watch ID -1): every watch hears it.
      if (r.events.length === 0 && !r.canceled) for (const x of this.live) x.deliver(r);
      return;
    }
    if (r.canceled) { this.cancel(w, r); return; }
    if (r.header && r.header.revision > w.lastRev && r.events.length > 0) w.lastRev = r.header.revision;
    w.deliver(r);
  }

  private cancel(w: Watcher, r: WatchResponse): void {
    const i = this.live.indexOf(w);
    if (i >= 0) this.live.splice(i, 1);
    w.close(r, cancelError(r));
  }
}

/** A progress notification as clientv3's IsProgressNotify defines it. */
function isProgressNotify(r: WatchResponse): boolean {
  return r.events.length === 0 && !r.canceled && !r.created && r.compactRevision === 0n && (r.header?.revision ?? 0n) !== 0n;
}

/** Runs `cmd args...` once per event, as etcdctl does after "--". */
function runForEvents(execArgs: string[], r: WatchResponse): void {
  const [file, ...rest] = execArgs;
  if (file === undefined) return;
  for (const ev of r.events) {
    const env = {
      ...process.env,
      ETCD_WATCH_REVISION: String(r.header?.revision ?? 0n),
      ETCD_WATCH_EVENT_TYPE: goQuote(Event_EventType[ev.type] ?? String(ev.type)),
      ETCD_WATCH_KEY: goQuote(ev.kv?.key ?? new Uint8Array()),
      ETCD_WATCH_VALUE: goQuote(ev.kv?.value ?? new Uint8Array()),
    };
    const res = spawnSync(file, rest, { env, stdio: "inherit" });
    let err: string | undefined;
    if (res.error) {
      err = (res.error as NodeJS.ErrnoException).code === "ENOENT"
        ? `exec: ${goQuote(file)}: executable file not found in $PATH` : res.error.message;
    } else if (res.status !== 0) {
      err = res.signal ? `signal: ${res.signal}` : `exit status ${res.status}`;
    }
    if (err !== undefined) {
      process.stderr.write(`command [${execArgs.map((a) => goQuote(a)).join(" ")}] error (${err})\n`);
      throw new CtlError(Exit.Error, "", true);
    }
  }
}

function makeWatcher(s: Session, req: CreateInit, execArgs: string[], onClose: (err: string) => void): Watcher {
  return {
    req,
    lastRev: 0n,
    deliver: (r) => {
      if (isProgressNotify(r)) s.sink.out(`progress notify: ${r.header?.revision ?? 0n}\n`);
      s.display.watch(r);
      runForEvents(execArgs, r);
    },
    close: (r, err) => {
      s.sink.err(`watch was canceled (${err})\n`);
      if (r) s.display.watch(r);
      onClose(err);
    },
  };
}

/** Splits positionals around "--" and applies ETCDCTL_WATCH_KEY/RANGE_END (parseWatchArgs). */
function splitWatchArgs(args: string[], argsLenAtDash: number, envKey: string, envRange: string): { watchArgs: string[]; execArgs: string[] } {
  const execExist = argsLenAtDash >= 0;
  let watchArgs = execExist ? args.slice(0, argsLenAtDash) : [...args];
  const execArgs = execExist ? args.slice(argsLenAtDash) : [];
  if (execExist && execArgs.length === 0) throw badArgs(errSeparator);
  if (!execExist && watchArgs.length < 1 && envKey === "") throw badArgs(errBadArgsNum);
  if (envKey !== "" && watchArgs.length > 0) throw badArgs(errConflictEnv);
  if (envKey !== "") watchArgs = envRange !== "" ? [envKey, envRange] : [envKey];
  return { watchArgs, execArgs };
}

/** The flags of one interactive `watch ...` line. */
const lineTree = new CommandTree({ name: "watch", use: "watch", short: "", flags: WATCH_FLAGS });

async function interactive(s: Session, client: EtcdClient, envKey: string, envRange: string): Promise<void> {
  let fatal: (e: unknown) => void = () => {};
  const fatalP = new Promise<never>((_, reject) => { fatal = reject; });
  const mux = new WatchMux(client, (e) => fatal(e));
  try {
    for (;;) {
      let raw: string;
      try {
        raw = await Promise.race([s.stdin.readLine(), fatalP]);
      } catch (e) {
        if (e instanceof EOFError) throw new CtlError(Exit.InvalidInput, "Error reading watch request line: EOF");
        throw e;
      }
      const l = raw.replace(/\n$/, "");
      const words = argify(l);
      if (words.length < 1) { s.sink.err(`Invalid command: ${l} (watch and progress supported)\n`); continue; }
      if (words[0] === "progress") {
        await mux.requestProgress().catch((e) => { throw new CtlError(Exit.Error, toRpcError(e).message); });
        continue;
      }
      if (words[0] !== "watch") { s.sink.err(`Invalid command ${l} (only support watch)\n`); continue; }
      if (words.length < 2 && envKey === "") { s.sink.err(`Invalid command ${l} (command type or key is not provided)\n`); continue; }
      let inv;
      try {
        inv = lineTree.parse(lineTree.root, words.slice(1));
      } catch (e) {
        if (e instanceof FlagError) throw badArgs(e.message);
        throw e;
      }
      const { watchArgs, execArgs } = splitWatchArgs(inv.args, inv.argsLenAtDash, envKey, envRange);
      let req: CreateInit;
      try {
        req = createRequest(watchArgs, inv.flags);
      } catch (e) {
        s.sink.err(`Invalid command ${l} (${(e as Error).message})\n`);
        continue;
      }
      await mux.add(makeWatcher(s, req, execArgs, () => {}));
    }
  } finally {
    mux.close();
  }
}

export const watchCommand: Command = {
  name: "watch",
  use: "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
  short: "Watches events stream on keys or prefixes",
  flags: WATCH_FLAGS,
  run: async (inv) => {
    const s = new Session(inv);
    try {
      const envKey = process.env["ETCDCTL_WATCH_KEY"] ?? "";
      const envRange = process.env["ETCDCTL_WATCH_RANGE_END"] ?? "";
      if (envKey === "" && envRange !== "") throw badArgs(`ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=${goQuote(envRange)}`);
      if (s.flags.bool("interactive")) {
        const client = await s.client();
        await interactive(s, client, envKey, envRange);
        return;
      }
      const { watchArgs, execArgs } = splitWatchArgs(s.args, inv.argsLenAtDash, envKey, envRange);
      const client = await s.client();
      let req: CreateInit;
      try {
        req = createRequest(watchArgs, s.flags);
      } catch (e) {
        throw badArgs((e as Error).message);
      }
      let failed: unknown;
      let done: () => void = () => {};
      const finished = new Promise<void>((resolve) => { done = resolve; });
      const mux = new WatchMux(client, (e) => { failed = e; done(); });
      mux.add(makeWatcher(s, req, execArgs, () => done()))
        .catch((e) => { failed = new CtlError(Exit.Error, toRpcError(e).message); done(); });
      await finished;
      mux.close();
      if (failed !== undefined) throw failed;
      throw new CtlError(Exit.Interrupted, "watch is canceled by the server");
    } finally {
      s.close();
    }
  },
};
