// On demand, not part of `npm test`: many concurrent watchers on one member,
// ours beside etcd 3.6. Builds on the bench (cluster.ts, procstat.ts) and
// drives each server with etcd's `benchmark watch-latency`: it opens the
// watchers, then puts one key at a fixed rate, and times put-acknowledged ->
// event-received for every watcher. Prints a small table.
//
//   npm run build && node dist/test/bench/scale-watch.js [--watchers 10000] [--streams 100] [--puts 20] [--rate 5] [--rounds 1]
//
// Columns: idle rss = server RSS before the tool starts; peak rss = VmHWM
// over the run; rss after = RSS once the tool has exited; p50/p99 = the
// tool's "Watch events summary" (one sample per watcher per put); cpu s =
// server CPU over the run.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { repoRoot } from "../harness/provision.js";
import { startCluster, type Impl } from "./cluster.js";
import { parseBenchmarkOutput, percentileMs, pickReport } from "./parse.js";
import { cpuSeconds, peakRssKb, resetPeakRss, statusFieldKb } from "./procstat.js";

interface Row {
  impl: Impl;
  watchers: number;
  idleMb: number;
  peakMb: number;
  afterMb: number;
  p50: number | null;
  p99: number | null;
  eventsPerS: number;
  cpuS: number;
  note: string;
}

function argNum(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

const rssMb = (pid: number): number => (statusFieldKb(readFileSync(`/proc/${pid}/status`, "utf8"), "VmRSS") ?? 0) / 1024;

async function runOnce(impl: Impl, watchers: number, streams: number, puts: number, rate: number): Promise<Row> {
  const bin = join(repoRoot, ".tools", "bin");
  const bins = { etcd: process.env["ETCD36_BIN"] || join(bin, "etcd"), oursMain: process.env["ETCDTS_MAIN"] || join(repoRoot, "dist", "node", "src", "main.js") };
  const tool = process.env["BENCHMARK_BIN"] || join(bin, "benchmark");
  for (const f of [bins.etcd, bins.oursMain, tool]) if (!existsSync(f)) throw new Error(`${f} is missing (npm run tools; npm run build)`);
  const root = mkdtempSync(join(tmpdir(), "scale-watch-"));
  const started = await startCluster(impl, 1, root, bins);
  if (started.kind !== "ok") throw new Error(`${impl}: ${started.reason}`);
  const c = started.cluster;
  const m = c.members[0]!;
  try {
    await sleep(1000);
    const idleMb = rssMb(m.pid);
    resetPeakRss(m.pid);
    const cpu0 = cpuSeconds(m.pid);
    const args = [
      "--endpoints", m.endpoint, "--precise", "watch-latency",
      `--streams=${streams}`, `--watchers-per-stream=${Math.ceil(watchers / streams)}`,
      `--put-rate=${rate}`, `--put-total=${puts}`, "--val-size=256",
    ];
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const child = spawn(tool, args, { stdio: ["ignore", "pipe", "pipe"] });
      const o: Buffer[] = [];
      const e: Buffer[] = [];
      child.stdout.on("data", (b: Buffer) => o.push(b));
      child.stderr.on("data", (b: Buffer) => e.push(b));
      const timer = setTimeout(() => child.kill("SIGKILL"), 600_000);
      child.once("close", (code) => {
        clearTimeout(timer);
        done({ code, stdout: Buffer.concat(o).toString("utf8"), stderr: Buffer.concat(e).toString("utf8") });
      });
    });
    const cpuS = cpuSeconds(m.pid) - cpu0;
    const peakMb = peakRssKb(m.pid) / 1024;
    const afterMb = rssMb(m.pid);
    let p50 = null;
    let p99 = null;
    let eventsPerS = 0;
    let note = out.code === 0 ? "" : `benchmark exited ${out.code}: ${out.stderr.trim().split("\n").slice(-1)[0] ?? ""}`;
    try {
      const r = pickReport(parseBenchmarkOutput(out.stdout), "Watch events summary");
      p50 = percentileMs(r, "50");
      p99 = percentileMs(r, "99");
      eventsPerS = r.rps;
      if (r.errors > 0) note = `${r.errors} errors`;
    } catch (err) {
      note ||= (err as Error).message;
    }
    return { impl, watchers, idleMb, peakMb, afterMb, p50, p99, eventsPerS, cpuS, note };
  } finally {
    await c.dispose();
    rmSync(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const watchers = argNum("watchers", 10_000);
  const streams = argNum("streams", 100);
  const puts = argNum("puts", 20);
  const rate = argNum("rate", 5);
  const rounds = argNum("rounds", 1);
  const rows: Row[] = [];
  for (let i = 0; i < rounds; i++) {
    for (const impl of ["etcd", "ours"] as const) {
      process.stderr.write(`[scale-watch] round ${i + 1}: ${impl}, ${watchers} watchers on ${streams} streams, ${puts} puts at ${rate}/s\n`);
      rows.push(await runOnce(impl, watchers, streams, puts, rate));
    }
  }
  const f = (x: number | null, d = 1) => (x === null ? "-" : x.toFixed(d));
  const lines = [
    "| impl | watchers | idle rss MB | peak rss MB | rss after MB | p50 ms | p99 ms | events/s | cpu s | note |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.impl} | ${r.watchers} | ${f(r.idleMb, 0)} | ${f(r.peakMb, 0)} | ${f(r.afterMb, 0)} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.eventsPerS, 0)} | ${f(r.cpuS, 2)} | ${r.note} |`),
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

main().catch((e: unknown) => {
  process.stderr.write(`[scale-watch] ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
