// Go-compatible text primitives for the CLI.
//
// etcdctl is a Go program; its output is shaped by Go's standard library
// (strconv, fmt's %q, encoding/json, time.Duration, text/tabwriter) and by two
// small Go libraries (go-humanize, olekukonko/tablewriter). A user switching
// from etcdctl compares bytes, so each function here reproduces one of those
// behaviours exactly, as observed on etcdctl 3.4 (built with Go 1.19). Each
// says which Go function it mirrors. Nothing here knows about etcd.

// ---------------------------------------------------------------------------
// strconv

/** Error shaped like Go's *strconv.NumError: `strconv.ParseInt: parsing "x": invalid syntax`. */
export class GoNumError extends Error {
  constructor(fn: string, input: string, reason: "invalid syntax" | "value out of range") {
    super(`strconv.${fn}: parsing ${goQuote(input)}: ${reason}`);
  }
}

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

function digitValue(c: string): number {
  const code = c.charCodeAt(0);
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 122) return code - 97 + 10;
  if (code >= 65 && code <= 90) return code - 65 + 10;
  return 99;
}

/**
 * strconv.ParseInt(s, base, 64). base 0 means "from the prefix" (0x, 0o, 0b,
 * leading 0 = octal) and allows underscores between digits, as Go does; an
 * explicit base accepts neither prefix nor underscores.
 */
export function goParseInt(s: string, base: number): bigint {
  const fail = (reason: "invalid syntax" | "value out of range"): never => {
    throw new GoNumError("ParseInt", s, reason);
  };
  if (s.length === 0) fail("invalid syntax");
  let i = 0;
  let neg = false;
  if (s[0] === "+" || s[0] === "-") {
    neg = s[0] === "-";
    i = 1;
  }
  let body = s.slice(i);
  let underscoresOk = false;
  if (base === 0) {
    base = 10;
    underscoresOk = true;
    if (body[0] === "0") {
      const p = body[1]?.toLowerCase();
      if (body.length >= 3 && p === "x") { base = 16; body = body.slice(2); }
      else if (body.length >= 3 && p === "o") { base = 8; body = body.slice(2); }
      else if (body.length >= 3 && p === "b") { base = 2; body = body.slice(2); }
      else { base = 8; body = body.slice(1); if (body.length === 0) return 0n; }
    }
  }
  if (body.length === 0) fail("invalid syntax");
  let n = 0n;
  const b = BigInt(base);
  let sawDigit = false;
  let lastUnderscore = false;
  for (const c of body) {
    if (c === "_" && underscoresOk) {
      if (lastUnderscore) fail("invalid syntax");
      lastUnderscore = true;
      continue;
    }
    lastUnderscore = false;
    const d = digitValue(c);
    if (d >= base) fail("invalid syntax");
    n = n * b + BigInt(d);
    sawDigit = true;
  }
  if (!sawDigit || lastUnderscore) fail("invalid syntax");
  const v = neg ? -n : n;
  if (v > INT64_MAX || v < INT64_MIN) fail("value out of range");
  return v;
}

/** strconv.ParseBool. */
export function goParseBool(s: string): boolean {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  throw new GoNumError("ParseBool", s, "invalid syntax");
}

// ---------------------------------------------------------------------------
// fmt %q (strconv.Quote)

const printable = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

/** strconv.Quote of a string or of raw bytes (invalid UTF-8 becomes \xNN, as in Go). */
export function goQuote(input: string | Uint8Array): string {
  const bytes = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  let out = '"';
  let i = 0;
  while (i < bytes.length) {
    const [cp, size] = decodeRune(bytes, i);
    if (cp < 0) {
      out += "\\x" + hex2(bytes[i] ?? 0);
      i += 1;
      continue;
    }
    i += size;
    const ch = String.fromCodePoint(cp);
    if (ch === '"' || ch === "\\") { out += "\\" + ch; continue; }
    if (cp < 0x80 ? cp >= 0x20 && cp < 0x7f : printable.test(ch)) { out += ch; continue; }
    switch (cp) {
      case 7: out += "\\a"; continue;
      case 8: out += "\\b"; continue;
      case 12: out += "\\f"; continue;
      case 10: out += "\\n"; continue;
      case 13: out += "\\r"; continue;
      case 9: out += "\\t"; continue;
      case 11: out += "\\v"; continue;
    }
    if (cp < 0x20 || cp === 0x7f) out += "\\x" + hex2(cp);
    else if (cp < 0x10000) out += "\\u" + cp.toString(16).padStart(4, "0");
    else out += "\\U" + cp.toString(16).padStart(8, "0");
  }
  return out + '"';
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** Decodes one UTF-8 sequence at i: [codepoint, size], or [-1, 1] if invalid (Go's utf8.DecodeRune). */
function decodeRune(b: Uint8Array, i: number): [number, number] {
  const b0 = b[i] ?? 0;
  if (b0 < 0x80) return [b0, 1];
  const cont = (k: number): number => {
    const x = b[i + k];
    return x !== undefined && (x & 0xc0) === 0x80 ? x & 0x3f : -1;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    const c1 = cont(1);
    return c1 < 0 ? [-1, 1] : [((b0 & 0x1f) << 6) | c1, 2];
  }
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const c1 = cont(1), c2 = cont(2);
    if (c1 < 0 || c2 < 0) return [-1, 1];
    const cp = ((b0 & 0x0f) << 12) | (c1 << 6) | c2;
    if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) return [-1, 1];
    return [cp, 3];
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const c1 = cont(1), c2 = cont(2), c3 = cont(3);
    if (c1 < 0 || c2 < 0 || c3 < 0) return [-1, 1];
    const cp = ((b0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3;
    if (cp < 0x10000 || cp > 0x10ffff) return [-1, 1];
    return [cp, 4];
  }
  return [-1, 1];
}

/**
 * Go's strconv.Unquote for the two forms fmt's %q scanner accepts: a
 * double-quoted Go string literal or a back-quoted raw string. Returns the
 * value and how many characters of `s` it used, or undefined if `s` does not
 * start with a valid literal.
 */
export function goUnquotePrefix(s: string): { value: string; used: number } | undefined {
  if (s[0] === "`") {
    const end = s.indexOf("`", 1);
    if (end < 0) return undefined;
    return { value: s.slice(1, end).replace(/\r/g, ""), used: end + 1 };
  }
  if (s[0] !== '"') return undefined;
  const bytes: number[] = [];
  const pushStr = (t: string): void => { for (const x of Buffer.from(t, "utf8")) bytes.push(x); };
  let i = 1;
  while (i < s.length) {
    const c = s[i] as string;
    if (c === '"') return { value: Buffer.from(bytes).toString("utf8"), used: i + 1 };
    if (c === "\n") return undefined;
    if (c !== "\\") { const cp = s.codePointAt(i) ?? 0; const ch = String.fromCodePoint(cp); pushStr(ch); i += ch.length; continue; }
    const e = s[i + 1];
    if (e === undefined) return undefined;
    const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92, '"': 34 };
    if (simple[e] !== undefined) { bytes.push(simple[e] as number); i += 2; continue; }
    if (e === "x") {
      const h = s.slice(i + 2, i + 4);
      if (!/^[0-9a-fA-F]{2}$/.test(h)) return undefined;
      bytes.push(parseInt(h, 16)); i += 4; continue;
    }
    if (e === "u" || e === "U") {
      const n = e === "u" ? 4 : 8;
      const h = s.slice(i + 2, i + 2 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) return undefined;
      const cp = parseInt(h, 16);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
      pushStr(String.fromCodePoint(cp)); i += 2 + n; continue;
    }
    if (e >= "0" && e <= "7") {
      const o = s.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(o) || parseInt(o, 8) > 255) return undefined;
      bytes.push(parseInt(o, 8)); i += 4; continue;
    }
    return undefined;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// time.Duration

const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, "µs": 1e3, "μs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** time.ParseDuration, in nanoseconds. Error text as Go 1.19: `time: invalid duration "x"`. */
export function goParseDuration(s: string): number {
  const bad = (): never => { throw new Error(`time: invalid duration ${goQuote(s)}`); };
  let rest = s;
  let neg = false;
  if (rest[0] === "-" || rest[0] === "+") { neg = rest[0] === "-"; rest = rest.slice(1); }
  if (rest === "0") return 0;
  if (rest === "") bad();
  let total = 0;
  while (rest.length > 0) {
    const m = /^([0-9]*)(\.([0-9]*))?/.exec(rest);
    if (!m || (m[1] === "" && (m[3] ?? "") === "")) bad();
    const num = Number(`${m?.[1] || "0"}.${m?.[3] || "0"}`);
    rest = rest.slice(m?.[0].length ?? 0);
    const u = /^(ns|us|µs|μs|ms|s|m|h)/.exec(rest);
    if (!u) {
      if (rest.length === 0 || !/^[^0-9.]/.test(rest)) throw new Error(`time: missing unit in duration ${goQuote(s)}`);
      const unit = /^[^0-9.]+/.exec(rest)?.[0] ?? "";
      throw new Error(`time: unknown unit ${goQuote(unit)} in duration ${goQuote(s)}`);
    }
    total += num * (UNIT_NS[u[0]] ?? 0);
    rest = rest.slice(u[0].length);
  }
  return neg ? -total : total;
}

/** time.Duration.String() of a count of nanoseconds, e.g. "1.052678ms", "880.293µs", "2m3s". */
export function goDurationString(nanos: bigint): string {
  if (nanos === 0n) return "0s";
  const neg = nanos < 0n;
  let u = neg ? -nanos : nanos;
  let out: string;
  if (u < 1_000_000_000n) {
    let unit: string;
    let prec: number;
    if (u < 1000n) { return (neg ? "-" : "") + `${u}ns`; }
    else if (u < 1_000_000n) { unit = "µs"; prec = 3; }
    else { unit = "ms"; prec = 6; }
    out = fracString(u, prec) + unit;
  } else {
    const secs = u / 1_000_000_000n;
    const frac = u % 1_000_000_000n;
    let s = fracString(frac + (secs % 60n) * 1_000_000_000n, 9) + "s";
    u = secs / 60n;
    if (u > 0n) {
      s = `${u % 60n}m` + s;
      u /= 60n;
      if (u > 0n) s = `${u}h` + s;
    }
    out = s;
  }
  return (neg ? "-" : "") + out;
}

/** v / 10^prec printed with the fractional part's trailing zeros (and a bare ".") removed. */
function fracString(v: bigint, prec: number): string {
  const p = 10n ** BigInt(prec);
  const whole = v / p;
  const frac = (v % p).toString().padStart(prec, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : `${whole}`;
}

// ---------------------------------------------------------------------------
// go-humanize

/** humanize.Bytes (SI units, as etcdctl's "db size" column). */
export function humanizeBytes(n: bigint): string {
  if (n < 10n) return `${n} B`;
  const sizes = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
  const x = Number(n);
  const e = Math.floor(Math.log(x) / Math.log(1000));
  const suffix = sizes[e] ?? "EB";
  // val = floor(x/1000^e*10 + 0.5)/10, kept as tenths so the printing is exact.
  const tenths = Math.floor((x / Math.pow(1000, e)) * 10 + 0.5);
  if (tenths < 100) return `${Math.floor(tenths / 10)}.${tenths % 10} ${suffix}`;
  // "%.0f": Go rounds the exact binary value half to even; k/10 with k%10==5 is exactly x.5.
  let whole = Math.floor(tenths / 10);
  const r = tenths % 10;
  if (r > 5 || (r === 5 && whole % 2 === 1)) whole += 1;
  return `${whole} ${suffix}`;
}

// ---------------------------------------------------------------------------
// encoding/json

/** encoding/json's string encoding (HTML-safe escaping, as json.Marshal does). */
export function goJsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (cp < 0x20 || ch === "<" || ch === ">" || ch === "&") out += "\\u00" + hex2(cp);
    else if (cp === 0x2028 || cp === 0x2029) out += "\\u" + cp.toString(16);
    else if (cp >= 0xd800 && cp <= 0xdfff) out += "\\ufffd"; // lone surrogate: invalid UTF-8 in Go
    else out += ch;
  }
  return out + '"';
}

// ---------------------------------------------------------------------------
// text/tabwriter

/**
 * text/tabwriter as etcdctl's help uses it: NewWriter(w, minwidth 1,
 * tabwidth 8, padding 1, padchar '\t', flags 0). Cells are tab-terminated; a
 * line's last cell is not aligned. Columns are aligned within blocks of
 * consecutive lines that have a cell in that column.
 */
export function goTabwriter(text: string): string {
  const minwidth = 1, tabwidth = 8, padding = 1;
  const lines = text.split("\n").map((l) => l.split("\t"));
  const widths: number[] = [];
  let out = "";
  const cellWidth = (c: string): number => [...c].length;
  const writeLines = (line0: number, line1: number): void => {
    for (let i = line0; i < line1; i++) {
      const line = lines[i] ?? [];
      for (let j = 0; j < line.length; j++) {
        const c = line[j] ?? "";
        out += c;
        if (j < line.length - 1 && j < widths.length) {
          const cellw = Math.ceil((widths[j] ?? 0) / tabwidth) * tabwidth;
          const n = cellw - cellWidth(c);
          out += "\t".repeat(Math.ceil(n / tabwidth));
        } else if (j < line.length - 1) {
          out += "\t";
        }
      }
      if (i < lines.length - 1) out += "\n";
    }
  };
  const format = (line0: number, line1: number): void => {
    const column = widths.length;
    for (let t = line0; t < line1; t++) {
      if (column >= (lines[t]?.length ?? 0) - 1) continue;
      writeLines(line0, t);
      line0 = t;
      let width = minwidth;
      let l1 = t;
      for (; l1 < line1; l1++) {
        const line = lines[l1] ?? [];
        if (column >= line.length - 1) break;
        const w = cellWidth(line[column] ?? "") + padding;
        if (w > width) width = w;
      }
      widths.push(width);
      format(line0, l1);
      widths.pop();
      line0 = l1;
      t = l1 - 1;
    }
    writeLines(line0, line1);
  };
  format(0, lines.length);
  return out;
}

// ---------------------------------------------------------------------------
// olekukonko/tablewriter (the 2017 revision etcd 3.4 vendors)

const MAX_COL_WIDTH = 30;

/**
 * Renders a table the way etcdctl's "-w table" does: tablewriter with
 * SetHeader, Append per row, SetAlignment(ALIGN_RIGHT), default borders,
 * auto-wrap at 30 columns and upper-cased, centred headers.
 */
export function renderTable(header: string[], rows: string[][]): string {
  const cs: number[] = [];
  const width = (s: string): number => [...s].length;
  const titles = header.map((h) => h.replace(/_/g, " ").replace(/\./g, " ").trim().toUpperCase());
  const dim = (str: string, col: number, isHeader: boolean): string[] => {
    const w = Math.min(width(str), MAX_COL_WIDTH);
    if ((cs[col] ?? 0) < w || cs[col] === undefined || cs[col] === 0) cs[col] = w;
    if (isHeader) return [str];
    const raw = wrapString(str, cs[col] ?? 0);
    const max = Math.max(0, ...raw.map(width));
    if (max > (cs[col] ?? 0)) cs[col] = max;
    return raw;
  };
  titles.forEach((t, i) => dim(t, i, true));
  const cells = rows.map((r) => r.map((c, i) => dim(c, i, false)));
  const line = "+" + cs.map((w) => "-".repeat(w + 2)).join("+") + "+\n";
  let out = line;
  out += "|" + titles.map((t, i) => {
    const gap = (cs[i] ?? 0) - width(t);
    const left = Math.floor(gap / 2);
    return " " + " ".repeat(left) + t + " ".repeat(gap - left) + " ";
  }).join("|") + "|\n";
  out += line;
  for (const row of cells) {
    const height = Math.max(1, ...row.map((c) => c.length));
    for (let k = 0; k < height; k++) {
      out += "|" + row.map((c, i) => {
        const s = c[k] ?? "";
        return " " + " ".repeat(Math.max(0, (cs[i] ?? 0) - width(s))) + s + " ";
      }).join("|") + "|\n";
    }
  }
  out += line;
  return out;
}

/** tablewriter.WrapString: minimal-raggedness word wrap on single spaces. */
function wrapString(s: string, lim: number): string[] {
  const words = s.replace(/\n/g, " ").split(" ");
  const width = (w: string): number => [...w].length;
  for (const w of words) if (width(w) > lim) lim = width(w);
  const n = words.length;
  const len = (i: number, j: number): number => {
    let l = 0;
    for (let k = i; k <= j; k++) l += width(words[k] ?? "") + (k > i ? 1 : 0);
    return l;
  };
  const cost = new Array<number>(n).fill(2147483647);
  const nbrk = new Array<number>(n).fill(n);
  const penalty = 1e5;
  for (let i = n - 1; i >= 0; i--) {
    if (len(i, n - 1) <= lim) { cost[i] = 0; nbrk[i] = n; continue; }
    for (let j = i + 1; j < n; j++) {
      const l = len(i, j - 1);
      const d = lim - l;
      let c = d * d + (cost[j] ?? 0);
      if (l > lim) c += penalty;
      if (c < (cost[i] ?? 0)) { cost[i] = c; nbrk[i] = j; }
    }
  }
  const lines: string[] = [];
  for (let i = 0; i < n; ) {
    const next = nbrk[i] ?? n;
    lines.push(words.slice(i, next).join(" "));
    i = next;
  }
  return lines;
}

// ---------------------------------------------------------------------------
// OS error texts

/** How Go's *os.PathError prints a failed file operation, from a Node error. */
export function goPathError(op: string, path: string, err: unknown): string {
  const code = (err as { code?: string }).code ?? "";
  const texts: Record<string, string> = {
    ENOENT: "no such file or directory",
    EACCES: "permission denied",
    EISDIR: "is a directory",
    ENOTDIR: "not a directory",
    EEXIST: "file exists",
    EROFS: "read-only file system",
    ENOSPC: "no space left on device",
    EXDEV: "invalid cross-device link",
  };
  return `${op} ${path}: ${texts[code] ?? (err instanceof Error ? err.message : String(err))}`;
}

/** %016x / %x of a uint64 or int64 (two's complement), as Go prints IDs. */
export function hex64(v: bigint, pad = 0): string {
  const u = v < 0n ? v + (1n << 64n) : v;
  return u.toString(16).padStart(pad, "0");
}
