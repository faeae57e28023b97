// Command tree, flag parsing and help text, with the semantics etcdctl gets
// from spf13/cobra and spf13/pflag:
//
// - The command is found by walking leading words, skipping flags (and the
//   value of a flag that takes one), so global flags may come before or after
//   the command words.
// - Flags and positionals may be interspersed; "--" ends flags; `--f=v`,
//   `--f v`, `-f v`, `-fv`, `-f=v`; bool flags take no separate value.
// - A repeated string-slice flag (--endpoints) appends; the first use
//   replaces the default.
// - Error texts are pflag's, since etcdctl prints them verbatim.

import { goDurationString, goParseBool, goParseDuration, goParseInt, goQuote, goTabwriter } from "./gofmt.js";

export type FlagKind = "bool" | "string" | "int64" | "duration" | "stringSlice";

export interface FlagDef {
  readonly name: string;
  readonly short?: string;
  readonly kind: FlagKind;
  /** Default, in the text form the flag accepts ("false", "5s", "127.0.0.1:2379", "0"). */
  readonly def: string;
  readonly usage: string;
}

export interface Invocation {
  readonly cmd: Command;
  /** Positional arguments (flags removed). */
  readonly args: string[];
  /** Number of positionals before "--", or -1 if there was no "--". */
  readonly argsLenAtDash: number;
  readonly flags: FlagSet;
}

export interface Command {
  readonly name: string;
  /** The usage line after the command path, e.g. "get [options] <key> [range_end]". */
  readonly use: string;
  readonly short: string;
  readonly long?: string;
  readonly flags?: readonly FlagDef[];
  /** Flags inherited by every subcommand (the root's globals, endpoint's --cluster). */
  readonly persistentFlags?: readonly FlagDef[];
  readonly children?: readonly Command[];
  readonly run?: (inv: Invocation) => Promise<void>;
}

type Value = boolean | string | bigint | number | string[];

/** Thrown for command-line errors; main prints cobra's usage-and-error output. */
export class FlagError extends Error {
  constructor(readonly cmd: Command, message: string) {
    super(message);
  }
}

export class UnknownCommandError extends Error {
  constructor(readonly word: string, readonly rootName: string) {
    super(`unknown command ${goQuote(word)} for ${goQuote(rootName)}`);
  }
}

function parseValue(def: FlagDef, text: string): Value {
  switch (def.kind) {
    case "bool": return goParseBool(text);
    case "string": return text;
    case "int64": return goParseInt(text, 0);
    case "duration": return goParseDuration(text);
    case "stringSlice": return text === "" ? [] : text.split(",");
  }
}

export class FlagSet {
  private readonly values = new Map<string, Value>();
  private readonly changedSet = new Set<string>();

  constructor(readonly defs: readonly FlagDef[]) {
    for (const d of defs) this.values.set(d.name, parseValue(d, d.def));
  }

  lookup(name: string): FlagDef | undefined {
    return this.defs.find((d) => d.name === name);
  }

  lookupShort(short: string): FlagDef | undefined {
    return this.defs.find((d) => d.short === short);
  }

  /** pflag's Set: parse and store; a string slice appends after its first Set. */
  set(name: string, text: string): void {
    const def = this.lookup(name);
    if (!def) throw new Error(`no such flag -${name}`);
    let v = parseValue(def, text);
    if (def.kind === "stringSlice" && this.changedSet.has(name)) {
      v = [...(this.values.get(name) as string[]), ...(v as string[])];
    }
    this.values.set(name, v);
    this.changedSet.add(name);
  }

  changed(name: string): boolean {
    return this.changedSet.has(name);
  }

  bool(name: string): boolean {
    return this.get(name, "boolean") as boolean;
  }
  string(name: string): string {
    return this.get(name, "string") as string;
  }
  int(name: string): bigint {
    return this.get(name, "bigint") as bigint;
  }
  /** Nanoseconds. */
  duration(name: string): number {
    return this.get(name, "number") as number;
  }
  slice(name: string): string[] {
    return [...(this.values.get(name) as string[])];
  }

  private get(name: string, type: string): Value {
    const v = this.values.get(name);
    if (typeof v !== type) throw new Error(`flag ${name} is not a ${type}`);
    return v as Value;
  }
}

export const helpFlag = (cmdName: string): FlagDef => ({
  name: "help", short: "h", kind: "bool", def: "false", usage: `help for ${cmdName}`,
});

/** Parent links, computed once per tree. */
export class CommandTree {
  private readonly parents = new Map<Command, Command>();

  constructor(readonly root: Command) {
    const walk = (c: Command): void => {
      for (const ch of c.children ?? []) {
        this.parents.set(ch, c);
        walk(ch);
      }
    };
    walk(root);
  }

  parent(c: Command): Command | undefined {
    return this.parents.get(c);
  }

  /** ["lease", "grant"] for `etcdctl lease grant`. */
  path(c: Command): string[] {
    const out: string[] = [];
    for (let x: Command | undefined = c; x && x !== this.root; x = this.parent(x)) out.unshift(x.name);
    return out;
  }

  /** Flags usable on c: its own, its persistent ones, and its ancestors' persistent ones. */
  inherited(c: Command): FlagDef[] {
    const out: FlagDef[] = [];
    for (let x = this.parent(c); x; x = this.parent(x)) out.push(...(x.persistentFlags ?? []));
    return out;
  }

  local(c: Command): FlagDef[] {
    return [...(c.flags ?? []), ...(c.persistentFlags ?? [])];
  }

  /** Finds the command named by the leading words of argv (cobra's Find). */
  find(argv: string[]): { cmd: Command; rest: string[] } {
    let cmd = this.root;
    let rest = [...argv];
    for (;;) {
      const known = [...this.local(cmd), ...this.inherited(cmd)];
      const words = stripFlags(rest, known);
      const next = words[0] === undefined ? undefined : cmd.children?.find((c) => c.name === words[0]);
      if (!next) {
        if (cmd === this.root && words[0] !== undefined && (cmd.children?.length ?? 0) > 0) {
          throw new UnknownCommandError(words[0], this.root.name);
        }
        return { cmd, rest };
      }
      const i = rest.indexOf(next.name);
      rest = [...rest.slice(0, i), ...rest.slice(i + 1)];
      cmd = next;
    }
  }

  /** pflag's parse of all flags valid for cmd. */
  parse(cmd: Command, argv: string[]): Invocation {
    const defs = [...this.local(cmd), helpFlag(cmd.name), ...this.inherited(cmd)];
    const fs = new FlagSet(defs);
    const args: string[] = [];
    let argsLenAtDash = -1;
    const fail = (msg: string): never => { throw new FlagError(cmd, msg); };
    const setOrFail = (def: FlagDef, value: string, shown: string): void => {
      try {
        fs.set(def.name, value);
      } catch (e) {
        fail(`invalid argument ${goQuote(value)} for ${goQuote(shown)} flag: ${(e as Error).message}`);
      }
    };
    for (let i = 0; i < argv.length; i++) {
      const s = argv[i] as string;
      if (s.length < 2 || s[0] !== "-") { args.push(s); continue; }
      if (s === "--") {
        argsLenAtDash = args.length;
        args.push(...argv.slice(i + 1));
        break;
      }
      if (s.startsWith("--")) {
        const body = s.slice(2);
        if (body.length === 0 || body[0] === "-" || body[0] === "=") fail(`bad flag syntax: ${s}`);
        const eq = body.indexOf("=");
        const name = eq >= 0 ? body.slice(0, eq) : body;
        const def = fs.lookup(name);
        if (!def) fail(`unknown flag: --${name}`);
        const d = def as FlagDef;
        const shown = d.short ? `-${d.short}, --${d.name}` : `--${d.name}`;
        if (eq >= 0) setOrFail(d, body.slice(eq + 1), shown);
        else if (d.kind === "bool") setOrFail(d, "true", shown);
        else if (i + 1 < argv.length) setOrFail(d, argv[++i] as string, shown);
        else fail(`flag needs an argument: ${s}`);
        continue;
      }
      // Shorthand cluster: -w json, -wjson, -w=json, -ih.
      let shorts = s.slice(1);
      while (shorts.length > 0) {
        const c = shorts[0] as string;
        const def = fs.lookupShort(c);
        if (!def) fail(`unknown shorthand flag: '${c}' in -${shorts}`);
        const d = def as FlagDef;
        const shown = `-${d.short}, --${d.name}`;
        if (shorts[1] === "=") { setOrFail(d, shorts.slice(2), shown); shorts = ""; }
        else if (d.kind === "bool") { setOrFail(d, "true", shown); shorts = shorts.slice(1); }
        else if (shorts.length > 1) { setOrFail(d, shorts.slice(1), shown); shorts = ""; }
        else if (i + 1 < argv.length) { setOrFail(d, argv[++i] as string, shown); shorts = ""; }
        else fail(`flag needs an argument: '${c}' in -${shorts}`);
      }
    }
    return { cmd, args, argsLenAtDash, flags: fs };
  }

  // -------------------------------------------------------------------------
  // Help, in etcdctl's template (NAME / USAGE / ... / GLOBAL OPTIONS).

  help(cmd: Command, meta: { version: string; apiVersion: string }): string {
    const isRoot = cmd === this.root;
    const path = this.path(cmd);
    const name = isRoot ? cmd.name : path.join(" ");
    const local = [...this.local(cmd), helpFlag(cmd.name)];
    const inherited = this.inherited(cmd);
    let useLine = [this.root.name, ...path].join(" ");
    if (!isRoot) useLine += " " + cmd.use.split(" ").slice(1).join(" ");
    useLine = useLine.trimEnd();
    if (!useLine.includes("[flags]")) useLine += " [flags]";
    let t = `NAME:\n\t${name} - ${cmd.short}\n\nUSAGE:\n\t${useLine}\n`;
    if (isRoot) t += `\nVERSION:\n\t${meta.version}\n`;
    const subs = this.runnableDescendants(cmd);
    if ((cmd.children?.length ?? 0) > 0) {
      t += `\nAPI VERSION:\n\t${meta.apiVersion}\n\n\nCOMMANDS:\n`;
      for (const s of subs) t += `\t${s.name}\t${s.cmd.short}\n`;
    }
    if (cmd.long) {
      t += `\nDESCRIPTION:\n`;
      for (const line of cmd.long.replace(/^[\n\t ]+|[\n\t ]+$/g, "").split("\n")) t += `\t${line}\n`;
    }
    t += `\nOPTIONS:\n${flagUsages(local)}`;
    if (inherited.length > 0) t += `\nGLOBAL OPTIONS:\n${flagUsages(inherited)}`;
    return goTabwriter(t + "\n");
  }

  private runnableDescendants(cmd: Command): { name: string; cmd: Command }[] {
    const out: { name: string; cmd: Command }[] = [];
    const walk = (c: Command, prefix: string): void => {
      for (const ch of [...(c.children ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const n = prefix ? `${prefix} ${ch.name}` : ch.name;
        if (ch.run) out.push({ name: n, cmd: ch });
        walk(ch, n);
      }
    };
    walk(cmd, "");
    return out;
  }
}

/** cobra's stripFlags: the non-flag words of args, skipping values of flags that take one. */
function stripFlags(args: string[], known: readonly FlagDef[]): string[] {
  const takesNoValue = (name: string): boolean => known.find((d) => d.name === name)?.kind === "bool";
  const shortTakesNoValue = (c: string): boolean => known.find((d) => d.short === c)?.kind === "bool";
  const words: string[] = [];
  let rest = [...args];
  while (rest.length > 0) {
    const s = rest[0] as string;
    rest = rest.slice(1);
    if (s === "--") break;
    const longWithValue = s.startsWith("--") && !s.includes("=") && !takesNoValue(s.slice(2));
    const shortWithValue = s.startsWith("-") && !s.includes("=") && s.length === 2 && !shortTakesNoValue(s.slice(1));
    if (longWithValue || shortWithValue) {
      if (rest.length <= 1) break;
      rest = rest.slice(1);
      continue;
    }
    if (s !== "" && !s.startsWith("-")) words.push(s);
  }
  return words;
}

/** etcdctl's flag usage lines (sorted by name), before tab alignment. */
function flagUsages(defs: readonly FlagDef[]): string {
  let out = "";
  for (const d of [...defs].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    let line = d.short ? `  -${d.short}, --${d.name}` : `      --${d.name}`;
    const shownDefault =
      d.kind === "string" ? goQuote(d.def)
      : d.kind === "stringSlice" ? `[${d.def}]`
      : d.kind === "duration" ? goDurationString(BigInt(Math.round(goParseDuration(d.def))))
      : d.def;
    line += d.kind === "bool" ? `[=${shownDefault}]` : `=${shownDefault}`;
    out += `${line}\t${d.usage}\n`;
  }
  return out;
}
