// txn: reads compares, success ops and failure ops from stdin (one per line,
// each list ended by an empty line) with etcdctl's grammar:
//
//   compares:  <target>("<key>") <op> "<value>"
//              target: ver|version, c|create, m|mod (decimal), val|value,
//                      lease (hex ID); op: = != > <
//   requests:  put/get/del lines, with the same arguments and flags as the
//              commands of that name (quoted words as in a shell).

import { create } from "@bufbuild/protobuf";

import {
  Compare_CompareResult, Compare_CompareTarget, CompareSchema, KV, RequestOpSchema, TxnRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.js";
import type { Compare, RequestOp } from "../../gen/etcdserverpb/rpc_pb.js";
import { toRpcError } from "./client.js";
import { CtlError, Exit, badArgs } from "./exit.js";
import { CommandTree, FlagError, UnknownCommandError } from "./flags.js";
import type { Command } from "./flags.js";
import { goParseInt, goQuote, goUnquotePrefix } from "./gofmt.js";
import { buildDel, buildGet, buildPut, DEL_FLAGS, GET_FLAGS, PUT_FLAGS } from "./kv.js";
import { EOFError, Session } from "./session.js";
import type { LineReader } from "./session.js";

const invalidInput = (msg: string): CtlError => new CtlError(Exit.InvalidInput, msg);

/** Go's strings.TrimSpace. */
const trimSpace = (s: string): string => s.replace(/^[\s\u0085]+|[\s\u0085]+$/gu, "");

/**
 * etcdctl's argify: splits a line into words; "double quoted" words are Go
 * string literals, 'single quoted' words are taken literally.
 */
export function argify(line: string): string[] {
  const re = /"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\t\n\v\f\r ][^\t\n\v\f\r ]*[^'"\t\n\v\f\r ]?/g;
  const words = line.match(re) ?? [];
  return words.map((w) => {
    if (w.startsWith("'")) return w.slice(1, -1);
    if (w.startsWith('"')) {
      const u = goUnquotePrefix(w);
      if (!u) throw invalidInput("expected quoted string");
      return u.value;
    }
    return w;
  });
}

/**
 * fmt.Sscanf(s, "%q) %s %q"): the number of items scanned and their values.
 * Verbs skip leading blanks; a blank in the format needs at least one in the input.
 */
function scanCompare(s: string): { n: number; key: string; op: string; val: string } {
  const r = { n: 0, key: "", op: "", val: "" };
  let i = 0;
  const skipBlanks = (): number => { const st = i; while (s[i] === " " || s[i] === "\t") i++; return i - st; };
  const quoted = (): string | undefined => {
    skipBlanks();
    const u = goUnquotePrefix(s.slice(i));
    if (!u) return undefined;
    i += u.used;
    return u.value;
  };
  const key = quoted();
  if (key === undefined) return r;
  r.key = key; r.n = 1;
  if (s[i] !== ")") return r;
  i++;
  if (skipBlanks() === 0) return r;
  const m = /^[^\s]+/.exec(s.slice(i));
  if (!m) return r;
  r.op = m[0]; r.n = 2; i += m[0].length;
  if (skipBlanks() === 0) return r;
  const val = quoted();
  if (val === undefined) return r;
  r.val = val; r.n = 3;
  return r;
}

export function parseCompare(line: string): Compare {
  const paren = line.indexOf("(");
  if (paren < 0) throw invalidInput(`malformed comparison: ${line}`);
  const target = line.slice(0, paren);
  const { n, key, op, val } = scanCompare(line.slice(paren + 1));
  if (n !== 3) throw invalidInput(`malformed comparison: ${line}; got ${target}(${goQuote(key)}) ${op} ${goQuote(val)}`);

  const results: Record<string, Compare_CompareResult> = {
    "=": Compare_CompareResult.EQUAL, "!=": Compare_CompareResult.NOT_EQUAL,
    ">": Compare_CompareResult.GREATER, "<": Compare_CompareResult.LESS,
  };
  const num = (base: number): bigint => {
    try {
      return goParseInt(val, base);
    } catch {
      throw invalidInput(`invalid txn compare request: ${line}`);
    }
  };
  let cmp: Compare;
  const k = Buffer.from(key, "utf8");
  switch (target) {
    case "ver": case "version":
      cmp = create(CompareSchema, { key: k, target: Compare_CompareTarget.VERSION, targetUnion: { case: "version", value: num(10) } });
      break;
    case "c": case "create":
      cmp = create(CompareSchema, { key: k, target: Compare_CompareTarget.CREATE, targetUnion: { case: "createRevision", value: num(10) } });
      break;
    case "m": case "mod":
      cmp = create(CompareSchema, { key: k, target: Compare_CompareTarget.MOD, targetUnion: { case: "modRevision", value: num(10) } });
      break;
    case "val": case "value":
      cmp = create(CompareSchema, { key: k, target: Compare_CompareTarget.VALUE, targetUnion: { case: "value", value: Buffer.from(val, "utf8") } });
      break;
    case "lease":
      cmp = create(CompareSchema, { key: k, target: Compare_CompareTarget.LEASE, targetUnion: { case: "lease", value: num(16) } });
      break;
    default:
      throw invalidInput(`malformed comparison: ${line} (unknown target ${target})`);
  }
  const result = results[op];
  if (result === undefined) throw invalidInput(`malformed comparison: ${line} (unknown result op ${op})`);
  cmp.result = result;
  return cmp;
}

/** The put/get/del grammar of a request line: etcdctl runs those commands' parsers on it. */
const requestTree = new CommandTree({
  name: "txn-request",
  use: "txn-request",
  short: "",
  children: [
    { name: "put", use: "put", short: "", flags: PUT_FLAGS },
    { name: "get", use: "get", short: "", flags: GET_FLAGS },
    { name: "del", use: "del", short: "", flags: DEL_FLAGS },
  ],
});

export async function parseRequest(line: string): Promise<RequestOp> {
  const words = argify(line);
  if (words.length < 2) throw invalidInput(`invalid txn compare request: ${line}`);
  let cmd: Command;
  let inv;
  try {
    const found = requestTree.find(words);
    cmd = found.cmd;
    inv = requestTree.parse(cmd, found.rest);
  } catch (e) {
    if (e instanceof FlagError || e instanceof UnknownCommandError) throw invalidInput(`invalid txn request: ${line}`);
    throw e;
  }
  if (inv.flags.bool("help") || cmd === requestTree.root) throw invalidInput(`invalid txn request: ${line}`);
  switch (cmd.name) {
    case "put": {
      // The value cannot come from stdin here: the txn itself is being read from it.
      const req = await buildPut(inv.args, inv.flags, async () => Buffer.alloc(0));
      return create(RequestOpSchema, { request: { case: "requestPut", value: req } });
    }
    case "get":
      return create(RequestOpSchema, { request: { case: "requestRange", value: buildGet(inv.args, inv.flags) } });
    default:
      return create(RequestOpSchema, { request: { case: "requestDeleteRange", value: buildDel(inv.args, inv.flags) } });
  }
}

/** One line with bufio's semantics: an unterminated last line is io.EOF. */
async function readLine(r: LineReader): Promise<string> {
  try {
    return await r.readLine();
  } catch (e) {
    if (e instanceof EOFError) throw invalidInput("EOF");
    throw e;
  }
}

async function readList<T>(r: LineReader, parse: (line: string) => T | Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (;;) {
    const line = trimSpace(await readLine(r));
    if (line.length === 0) return out;
    out.push(await parse(line));
  }
}

export const txnCommand: Command = {
  name: "txn",
  use: "txn [options]",
  short: "Txn processes all the requests in one transaction",
  flags: [{ name: "interactive", short: "i", kind: "bool", def: "false", usage: "Input transaction in interactive mode" }],
  run: async (inv) => {
    const s = new Session(inv);
    try {
      if (s.args.length !== 0) throw badArgs("txn command does not accept argument");
      const client = await s.client();
      const interactive = s.flags.bool("interactive");
      const prompt = (p: string): void => { if (interactive) s.sink.out(p + "\n"); };
      prompt("compares:");
      const compare = await readList(s.stdin, parseCompare);
      prompt("success requests (get, put, del):");
      const success = await readList(s.stdin, parseRequest);
      prompt("failure requests (get, put, del):");
      const failure = await readList(s.stdin, parseRequest);
      const resp = await client.service(KV).txn(create(TxnRequestSchema, { compare, success, failure }))
        .catch((e) => { throw new CtlError(Exit.Error, toRpcError(e).message); });
      s.display.txn(resp);
    } finally {
      s.close();
    }
  },
};
