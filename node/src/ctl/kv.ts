// put, get, del, compaction — and the request builders txn reuses for its
// put/get/del lines (etcdctl parses those lines with the same commands).

import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";

import {
  DeleteRangeRequestSchema, KV, PutRequestSchema, RangeRequest_SortOrder, RangeRequest_SortTarget, RangeRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.js";
import type { DeleteRangeRequest, PutRequest, RangeRequest } from "../../gen/etcdserverpb/rpc_pb.js";
import { argBytes } from "./argv.js";
import { toRpcError } from "./client.js";
import { CtlError, Exit, badArgs, badFeature } from "./exit.js";
import type { Command, FlagDef, FlagSet } from "./flags.js";
import { newPrinter } from "./format.js";
import { goParseInt, GoNumError } from "./gofmt.js";
import { Session } from "./session.js";

const enc = argBytes;

/** clientv3.GetPrefixRangeEnd: the first key after every key with this prefix ("\0" if none). */
export function prefixEnd(key: Uint8Array): Uint8Array {
  const end = Uint8Array.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}

/** The key/range_end pair for --prefix / --from-key, as clientv3's op options compute it. */
function keyRange(key: string, rangeEnd: string | undefined, prefix: boolean, fromKey: boolean): { key: Uint8Array; rangeEnd: Uint8Array } {
  let k = enc(key);
  let end = rangeEnd === undefined ? new Uint8Array() : enc(rangeEnd);
  if (prefix) {
    if (k.length === 0) { k = new Uint8Array([0]); end = new Uint8Array([0]); }
    else end = prefixEnd(k);
  }
  if (fromKey) {
    if (k.length === 0) k = new Uint8Array([0]);
    end = new Uint8Array([0]);
  }
  return { key: k, rangeEnd: end };
}

const rpcFail = (e: unknown): CtlError => new CtlError(Exit.Error, toRpcError(e).message);

// ---------------------------------------------------------------------------
// put

export const PUT_FLAGS: readonly FlagDef[] = [
  { name: "lease", kind: "string", def: "0", usage: "lease ID (in hexadecimal) to attach to the key" },
  { name: "prev-kv", kind: "bool", def: "false", usage: "return the previous key-value pair before modification" },
  { name: "ignore-value", kind: "bool", def: "false", usage: "updates the key using its current value" },
  { name: "ignore-lease", kind: "bool", def: "false", usage: "updates the key using its current lease" },
];

const PUT_USAGE = "put command needs 1 argument and input from stdin or 2 arguments";

/** put's arguments → PutRequest; reads the value from stdin when it is not an argument. */
export async function buildPut(args: string[], f: FlagSet, readStdin: () => Promise<Buffer>): Promise<PutRequest> {
  if (args.length === 0) throw badArgs(PUT_USAGE);
  const key = args[0] as string;
  const ignoreValue = f.bool("ignore-value");
  if (ignoreValue && args.length > 1) throw badArgs("put command needs only 1 argument when 'ignore-value' is set");
  let value: Uint8Array = new Uint8Array();
  if (!ignoreValue) {
    if (args.length > 1) value = enc(args[1] as string);
    else {
      const all = await readStdin().catch(() => Buffer.alloc(0));
      if (all.length === 0) throw badArgs(PUT_USAGE);
      value = all;
    }
  }
  let lease: bigint;
  try {
    lease = goParseInt(f.string("lease"), 16);
  } catch (e) {
    throw badArgs(`bad lease ID (${(e as Error).message}), expecting ID in Hex`);
  }
  return create(PutRequestSchema, {
    key: enc(key), value, lease, prevKv: f.bool("prev-kv"), ignoreValue, ignoreLease: f.bool("ignore-lease"),
  });
}

// ---------------------------------------------------------------------------
// get

export const GET_FLAGS: readonly FlagDef[] = [
  { name: "consistency", kind: "string", def: "l", usage: "Linearizable(l) or Serializable(s)" },
  { name: "order", kind: "string", def: "", usage: "Order of results; ASCEND or DESCEND (ASCEND by default)" },
  { name: "sort-by", kind: "string", def: "", usage: "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION" },
  { name: "limit", kind: "int64", def: "0", usage: "Maximum number of results" },
  { name: "prefix", kind: "bool", def: "false", usage: "Get keys with matching prefix" },
  { name: "from-key", kind: "bool", def: "false", usage: "Get keys that are greater than or equal to the given key using byte compare" },
  { name: "rev", kind: "int64", def: "0", usage: "Specify the kv revision" },
  { name: "keys-only", kind: "bool", def: "false", usage: "Get only the keys" },
  { name: "count-only", kind: "bool", def: "false", usage: "Get only the count" },
  { name: "print-value-only", kind: "bool", def: "false", usage: `Only write values when using the "simple" output format` },
  // Not in etcdctl: the RangeRequest revision filters, exposed for completeness.
  { name: "min-mod-rev", kind: "int64", def: "0", usage: "Only keys modified at or after this revision" },
  { name: "max-mod-rev", kind: "int64", def: "0", usage: "Only keys modified at or before this revision" },
  { name: "min-create-rev", kind: "int64", def: "0", usage: "Only keys created at or after this revision" },
  { name: "max-create-rev", kind: "int64", def: "0", usage: "Only keys created at or before this revision" },
];

export function buildGet(args: string[], f: FlagSet): RangeRequest {
  if (args.length === 0) throw badArgs("get command needs one argument as key and an optional argument as range_end");
  const prefix = f.bool("prefix"), fromKey = f.bool("from-key");
  if (prefix && fromKey) throw badArgs("`--prefix` and `--from-key` cannot be set at the same time, choose one");
  if (f.bool("keys-only") && f.bool("count-only")) throw badArgs("`--keys-only` and `--count-only` cannot be set at the same time, choose one");
  const consistency = f.string("consistency");
  if (consistency !== "l" && consistency !== "s") throw badFeature(`unknown consistency flag ${JSON.stringify(consistency)}`);
  if (args.length > 1 && (prefix || fromKey)) throw badArgs("too many arguments, only accept one argument when `--prefix` or `--from-key` is set");

  let order = RangeRequest_SortOrder.NONE;
  switch (f.string("order").toUpperCase()) {
    case "ASCEND": order = RangeRequest_SortOrder.ASCEND; break;
    case "DESCEND": order = RangeRequest_SortOrder.DESCEND; break;
    case "": break;
    default: throw badFeature(`bad sort order ${f.string("order")}`);
  }
  let target = RangeRequest_SortTarget.KEY;
  switch (f.string("sort-by").toUpperCase()) {
    case "CREATE": target = RangeRequest_SortTarget.CREATE; break;
    case "KEY": target = RangeRequest_SortTarget.KEY; break;
    case "MODIFY": target = RangeRequest_SortTarget.MOD; break;
    case "VALUE": target = RangeRequest_SortTarget.VALUE; break;
    case "VERSION": target = RangeRequest_SortTarget.VERSION; break;
    case "": break;
    default: throw badFeature(`bad sort target ${f.string("sort-by")}`);
  }
  // clientv3.WithSort: results already come sorted by key ascending, so that order is sent as NONE.
  if (target === RangeRequest_SortTarget.KEY && order === RangeRequest_SortOrder.ASCEND) order = RangeRequest_SortOrder.NONE;

  const rev = f.int("rev");
  const init: MessageInitShape<typeof RangeRequestSchema> = {
    ...keyRange(args[0] as string, args[1], prefix, fromKey),
    limit: f.int("limit"),
    revision: rev > 0n ? rev : 0n,
    sortOrder: order,
    sortTarget: target,
    serializable: consistency === "s",
    keysOnly: f.bool("keys-only"),
    countOnly: f.bool("count-only"),
    minModRevision: f.int("min-mod-rev"),
    maxModRevision: f.int("max-mod-rev"),
    minCreateRevision: f.int("min-create-rev"),
    maxCreateRevision: f.int("max-create-rev"),
  };
  return create(RangeRequestSchema, init);
}

// ---------------------------------------------------------------------------
// del

export const DEL_FLAGS: readonly FlagDef[] = [
  { name: "prefix", kind: "bool", def: "false", usage: "delete keys with matching prefix" },
  { name: "prev-kv", kind: "bool", def: "false", usage: "return deleted key-value pairs" },
  { name: "from-key", kind: "bool", def: "false", usage: "delete keys that are greater than or equal to the given key using byte compare" },
];

export function buildDel(args: string[], f: FlagSet): DeleteRangeRequest {
  if (args.length === 0 || args.length > 2) throw badArgs("del command needs one argument as key and an optional argument as range_end");
  const prefix = f.bool("prefix"), fromKey = f.bool("from-key");
  if (prefix && fromKey) throw badArgs("`--prefix` and `--from-key` cannot be set at the same time, choose one");
  if (args.length > 1 && (prefix || fromKey)) throw badArgs("too many arguments, only accept one argument when `--prefix` or `--from-key` is set");
  return create(DeleteRangeRequestSchema, { ...keyRange(args[0] as string, args[1], prefix, fromKey), prevKv: f.bool("prev-kv") });
}

// ---------------------------------------------------------------------------
// commands

export const putCommand: Command = {
  name: "put",
  use: "put [options] <key> <value> (<value> can also be given from stdin)",
  short: "Puts the given key into the store",
  long: `
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
`,
  flags: PUT_FLAGS,
  run: async (inv) => {
    const s = new Session(inv);
    try {
      const req = await buildPut(s.args, s.flags, () => s.stdin.readAll());
      const kv = (await s.client()).service(KV);
      const resp = await kv.put(req, { timeoutMs: s.commandTimeoutMs }).catch((e) => { throw rpcFail(e); });
      s.display.put(resp);
    } finally {
      s.close();
    }
  },
};

export const getCommand: Command = {
  name: "get",
  use: "get [options] <key> [range_end]",
  short: "Gets the key or a range of keys",
  flags: GET_FLAGS,
  run: async (inv) => {
    const s = new Session(inv);
    try {
      const req = buildGet(s.args, s.flags);
      const kv = (await s.client()).service(KV);
      const resp = await kv.range(req, { timeoutMs: s.commandTimeoutMs }).catch((e) => { throw rpcFail(e); });
      const format = s.flags.string("write-out");
      if (s.flags.bool("count-only") && format !== "fields") throw badArgs("--count-only is only for `--write-out=fields`");
      let display = s.display;
      if (s.flags.bool("print-value-only")) {
        if (format !== "simple") throw badArgs("print-value-only is only for `--write-out=simple`");
        display = newPrinter("simple", { hex: s.flags.bool("hex"), valueOnly: true }, s.sink) ?? display;
      }
      display.get(resp);
    } finally {
      s.close();
    }
  },
};

export const delCommand: Command = {
  name: "del",
  use: "del [options] <key> [range_end]",
  short: "Removes the specified key or range of keys [key, range_end)",
  flags: DEL_FLAGS,
  run: async (inv) => {
    const s = new Session(inv);
    try {
      const req = buildDel(s.args, s.flags);
      const kv = (await s.client()).service(KV);
      const resp = await kv.deleteRange(req, { timeoutMs: s.commandTimeoutMs }).catch((e) => { throw rpcFail(e); });
      s.display.del(resp);
    } finally {
      s.close();
    }
  },
};

export const compactionCommand: Command = {
  name: "compaction",
  use: "compaction [options] <revision>",
  short: "Compacts the event history in etcd",
  flags: [{ name: "physical", kind: "bool", def: "false", usage: "'true' to wait for compaction to physically remove all old revisions" }],
  run: async (inv) => {
    const s = new Session(inv);
    try {
      if (s.args.length !== 1) throw badArgs("compaction command needs 1 argument");
      let rev: bigint;
      try {
        rev = goParseInt(s.args[0] as string, 10);
      } catch (e) {
        throw new CtlError(Exit.Error, e instanceof GoNumError ? e.message : String(e));
      }
      const kv = (await s.client()).service(KV);
      await kv.compact({ revision: rev, physical: s.flags.bool("physical") }, { timeoutMs: s.commandTimeoutMs })
        .catch((e) => { throw rpcFail(e); });
      s.sink.out(`compacted revision ${rev}\n`);
    } finally {
      s.close();
    }
  },
};
