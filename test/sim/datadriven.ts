// A small reader/writer for data-driven test files in the style of
// cockroachdb/datadriven (as used by etcd-io/raft's testdata/*.txt):
//
//   # comments and blank lines between cases are kept as they are
//   command arg key=value key=(1,2)
//   optional input lines
//   ----
//   expected output (no blank lines)
//
// With rewrite enabled the expected output is replaced by the actual output and
// the file is written back, so behaviour changes are reviewed as diffs.

import { readFileSync, writeFileSync } from "node:fs";

export interface CmdArg {
  readonly key: string;
  readonly vals: readonly string[];
}

export interface TestCase {
  readonly pos: string;
  readonly cmd: string;
  readonly args: readonly CmdArg[];
  readonly input: readonly string[];
  readonly expected: string;
}

/** Parses `cmd a b=c d=(1,2)` into the command and its arguments. */
export function parseCommandLine(line: string): { cmd: string; args: CmdArg[] } {
  const tokens = line.trim().split(/\s+/);
  const cmd = tokens.shift() ?? "";
  const args: CmdArg[] = [];
  for (const t of tokens) {
    const eq = t.indexOf("=");
    if (eq < 0) {
      args.push({ key: t, vals: [] });
      continue;
    }
    const key = t.slice(0, eq);
    let v = t.slice(eq + 1);
    if (v.startsWith("(") && v.endsWith(")")) {
      v = v.slice(1, -1);
      args.push({ key, vals: v === "" ? [] : v.split(",").map((s) => s.trim()) });
    } else {
      args.push({ key, vals: [v] });
    }
  }
  return { cmd, args };
}

/**
 * Runs every case of `path` through `run`. Returns the mismatches (empty if all
 * passed). With `rewrite`, writes the actual outputs back into the file instead.
 */
export function runFile(
  path: string,
  run: (tc: TestCase) => string,
  rewrite: boolean,
): { mismatches: { tc: TestCase; actual: string }[]; cases: number } {
  const lines = readFileSync(path, "utf8").split("\n");
  const out: string[] = [];
  const mismatches: { tc: TestCase; actual: string }[] = [];
  let cases = 0;
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === "" || line.startsWith("#")) {
      out.push(line);
      i++;
      continue;
    }
    const startLine = i + 1;
    const cmdLines: string[] = [line];
    i++;
    while (i < lines.length && lines[i] !== "----") {
      cmdLines.push(lines[i]!);
      i++;
    }
    if (i >= lines.length) throw new Error(`${path}:${startLine}: missing ---- after command`);
    i++; // skip ----
    const expected: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== "") {
      expected.push(lines[i]!);
      i++;
    }
    const { cmd, args } = parseCommandLine(cmdLines[0]!);
    const tc: TestCase = {
      pos: `${path}:${startLine}`,
      cmd,
      args,
      input: cmdLines.slice(1),
      expected: expected.join("\n"),
    };
    cases++;
    let actual: string;
    try {
      actual = run(tc).replace(/\n+$/, "");
    } catch (err) {
      throw new Error(`${tc.pos}: ${cmdLines[0]}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    if (actual === "") actual = "ok";
    // Blank lines would end the block; make them visible instead.
    actual = actual
      .split("\n")
      .map((l) => (l.trim() === "" ? "." : l))
      .join("\n");
    if (actual !== tc.expected && !rewrite) mismatches.push({ tc, actual });
    out.push(...cmdLines, "----", ...actual.split("\n"));
  }
  if (rewrite) writeFileSync(path, out.join("\n"));
  return { mismatches, cases };
}
