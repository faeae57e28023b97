// Command-line arguments as bytes.
//
// Keys and values given on the command line are arbitrary bytes to etcdctl
// (Go strings are byte strings). Node decodes argv as UTF-8 and replaces
// invalid sequences with U+FFFD, which would change such keys. On Linux the
// original bytes are in /proc/self/cmdline; this module remembers them so
// that argBytes() can return exactly what the user typed.

import { readFileSync } from "node:fs";

const rawByDecoded = new Map<string, Uint8Array>();

/** Records the raw bytes of the program's arguments (process.argv.slice(2)). */
export function captureRawArgs(args: readonly string[]): void {
  let cmdline: Buffer;
  try {
    cmdline = readFileSync("/proc/self/cmdline");
  } catch {
    return;
  }
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < cmdline.length; i++) {
    if (cmdline[i] === 0) { parts.push(cmdline.subarray(start, i)); start = i + 1; }
  }
  if (parts.length < args.length) return;
  const tail = parts.slice(parts.length - args.length);
  tail.forEach((raw, i) => {
    const decoded = args[i];
    if (decoded !== undefined && raw.toString("utf8") === decoded && !raw.equals(Buffer.from(decoded, "utf8"))) {
      rawByDecoded.set(decoded, raw);
    }
  });
}

/** The bytes of an argument (or any substring-free argument text) as the user gave them. */
export function argBytes(s: string): Uint8Array {
  return rawByDecoded.get(s) ?? Buffer.from(s, "utf8");
}
