// Go encoding/json, as far as the etcd gateway lets a client see it.
//
// etcd's JSON gateway is written in Go; when a request body is malformed the
// client gets Go's own error text back ("invalid character 'x' looking for
// beginning of value", "unexpected EOF", "illegal base64 data at input byte
// 2", ...). To answer byte for byte the same, this module reimplements the
// observable parts of Go's encoding/json (Go 1.19, the toolchain etcd 3.4.23
// and 3.5 ship with): the byte-at-a-time syntax scanner and its messages, the
// streaming Decoder's value framing (consecutive values in one body), string
// unquoting, standard base64 decoding with Go's error offsets, strconv-style
// quoting used inside messages, and the HTML-safe string encoder.
//
// Written from the behaviour of Go's encoding/json (observed against etcd
// 3.4.23); no Go code is translated line by line.

// ---------------------------------------------------------------------------
// Scanner

const enum Scan {
  Continue,
  BeginLiteral,
  BeginObject,
  ObjectKey,
  ObjectValue,
  EndObject,
  BeginArray,
  ArrayValue,
  EndArray,
  SkipSpace,
  End,
  Error,
}

const enum Parse {
  ObjectKey,
  ObjectValue,
  ArrayValue,
}

type Step = (s: Scanner, c: number) => Scan;

const MAX_NESTING = 10000;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/** A JSON syntax scanner fed one byte at a time, reproducing Go's messages. */
export class Scanner {
  step: Step = stBeginValue;
  parse: Parse[] = [];
  err: string | null = null;
  endTop = false;

  reset(): void {
    this.step = stBeginValue;
    this.parse = [];
    this.err = null;
    this.endTop = false;
  }

  /** Feeds the end of input; End when the value is complete, else Error (err set). */
  eof(): Scan {
    if (this.err !== null) return Scan.Error;
    if (this.endTop) return Scan.End;
    this.step(this, 0x20);
    if (this.endTop) return Scan.End;
    if (this.err === null) this.err = "unexpected end of JSON input";
    return Scan.Error;
  }

  fail(c: number, context: string): Scan {
    this.step = stError;
    this.err = `invalid character ${quoteChar(c)} ${context}`;
    return Scan.Error;
  }

  push(c: number, p: Parse, ok: Scan): Scan {
    this.parse.push(p);
    if (this.parse.length <= MAX_NESTING) return ok;
    return this.fail(c, "exceeded max depth");
  }

  pop(): void {
    this.parse.pop();
    if (this.parse.length === 0) {
      this.step = stEndTop;
      this.endTop = true;
    } else {
      this.step = stEndValue;
    }
  }
}

function stError(): Scan {
  return Scan.Error;
}

function stBeginValueOrEmpty(s: Scanner, c: number): Scan {
  if (isSpace(c)) return Scan.SkipSpace;
  if (c === 0x5d /* ] */) return stEndValue(s, c);
  return stBeginValue(s, c);
}

function stBeginValue(s: Scanner, c: number): Scan {
  if (isSpace(c)) return Scan.SkipSpace;
  switch (c) {
    case 0x7b /* { */:
      s.step = stBeginStringOrEmpty;
      return s.push(c, Parse.ObjectKey, Scan.BeginObject);
    case 0x5b /* [ */:
      s.step = stBeginValueOrEmpty;
      return s.push(c, Parse.ArrayValue, Scan.BeginArray);
    case 0x22 /* " */:
      s.step = stInString;
      return Scan.BeginLiteral;
    case 0x2d /* - */:
      s.step = stNeg;
      return Scan.BeginLiteral;
    case 0x30 /* 0 */:
      s.step = st0;
      return Scan.BeginLiteral;
    case 0x74 /* t */:
      s.step = literal("true", 1);
      return Scan.BeginLiteral;
    case 0x66 /* f */:
      s.step = literal("false", 1);
      return Scan.BeginLiteral;
    case 0x6e /* n */:
      s.step = literal("null", 1);
      return Scan.BeginLiteral;
  }
  if (c >= 0x31 && c <= 0x39) {
    s.step = st1;
    return Scan.BeginLiteral;
  }
  return s.fail(c, "looking for beginning of value");
}

function stBeginStringOrEmpty(s: Scanner, c: number): Scan {
  if (isSpace(c)) return Scan.SkipSpace;
  if (c === 0x7d /* } */) {
    s.parse[s.parse.length - 1] = Parse.ObjectValue;
    return stEndValue(s, c);
  }
  return stBeginString(s, c);
}

function stBeginString(s: Scanner, c: number): Scan {
  if (isSpace(c)) return Scan.SkipSpace;
  if (c === 0x22) {
    s.step = stInString;
    return Scan.BeginLiteral;
  }
  return s.fail(c, "looking for beginning of object key string");
}

function stEndValue(s: Scanner, c: number): Scan {
  const n = s.parse.length;
  if (n === 0) {
    s.step = stEndTop;
    s.endTop = true;
    return stEndTop(s, c);
  }
  if (isSpace(c)) {
    s.step = stEndValue;
    return Scan.SkipSpace;
  }
  switch (s.parse[n - 1]) {
    case Parse.ObjectKey:
      if (c === 0x3a /* : */) {
        s.parse[n - 1] = Parse.ObjectValue;
        s.step = stBeginValue;
        return Scan.ObjectKey;
      }
      return s.fail(c, "after object key");
    case Parse.ObjectValue:
      if (c === 0x2c /* , */) {
        s.parse[n - 1] = Parse.ObjectKey;
        s.step = stBeginString;
        return Scan.ObjectValue;
      }
      if (c === 0x7d /* } */) {
        s.pop();
        return Scan.EndObject;
      }
      return s.fail(c, "after object key:value pair");
    default:
      if (c === 0x2c) {
        s.step = stBeginValue;
        return Scan.ArrayValue;
      }
      if (c === 0x5d) {
        s.pop();
        return Scan.EndArray;
      }
      return s.fail(c, "after array element");
  }
}

function stEndTop(s: Scanner, c: number): Scan {
  // Go records the complaint but still reports the end of the value; the
  // error surfaces on the next byte (or at eof).
  if (!isSpace(c)) s.fail(c, "after top-level value");
  return Scan.End;
}

function stInString(s: Scanner, c: number): Scan {
  if (c === 0x22) {
    s.step = stEndValue;
    return Scan.Continue;
  }
  if (c === 0x5c /* \ */) {
    s.step = stInStringEsc;
    return Scan.Continue;
  }
  if (c < 0x20) return s.fail(c, "in string literal");
  return Scan.Continue;
}

function stInStringEsc(s: Scanner, c: number): Scan {
  switch (c) {
    case 0x62: case 0x66: case 0x6e: case 0x72: case 0x74: // b f n r t
    case 0x5c: case 0x2f: case 0x22: // \ / "
      s.step = stInString;
      return Scan.Continue;
    case 0x75: // u
      s.step = hexDigits(4);
      return Scan.Continue;
  }
  return s.fail(c, "in string escape code");
}

const hexSteps: Step[] = [];
function hexDigits(left: number): Step {
  let f = hexSteps[left];
  if (f === undefined) {
    f = (s, c) => {
      if (!isHex(c)) return s.fail(c, "in \\u hexadecimal character escape");
      s.step = left === 1 ? stInString : hexDigits(left - 1);
      return Scan.Continue;
    };
    hexSteps[left] = f;
  }
  return f;
}

function stNeg(s: Scanner, c: number): Scan {
  if (c === 0x30) {
    s.step = st0;
    return Scan.Continue;
  }
  if (c >= 0x31 && c <= 0x39) {
    s.step = st1;
    return Scan.Continue;
  }
  return s.fail(c, "in numeric literal");
}

function st1(s: Scanner, c: number): Scan {
  if (isDigit(c)) return Scan.Continue;
  return st0(s, c);
}

function st0(s: Scanner, c: number): Scan {
  if (c === 0x2e /* . */) {
    s.step = stDot;
    return Scan.Continue;
  }
  if (c === 0x65 || c === 0x45) {
    s.step = stE;
    return Scan.Continue;
  }
  return stEndValue(s, c);
}

function stDot(s: Scanner, c: number): Scan {
  if (isDigit(c)) {
    s.step = stDot0;
    return Scan.Continue;
  }
  return s.fail(c, "after decimal point in numeric literal");
}

function stDot0(s: Scanner, c: number): Scan {
  if (isDigit(c)) return Scan.Continue;
  if (c === 0x65 || c === 0x45) {
    s.step = stE;
    return Scan.Continue;
  }
  return stEndValue(s, c);
}

function stE(s: Scanner, c: number): Scan {
  if (c === 0x2b || c === 0x2d) {
    s.step = stESign;
    return Scan.Continue;
  }
  return stESign(s, c);
}

function stESign(s: Scanner, c: number): Scan {
  if (isDigit(c)) {
    s.step = stE0;
    return Scan.Continue;
  }
  return s.fail(c, "in exponent of numeric literal");
}

function stE0(s: Scanner, c: number): Scan {
  if (isDigit(c)) return Scan.Continue;
  return stEndValue(s, c);
}

const literalSteps = new Map<string, Step>();
/** State after having read `word[0..i)` of a true/false/null literal. */
function literal(word: string, i: number): Step {
  const key = `${word}${i}`;
  let f = literalSteps.get(key);
  if (f === undefined) {
    const want = word.charCodeAt(i);
    f = (s, c) => {
      if (c === want) {
        s.step = i + 1 === word.length ? stEndValue : literal(word, i + 1);
        return Scan.Continue;
      }
      return s.fail(c, `in literal ${word} (expecting ${quoteChar(want)})`);
    };
    literalSteps.set(key, f);
  }
  return f;
}

/** Go's quoteChar: how a byte is shown inside a syntax error message. */
export function quoteChar(c: number): string {
  if (c === 0x27) return `'\\''`;
  if (c === 0x22) return `'"'`;
  const q = goQuoteRunes([c]);
  return `'${q.slice(1, -1)}'`;
}

// ---------------------------------------------------------------------------
// Validation (json.Unmarshal's checkValid) and the value tree

/** Go's json.Unmarshal syntax check of a complete input; null when valid. */
export function checkValid(data: Uint8Array): string | null {
  const s = new Scanner();
  for (let i = 0; i < data.length; i++) {
    if (s.step(s, data[i]!) === Scan.Error) return s.err;
  }
  if (s.eof() === Scan.Error) return s.err;
  return null;
}

/** A syntactically valid JSON value; offsets index the shared buffer. */
export type JNode =
  | { readonly k: "obj"; readonly s: number; readonly e: number; readonly members: readonly (readonly [string, JNode])[] }
  | { readonly k: "arr"; readonly s: number; readonly e: number; readonly items: readonly JNode[] }
  | { readonly k: "str" | "num" | "true" | "false" | "null"; readonly s: number; readonly e: number };

/** A decoded value and the bytes its offsets refer to. */
export interface JValue {
  readonly buf: Uint8Array;
  readonly node: JNode;
}

/**
 * Builds the tree of an already validated value starting at (or after
 * whitespace from) `pos`. Iterative: encoding/json allows 10000 levels of
 * nesting, more than the JS stack takes recursively.
 */
export function parseValid(buf: Uint8Array, pos = 0): JValue {
  let i = pos;
  const ws = () => {
    while (i < buf.length && isSpace(buf[i]!)) i++;
  };
  const skipString = () => {
    i++; // opening quote
    while (buf[i] !== 0x22) i += buf[i] === 0x5c ? 2 : 1;
    i++;
  };
  const readKey = (): string => {
    ws();
    const ks = i;
    skipString();
    const key = utf8Decode(unquoteBytes(buf.subarray(ks, i)));
    ws();
    i++; // ':'
    return key;
  };
  type Frame =
    | { readonly k: "obj"; readonly s: number; readonly members: [string, JNode][]; key: string }
    | { readonly k: "arr"; readonly s: number; readonly items: JNode[] };
  const stack: Frame[] = [];
  for (;;) {
    ws();
    const s = i;
    const c = buf[i]!;
    let node: JNode;
    if (c === 0x7b) {
      i++;
      ws();
      if (buf[i] !== 0x7d) {
        stack.push({ k: "obj", s, members: [], key: readKey() });
        continue;
      }
      i++;
      node = { k: "obj", s, e: i, members: [] };
    } else if (c === 0x5b) {
      i++;
      ws();
      if (buf[i] !== 0x5d) {
        stack.push({ k: "arr", s, items: [] });
        continue;
      }
      i++;
      node = { k: "arr", s, e: i, items: [] };
    } else if (c === 0x22) {
      skipString();
      node = { k: "str", s, e: i };
    } else if (c === 0x74) {
      i += 4;
      node = { k: "true", s, e: i };
    } else if (c === 0x66) {
      i += 5;
      node = { k: "false", s, e: i };
    } else if (c === 0x6e) {
      i += 4;
      node = { k: "null", s, e: i };
    } else {
      while (i < buf.length && /[-+.eE0-9]/.test(String.fromCharCode(buf[i]!))) i++;
      node = { k: "num", s, e: i };
    }
    // Attach the finished value to its container; close every container it ends.
    for (;;) {
      const top = stack[stack.length - 1];
      if (top === undefined) return { buf, node };
      if (top.k === "obj") top.members.push([top.key, node]);
      else top.items.push(node);
      ws();
      if (buf[i++] === 0x2c) {
        if (top.k === "obj") top.key = readKey();
        break;
      }
      stack.pop();
      node = top.k === "obj" ? { k: "obj", s: top.s, e: i, members: top.members } : { k: "arr", s: top.s, e: i, items: top.items };
    }
  }
}

/** The raw bytes of a node. */
export function rawBytes(v: Uint8Array, n: JNode): Uint8Array {
  return v.subarray(n.s, n.e);
}

// ---------------------------------------------------------------------------
// Streaming decoder (json.Decoder framing)

export type DecodeResult =
  | { readonly kind: "value"; readonly value: JValue }
  | { readonly kind: "need" }
  | { readonly kind: "eof" }
  | { readonly kind: "error"; readonly message: string };

/**
 * Frames consecutive JSON values out of a byte stream the way Go's
 * json.Decoder does: a value ends at its closing bracket, or at the first
 * byte after a scalar (or at end of input); errors are sticky.
 */
export class StreamDecoder {
  // Unconsumed input is data[0..len); capacity grows by doubling.
  private data: Uint8Array = new Uint8Array(0);
  private len = 0;
  private pos = 0;
  private fresh = true;
  private ended = false;
  private sticky: DecodeResult | null = null;
  private readonly scan = new Scanner();

  /** Bytes received but not yet returned as part of a value. */
  get buffered(): number {
    return this.len;
  }

  write(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const need = this.len + chunk.length;
    if (need > this.data.length) {
      const grown = new Uint8Array(Math.max(need, this.data.length * 2, 4096));
      grown.set(this.data.subarray(0, this.len), 0);
      this.data = grown;
    }
    this.data.set(chunk, this.len);
    this.len = need;
  }

  end(): void {
    this.ended = true;
  }

  next(): DecodeResult {
    if (this.sticky !== null) return this.sticky;
    const s = this.scan;
    if (this.fresh) {
      s.reset();
      this.fresh = false;
      this.pos = 0;
    }
    const buf = this.data;
    const len = this.len;
    for (let i = this.pos; i < len; i++) {
      switch (s.step(s, buf[i]!)) {
        case Scan.End:
          return this.take(i);
        case Scan.EndObject:
        case Scan.EndArray:
          if (stEndValue(s, 0x20) === Scan.End) return this.take(i + 1);
          break;
        case Scan.Error:
          return (this.sticky = { kind: "error", message: s.err ?? "" });
      }
    }
    this.pos = len;
    if (!this.ended) return { kind: "need" };
    if (s.step(s, 0x20) === Scan.End) return this.take(len);
    for (let i = 0; i < len; i++) {
      if (!isSpace(buf[i]!)) return (this.sticky = { kind: "error", message: "unexpected EOF" });
    }
    return (this.sticky = { kind: "eof" });
  }

  private take(n: number): DecodeResult {
    const bytes = this.data.slice(0, n);
    this.data.copyWithin(0, n, this.len);
    this.len -= n;
    this.fresh = true;
    return { kind: "value", value: parseValid(bytes) };
  }
}

// ---------------------------------------------------------------------------
// UTF-8, unquoting, quoting

/** Go's utf8.DecodeRune: [rune, width]; invalid input gives [0xFFFD, 1]. */
export function decodeRune(b: Uint8Array, i: number): [number, number] {
  const b0 = b[i]!;
  if (b0 < 0x80) return [b0, 1];
  const cont = (j: number, lo = 0x80, hi = 0xbf) => {
    const x = b[i + j];
    return x !== undefined && x >= lo && x <= hi;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    if (cont(1)) return [((b0 & 0x1f) << 6) | (b[i + 1]! & 0x3f), 2];
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    const lo = b0 === 0xe0 ? 0xa0 : 0x80;
    const hi = b0 === 0xed ? 0x9f : 0xbf;
    if (cont(1, lo, hi) && cont(2)) {
      return [((b0 & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f), 3];
    }
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    const lo = b0 === 0xf0 ? 0x90 : 0x80;
    const hi = b0 === 0xf4 ? 0x8f : 0xbf;
    if (cont(1, lo, hi) && cont(2) && cont(3)) {
      return [
        ((b0 & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f),
        4,
      ];
    }
  }
  return [0xfffd, 1];
}

/** Decodes UTF-8 like Go's string conversion: each bad byte becomes U+FFFD. */
export function utf8Decode(b: Uint8Array): string {
  let out = "";
  for (let i = 0; i < b.length; ) {
    const [r, w] = decodeRune(b, i);
    out += String.fromCodePoint(r);
    i += w;
  }
  return out;
}

const enc = new TextEncoder();

function hexVal(c: number): number {
  if (c <= 0x39) return c - 0x30;
  if (c <= 0x46) return c - 0x41 + 10;
  return c - 0x61 + 10;
}

function getU4(b: Uint8Array, i: number): number {
  // b[i] === '\\', b[i+1] === 'u'
  if (b[i] !== 0x5c || b[i + 1] !== 0x75 || i + 6 > b.length) return -1;
  let r = 0;
  for (let j = 2; j < 6; j++) {
    const c = b[i + j]!;
    if (!isHex(c)) return -1;
    r = r * 16 + hexVal(c);
  }
  return r;
}

/**
 * The bytes of a (valid) quoted JSON string literal, unescaped the way Go
 * does: invalid UTF-8 and unpaired surrogates become U+FFFD.
 */
export function unquoteBytes(lit: Uint8Array): Uint8Array {
  const b = lit.subarray(1, lit.length - 1);
  // Fast path: plain ASCII without escapes (e.g. every base64 value).
  let plain = true;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 0x5c || c >= 0x80) {
      plain = false;
      break;
    }
  }
  if (plain) return b.slice();
  const out: number[] = [];
  const pushRune = (r: number) => {
    for (const x of enc.encode(String.fromCodePoint(r))) out.push(x);
  };
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    if (c === 0x5c) {
      const e = b[i + 1]!;
      switch (e) {
        case 0x62: out.push(0x08); i += 2; continue;
        case 0x66: out.push(0x0c); i += 2; continue;
        case 0x6e: out.push(0x0a); i += 2; continue;
        case 0x72: out.push(0x0d); i += 2; continue;
        case 0x74: out.push(0x09); i += 2; continue;
        case 0x75: {
          let r = getU4(b, i);
          i += 6;
          if (r >= 0xd800 && r < 0xe000) {
            const r2 = getU4(b, i);
            if (r < 0xdc00 && r2 >= 0xdc00 && r2 < 0xe000) {
              pushRune(0x10000 + ((r - 0xd800) << 10) + (r2 - 0xdc00));
              i += 6;
              continue;
            }
            r = 0xfffd;
          }
          pushRune(r);
          continue;
        }
        default:
          out.push(e);
          i += 2;
          continue;
      }
    }
    if (c < 0x80) {
      out.push(c);
      i++;
      continue;
    }
    const [r, w] = decodeRune(b, i);
    if (r === 0xfffd && w === 1) pushRune(0xfffd);
    else for (let j = 0; j < w; j++) out.push(b[i + j]!);
    i += w;
  }
  return Uint8Array.from(out);
}

const printableRe = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** Go's strconv.IsPrint. */
function isPrint(r: number): boolean {
  if (r < 0x100) {
    if (r >= 0x20 && r < 0x7f) return true;
    if (r >= 0xa1 && r <= 0xff) return r !== 0xad;
    return false;
  }
  return printableRe.test(String.fromCodePoint(r));
}

const lowerhex = "0123456789abcdef";
function hexN(v: number, digits: number): string {
  let s = "";
  for (let k = (digits - 1) * 4; k >= 0; k -= 4) s += lowerhex[(v >> k) & 0xf];
  return s;
}

function quoteRuneInto(r: number, out: string[]): void {
  if (r === 0x22 || r === 0x5c) {
    out.push("\\", String.fromCharCode(r));
    return;
  }
  if (isPrint(r)) {
    out.push(String.fromCodePoint(r));
    return;
  }
  switch (r) {
    case 0x07: out.push("\\a"); return;
    case 0x08: out.push("\\b"); return;
    case 0x0c: out.push("\\f"); return;
    case 0x0a: out.push("\\n"); return;
    case 0x0d: out.push("\\r"); return;
    case 0x09: out.push("\\t"); return;
    case 0x0b: out.push("\\v"); return;
  }
  if (r < 0x20 || r === 0x7f) out.push("\\x" + hexN(r, 2));
  else if (r < 0x10000) out.push("\\u" + hexN(r, 4));
  else out.push("\\U" + hexN(r, 8));
}

/** Go's strconv.Quote applied to a sequence of runes. */
export function goQuoteRunes(runes: Iterable<number>): string {
  const out = ['"'];
  for (const r of runes) quoteRuneInto(r, out);
  out.push('"');
  return out.join("");
}

/** Go's %q of a byte slice: strconv.Quote(string(b)); bad bytes show as \xNN. */
export function goQuoteBytes(b: Uint8Array): string {
  const out = ['"'];
  for (let i = 0; i < b.length; ) {
    const [r, w] = decodeRune(b, i);
    if (r === 0xfffd && w === 1) out.push("\\x" + hexN(b[i]!, 2));
    else quoteRuneInto(r, out);
    i += w;
  }
  out.push('"');
  return out.join("");
}

/**
 * Go's json.Marshal of a string (HTML-safe): escapes ", \, control
 * characters (\n \r \t by name, others \u00XX), <, >, &, U+2028, U+2029;
 * unpaired surrogates become \ufffd.
 */
export function goJsonString(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | null = null;
    if (c < 0x20) {
      esc = c === 0x0a ? "\\n" : c === 0x0d ? "\\r" : c === 0x09 ? "\\t" : "\\u00" + hexN(c, 2);
    } else if (c === 0x22) esc = '\\"';
    else if (c === 0x5c) esc = "\\\\";
    else if (c === 0x3c) esc = "\\u003c";
    else if (c === 0x3e) esc = "\\u003e";
    else if (c === 0x26) esc = "\\u0026";
    else if (c === 0x2028) esc = "\\u2028";
    else if (c === 0x2029) esc = "\\u2029";
    else if (c >= 0xd800 && c < 0xdc00) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        i++;
        continue;
      }
      esc = "\\ufffd";
    } else if (c >= 0xdc00 && c < 0xe000) esc = "\\ufffd";
    if (esc !== null) {
      out += s.slice(start, i) + esc;
      start = i + 1;
    }
  }
  return out + s.slice(start) + '"';
}

// ---------------------------------------------------------------------------
// base64 (Go's base64.StdEncoding.Decode)

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const b64map = new Int16Array(256).fill(-1);
for (let i = 0; i < B64.length; i++) b64map[B64.charCodeAt(i)] = i;

/** Standard padded base64 decoding with Go's error offsets ("illegal base64 data at input byte N"). */
export function goBase64Decode(src: Uint8Array): { bytes: Uint8Array } | { error: string } {
  // Fast path: canonical padded input decodes the same with node's decoder.
  if (src.length % 4 === 0) {
    let ok = true;
    const body = src.length - (src[src.length - 1] === 0x3d ? (src[src.length - 2] === 0x3d ? 2 : 1) : 0);
    for (let i = 0; i < body; i++) {
      if (b64map[src[i]!]! < 0) {
        ok = false;
        break;
      }
    }
    if (ok) {
      const buf = Buffer.from(src.buffer, src.byteOffset, src.byteLength);
      return { bytes: new Uint8Array(Buffer.from(buf.toString("latin1"), "base64")) };
    }
  }
  const out: number[] = [];
  const bad = (n: number) => ({ error: `illegal base64 data at input byte ${n}` });
  let si = 0;
  const isNL = (c: number | undefined) => c === 0x0a || c === 0x0d;
  for (;;) {
    const q = [0, 0, 0, 0];
    let dlen = 4;
    let trailing = -1;
    let j = 0;
    for (; j < 4; j++) {
      if (si === src.length) {
        if (j === 0) return { bytes: Uint8Array.from(out) };
        return bad(si - j);
      }
      const c = src[si]!;
      si++;
      const v = b64map[c]!;
      if (v >= 0) {
        q[j] = v;
        continue;
      }
      if (isNL(c)) {
        j--;
        continue;
      }
      if (c !== 0x3d /* = */) return bad(si - 1);
      // padding
      if (j === 0 || j === 1) return bad(si - 1);
      if (j === 2) {
        while (si < src.length && isNL(src[si])) si++;
        if (si === src.length) return bad(src.length);
        if (src[si] !== 0x3d) return bad(si - 1);
        si++;
      }
      while (si < src.length && isNL(src[si])) si++;
      if (si < src.length) trailing = si;
      dlen = j;
      break;
    }
    const val = (q[0]! << 18) | (q[1]! << 12) | (q[2]! << 6) | q[3]!;
    const b = [(val >> 16) & 0xff, (val >> 8) & 0xff, val & 0xff];
    for (let k = 0; k < dlen - 1; k++) out.push(b[k]!);
    if (trailing >= 0) return bad(trailing);
    if (dlen < 4) return { bytes: Uint8Array.from(out) };
  }
}

/** Standard padded base64 encoding. */
export function base64Encode(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}
