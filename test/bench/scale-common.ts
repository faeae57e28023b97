// What the on-demand scale scripts (scale-keys.ts, scale-snapshot.ts) share:
// their command-line arguments, the tool paths, running a tool, the health and
// key probes, etcd's benchmark key format, and the result table and JSON file.

import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { repoRoot } from "../harness/provision.js";
import type { Impl } from "./cluster.js";

export function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

export function argNum(name: string, dflt: number): number {
  const raw = argValue(name);
  const v = raw === undefined ? dflt : Number(raw);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
}

export function argImpls(): Impl[] {
  const raw = argValue("impl") ?? "etcd,ours";
  const impls = raw.split(",").filter(Boolean);
  for (const i of impls) if (i !== "etcd" && i !== "ours") throw new Error(`--impl: unknown ${i}`);
  return impls as Impl[];
}

const BIN = join(repoRoot, ".tools", "bin");
export const TOOLS = {
  etcd: process.env["ETCD36_BIN"] || join(BIN, "etcd"),
  oursMain: process.env["ETCDTS_MAIN"] || join(repoRoot, "dist", "node", "src", "main.js"),
  benchmark: process.env["BENCHMARK_BIN"] || join(BIN, "benchmark"),
  etcdctl: process.env["ETCDCTL_BIN"] || join(BIN, "etcdctl"),
};

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a tool to its end (SIGKILL after timeoutMs), collecting its output and wall time. */
export function run(file: string, args: readonly string[], timeoutMs: number): Promise<Ran> {
  return new Promise((done) => {
    const t0 = performance.now();
    const child = spawn(file, [...args], { stdio: ["ignore", "pipe", "pipe"] });
    const o: Buffer[] = [];
    const e: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => o.push(b));
    child.stderr.on("data", (b: Buffer) => e.push(b));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("close", (code) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      done({ code, stdout: Buffer.concat(o).toString("utf8"), stderr: Buffer.concat(e).toString("utf8"), ms });
    });
  });
}

export const lastLine = (s: string): string => s.trim().split("\n").slice(-1)[0] ?? "";

export async function healthy(clientUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { health?: unknown };
    return res.status === 200 && (body.health === "true" || body.health === true);
  } catch {
    return false;
  }
}

/** The key etcd's benchmark writes for `--sequential-keys` index i (8-byte key: a zig-zag varint, zero-padded). */
export function benchmarkKey(i: number): Buffer {
  const k = Buffer.alloc(8);
  let z = BigInt(i) * 2n; // zig-zag of a non-negative number
  let n = 0;
  while (z >= 0x80n) {
    k[n++] = Number(z & 0x7fn) | 0x80;
    z >>= 7n;
  }
  k[n] = Number(z);
  return k;
}

/** A result column: title, value of a row, digits shown, and whether ours/etcd means anything. */
export type Col<R> = [title: string, get: (r: R) => number | null, digits: number, ratio: boolean];

/** The markdown table of the rows, with a row of ours/etcd ratios when both ran. */
export function table<R extends { impl: Impl; keys: number; note: string }>(rows: readonly R[], cols: readonly Col<R>[]): string {
  const f = (x: number | null, d: number) => (x === null || !Number.isFinite(x) ? "-" : x.toFixed(d));
  const lines = [
    `| impl | keys | ${cols.map((c) => c[0]).join(" | ")} | note |`,
    `|---|---|${cols.map(() => "---").join("|")}|---|`,
    ...rows.map((r) => `| ${r.impl} | ${r.keys} | ${cols.map(([, get, d]) => f(get(r), d)).join(" | ")} | ${r.note.trim()} |`),
  ];
  const etcd = rows.find((r) => r.impl === "etcd");
  const ours = rows.find((r) => r.impl === "ours");
  if (etcd && ours) {
    const ratio = ([, get, , meaningful]: Col<R>) => {
      const a = get(ours);
      const b = get(etcd);
      return meaningful && a !== null && b !== null && b > 0 ? (a / b).toFixed(2) : "";
    };
    lines.push(`| ours/etcd | | ${cols.map(ratio).join(" | ")} | |`);
  }
  return lines.join("\n") + "\n";
}

/** Writes DIR/NAME with the commit, the date, `fields` and the rows; returns the file. */
export function writeJson(dir: string, name: string, fields: Record<string, unknown>, rows: readonly unknown[]): string {
  mkdirSync(dir, { recursive: true });
  const commit = spawnSync("git", ["rev-parse", "HEAD"], { cwd: repoRoot, encoding: "utf8" }).stdout.trim();
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify({ commit, date: new Date().toISOString(), ...fields, rows }, null, 2) + "\n");
  return file;
}
