// Per-process resource readings from Linux /proc, for the servers under test.
//
// CPU: fields 14 and 15 of /proc/<pid>/stat (utime, stime) count clock ticks
// spent by every thread of the process; a run's CPU time is the difference of
// two readings. Peak memory: VmHWM in /proc/<pid>/status is the largest
// resident set the process has had. Writing "5" to /proc/<pid>/clear_refs
// (Linux >= 4.0, same owner) resets it to the current RSS, so each run's peak
// is its own rather than the process lifetime's.

import { readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";

let ticksPerSecond: number | undefined;

/** The kernel's USER_HZ (`getconf CLK_TCK`), almost always 100. */
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
    const n = Number((r.stdout ?? "").trim());
    ticksPerSecond = r.status === 0 && Number.isFinite(n) && n > 0 ? n : 100;
  }
  return ticksPerSecond;
}

/** utime+stime of the process, in seconds, from the text of /proc/<pid>/stat. */
export function cpuSecondsFromStat(stat: string, hz: number): number {
  // Field 2 (comm) is in parentheses and may contain spaces: split after the last ')'.
  const close = stat.lastIndexOf(")");
  if (close < 0) throw new Error(`unexpected /proc stat text: ${stat.slice(0, 80)}`);
  // After ')' the fields start at field 3 (state); utime is field 14, stime 15.
  const rest = stat.slice(close + 2).trim().split(/\s+/);
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot read utime/stime from: ${stat.slice(0, 120)}`);
  return (utime + stime) / hz;
}

/** A "Name:  123 kB" field of /proc/<pid>/status, in kB. */
export function statusFieldKb(status: string, name: string): number | undefined {
  const m = new RegExp(`^${name}:\\s+([0-9]+) kB`, "m").exec(status);
  return m && m[1] !== undefined ? Number(m[1]) : undefined;
}

export function cpuSeconds(pid: number): number {
  return cpuSecondsFromStat(readFileSync(`/proc/${pid}/stat`, "utf8"), clockTicks());
}

/** Peak resident set (VmHWM) in kB. */
export function peakRssKb(pid: number): number {
  const kb = statusFieldKb(readFileSync(`/proc/${pid}/status`, "utf8"), "VmHWM");
  if (kb === undefined) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return kb;
}

/** Resets VmHWM to the current RSS. Returns false when the kernel refuses. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
