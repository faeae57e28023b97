// Request decoding and string escaping of etcd 3.6's gateway: grpc-gateway v2
// with google.golang.org/protobuf's protojson (UnmarshalOptions{DiscardUnknown:
// true}; MarshalOptions{UseProtoNames: true}).
//
// The body is framed by Go's encoding/json first (json.Decoder into a
// json.RawMessage), so syntax errors keep encoding/json's texts (gojson.ts).
// protojson then re-reads that one value with its own tokenizer. What it does
// that 3.4's gogo jsonpb (jsonpb.ts) does not:
//
// * Errors are "proto: (line L:C): ..." at the offending token, counted in
//   runes from the first byte of the value (leading whitespace excluded);
//   wrong-kind values are "invalid value for <kind> field <jsonName>: <raw
//   token>" where the raw token is the literal source text ("\"a\"", "1.5",
//   "[", "{"); a non-object where a message is expected is "proto: syntax
//   error (line L:C): unexpected token <raw>".
// * The top-level value must be an object: `null`, `[]`, `"x"` are errors
//   (jsonpb took null as an empty request). An empty body is still accepted.
// * Bytes: standard base64, or URL-safe when the text holds '-' or '_';
//   padding optional (no padding is assumed when the length is not a multiple
//   of 4, so "Zm9v=" fails). Arrays of numbers are refused.
// * Integers: a number or a string holding exactly one JSON number; exponents
//   and fractions are fine when the value is integral ("1e2", 1.0); no
//   surrounding spaces; out of range fails. Enums: a name or an int32 number;
//   with DiscardUnknown an unknown name leaves the field unset.
// * Bools only true/false. Strings must be valid UTF-8, and \u escapes that
//   are surrogates must pair up.
// * A field named twice (by either its JSON or proto name) is "duplicate
//   field"; two members of one oneof are "oneof ... is already set". null
//   leaves any field (scalar, list, message, oneof member) unset.
// * Strings in output escape only ", \ and control characters (no HTML
//   escaping, no U+2028/9 escaping).

import { ScalarType, create } from "@bufbuild/protobuf";
import type { DescEnum, DescField, DescMessage, MessageShape } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import type { ReflectList, ReflectMessage } from "@bufbuild/protobuf/reflect";
import { decodeRune, goQuoteBytes } from "./gojson.js";
import type { JValue } from "./gojson.js";
import { JsonDecodeError } from "./jsonpb.js";

const PREFIX = "proto: ";

// ---------------------------------------------------------------------------
// Tokenizer (protojson's internal/encoding/json rules)

const enum K {
  EOF = 1,
  Null = 2,
  Bool = 4,
  Number = 8,
  String = 16,
  Name = 32,
  ObjectOpen = 64,
  ObjectClose = 128,
  ArrayOpen = 256,
  ArrayClose = 512,
  Comma = 1024,
}

const SCALAR = K.Null | K.Bool | K.Number | K.String;

interface Token {
  readonly kind: K;
  readonly pos: number;
  readonly end: number;
  /** Parsed text of a String or Name. */
  readonly str: string;
  readonly bool: boolean;
}

const NONE: Token = { kind: 0 as K, pos: 0, end: 0, str: "", bool: false };

const td = new TextDecoder();

function isNotDelim(c: number | undefined): boolean {
  if (c === undefined) return false;
  return c === 0x2d || c === 0x2b || c === 0x2e || c === 0x5f || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39);
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

/** Length of the JSON number at b[i..], or 0 (protojson's parseNumber). */
function numberLength(b: Uint8Array, i0: number): number {
  let i = i0;
  if (b[i] === 0x2d) {
    i++;
    if (i >= b.length) return 0;
  }
  if (b[i] === 0x30) i++;
  else if (isDigit(b[i]) && b[i] !== 0x30) {
    i++;
    while (isDigit(b[i])) i++;
  } else return 0;
  if (i + 1 < b.length && b[i] === 0x2e && isDigit(b[i + 1])) {
    i += 2;
    while (isDigit(b[i])) i++;
  }
  if (i + 1 < b.length && (b[i] === 0x65 || b[i] === 0x45)) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) {
      i++;
      if (i >= b.length) return 0;
    }
    while (isDigit(b[i])) i++;
  }
  if (i < b.length && isNotDelim(b[i])) return 0;
  return i - i0;
}

class Tokenizer {
  private i = 0;
  private last: Token = NONE;
  private stack: K[] = [];
  private peeked: Token | null = null;

  constructor(readonly b: Uint8Array) {}

  raw(t: Token): string {
    return td.decode(this.b.subarray(t.pos, t.end));
  }

  position(idx: number): string {
    let line = 1;
    let ls = 0;
    for (let j = 0; j < idx; j++) {
      if (this.b[j] === 0x0a) {
        line++;
        ls = j + 1;
      }
    }
    let col = 1;
    for (let j = ls; j < idx; ) {
      j += decodeRune(this.b, j)[1];
      col++;
    }
    return `(line ${line}:${col})`;
  }

  error(pos: number, msg: string): JsonDecodeError {
    return new JsonDecodeError(`${PREFIX}${this.position(pos)}: ${msg}`);
  }

  syntaxError(pos: number, msg: string): JsonDecodeError {
    return new JsonDecodeError(`${PREFIX}syntax error ${this.position(pos)}: ${msg}`);
  }

  unexpected(t: Token): JsonDecodeError {
    return this.syntaxError(t.pos, `unexpected token ${this.raw(t)}`);
  }

  private skipSpace(): void {
    const b = this.b;
    while (this.i < b.length && (b[this.i] === 0x20 || b[this.i] === 0x0a || b[this.i] === 0x0d || b[this.i] === 0x09)) this.i++;
  }

  private isValueNext(): boolean {
    const top = this.stack[this.stack.length - 1];
    if (top === undefined) return this.last === NONE;
    if (top === K.ObjectOpen) return (this.last.kind & K.Name) !== 0;
    return (this.last.kind & (K.ArrayOpen | K.Comma)) !== 0;
  }

  peek(): Token {
    if (this.peeked === null) this.peeked = this.readNew();
    return this.peeked;
  }

  read(): Token {
    const p = this.peeked;
    if (p !== null) {
      this.peeked = null;
      return p;
    }
    return this.readNew();
  }

  private readNew(): Token {
    for (;;) {
      const t = this.parseNext();
      switch (t.kind) {
        case K.EOF:
          if (this.stack.length !== 0) throw new JsonDecodeError(PREFIX + "unexpected EOF");
          break;
        case K.Null:
        case K.Bool:
        case K.Number:
          if (!this.isValueNext()) throw this.unexpected(t);
          break;
        case K.String: {
          if (this.isValueNext()) break;
          if ((this.last.kind & (K.ObjectOpen | K.Comma)) === 0) throw this.unexpected(t);
          if (this.i >= this.b.length) throw new JsonDecodeError(PREFIX + "unexpected EOF");
          const c = this.b[this.i]!;
          if (c !== 0x3a) throw this.syntaxError(this.i, `unexpected character ${String.fromCodePoint(decodeRune(this.b, this.i)[0])}, missing ":" after field name`);
          this.i++;
          this.skipSpace();
          const name = { ...t, kind: K.Name };
          this.last = name;
          return name;
        }
        case K.ObjectOpen:
        case K.ArrayOpen:
          if (!this.isValueNext()) throw this.unexpected(t);
          this.stack.push(t.kind);
          break;
        case K.ObjectClose:
        case K.ArrayClose: {
          const open = t.kind === K.ObjectClose ? K.ObjectOpen : K.ArrayOpen;
          if (this.stack.length === 0 || this.last.kind === K.Comma || this.stack[this.stack.length - 1] !== open) throw this.unexpected(t);
          this.stack.pop();
          break;
        }
        case K.Comma:
          if (this.stack.length === 0 || (this.last.kind & (SCALAR | K.ObjectClose | K.ArrayClose)) === 0) throw this.unexpected(t);
          this.last = t;
          continue;
      }
      this.last = t;
      return t;
    }
  }

  private tok(kind: K, n: number, str = "", bool = false): Token {
    const t = { kind, pos: this.i, end: this.i + n, str, bool };
    this.i += n;
    this.skipSpace();
    return t;
  }

  private match(word: string): number {
    const b = this.b;
    for (let j = 0; j < word.length; j++) if (b[this.i + j] !== word.charCodeAt(j)) return 0;
    return isNotDelim(b[this.i + word.length]) ? 0 : word.length;
  }

  private parseNext(): Token {
    this.skipSpace();
    const b = this.b;
    if (this.i >= b.length) return { kind: K.EOF, pos: this.i, end: this.i, str: "", bool: false };
    const c = b[this.i]!;
    let n = 0;
    switch (c) {
      case 0x6e: if ((n = this.match("null"))) return this.tok(K.Null, n); break;
      case 0x74: if ((n = this.match("true"))) return this.tok(K.Bool, n, "", true); break;
      case 0x66: if ((n = this.match("false"))) return this.tok(K.Bool, n, "", false); break;
      case 0x22: {
        const [s, len] = this.parseString();
        return this.tok(K.String, len, s);
      }
      case 0x7b: return this.tok(K.ObjectOpen, 1);
      case 0x7d: return this.tok(K.ObjectClose, 1);
      case 0x5b: return this.tok(K.ArrayOpen, 1);
      case 0x5d: return this.tok(K.ArrayClose, 1);
      case 0x2c: return this.tok(K.Comma, 1);
      default:
        if (c === 0x2d || isDigit(c)) {
          if ((n = numberLength(b, this.i))) return this.tok(K.Number, n);
        }
    }
    // Any run that looks like a non-delimiter, for the message.
    let j = this.i;
    while (j < b.length && j - this.i < 32 && isNotDelim(b[j])) j++;
    const shown = j > this.i ? td.decode(b.subarray(this.i, j)) : String.fromCodePoint(decodeRune(b, this.i)[0]);
    throw this.syntaxError(this.i, `invalid value ${shown}`);
  }

  /** [parsed text, length in bytes including quotes]. */
  private parseString(): [string, number] {
    const b = this.b;
    const start = this.i;
    let i = start + 1;
    let out = "";
    const eof = () => new JsonDecodeError(PREFIX + "unexpected EOF");
    const badEscape = (n: number) => this.syntaxError(start, `invalid escape code ${goQuoteBytes(b.subarray(i, Math.min(i + n, b.length)))} in string`);
    const hex4 = (at: number): number => {
      let v = 0;
      for (let k = at; k < at + 4; k++) {
        const h = b[k];
        if (h === undefined) return -1;
        const d = h >= 0x30 && h <= 0x39 ? h - 0x30 : h >= 0x61 && h <= 0x66 ? h - 0x57 : h >= 0x41 && h <= 0x46 ? h - 0x37 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
      }
      return v;
    };
    while (i < b.length) {
      const c = b[i]!;
      if (c === 0x22) return [out, i + 1 - start];
      if (c < 0x20) throw this.syntaxError(start, `invalid character '${controlName(c)}' in string`);
      if (c === 0x5c) {
        if (i + 1 >= b.length) throw eof();
        const e = b[i + 1]!;
        const simple: Record<number, string> = { 0x22: '"', 0x5c: "\\", 0x2f: "/", 0x62: "\b", 0x66: "\f", 0x6e: "\n", 0x72: "\r", 0x74: "\t" };
        const s = simple[e];
        if (s !== undefined) {
          out += s;
          i += 2;
          continue;
        }
        if (e !== 0x75) throw badEscape(2);
        if (b.length - i < 6) throw eof();
        const v = hex4(i + 2);
        if (v < 0) throw badEscape(6);
        i += 6;
        if (v >= 0xd800 && v < 0xe000) {
          if (b.length - i < 6) throw eof();
          const v2 = hex4(i + 2);
          if (b[i] !== 0x5c || b[i + 1] !== 0x75 || v2 < 0 || v >= 0xdc00 || v2 < 0xdc00 || v2 >= 0xe000) throw badEscape(6);
          out += String.fromCharCode(v, v2);
          i += 6;
          continue;
        }
        out += String.fromCharCode(v);
        continue;
      }
      const [r, w] = decodeRune(b, i);
      if (r === 0xfffd && w === 1) throw this.syntaxError(start, "invalid UTF-8 in string");
      out += String.fromCodePoint(r);
      i += w;
    }
    throw eof();
  }
}

function controlName(c: number): string {
  const named: Record<number, string> = { 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r" };
  return named[c] ?? "\\x" + c.toString(16).padStart(2, "0");
}

// ---------------------------------------------------------------------------
// Numbers

const NUMBER_RE = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;

/** The integer a JSON number denotes, or null if it is not an integer (protojson's normalizeToIntString). */
function integerOf(s: string): bigint | null {
  const m = /^(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/.exec(s);
  if (m === null) return null;
  const neg = m[1] === "-";
  const intp = m[2] === "0" ? "" : m[2]!;
  const frac = (m[3] ?? "").replace(/0+$/, "");
  if (intp === "" && frac === "") return 0n;
  let exp = 0;
  if (m[4] !== undefined) {
    const e = Number(m[4]);
    if (!Number.isSafeInteger(e) || e > 2147483647 || e < -2147483648) return null;
    exp = e;
  }
  let digits: string;
  if (exp >= 0) {
    if (frac.length > exp) return null;
    if (intp.length + exp > 20) return null;
    digits = intp + frac + "0".repeat(exp - frac.length);
  } else {
    if (frac.length > 0) return null;
    const idx = intp.length + exp;
    if (idx < 0) return null;
    if (/[^0]/.test(intp.slice(idx))) return null;
    digits = intp.slice(0, idx);
  }
  // Go's ParseInt("") / ParseInt("-") fail.
  if (digits === "") return null;
  const n = BigInt(digits);
  return neg ? -n : n;
}

/** Go's strings.TrimSpace changes s? (Unicode White_Space.) */
function hasOuterSpace(s: string): boolean {
  return s !== s.replace(/^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g, "");
}

function intFromToken(tz: Tokenizer, t: Token, bits: 32 | 64, signed: boolean): bigint | null {
  let s: string;
  if (t.kind === K.Number) s = tz.raw(t);
  else if (t.kind === K.String) {
    if (hasOuterSpace(t.str) || !NUMBER_RE.test(t.str)) return null;
    s = t.str;
  } else return null;
  const n = integerOf(s);
  if (n === null) return null;
  if (signed) {
    const lim = 1n << BigInt(bits - 1);
    return n < -lim || n >= lim ? null : n;
  }
  return n < 0n || n >= 1n << BigInt(bits) ? null : n;
}

function floatFromToken(tz: Tokenizer, t: Token, bits: 32 | 64): number | null {
  let s: string;
  if (t.kind === K.Number) s = tz.raw(t);
  else if (t.kind === K.String) {
    if (t.str === "NaN") return NaN;
    if (t.str === "Infinity") return Infinity;
    if (t.str === "-Infinity") return -Infinity;
    if (hasOuterSpace(t.str) || !NUMBER_RE.test(t.str)) return null;
    s = t.str;
  } else return null;
  const x = Number(s);
  if (!Number.isFinite(x)) return null;
  if (bits === 32) {
    const f = Math.fround(x);
    return Number.isFinite(f) ? f : null;
  }
  return x;
}

// ---------------------------------------------------------------------------
// Bytes: Go's base64 Std/URL encodings, padded or not, '\r' '\n' skipped.

function bytesFromString(s: string): Uint8Array | null {
  const url = /[-_]/.test(s);
  const padded = s.length % 4 === 0;
  const t = s.replace(/[\r\n]/g, "");
  let body = t;
  if (padded) {
    if (t.length % 4 !== 0) return null;
    if (t.endsWith("==")) {
      body = t.slice(0, -2);
      if (body.length % 4 !== 2) return null;
    } else if (t.endsWith("=")) {
      body = t.slice(0, -1);
      if (body.length % 4 !== 3) return null;
    }
  }
  if (!(url ? /^[A-Za-z0-9_-]*$/ : /^[A-Za-z0-9+/]*$/).test(body)) return null;
  if (body.length % 4 === 1) return null;
  return new Uint8Array(Buffer.from(body, url ? "base64url" : "base64"));
}

// ---------------------------------------------------------------------------
// Messages

function kindName(t: ScalarType | "enum"): string {
  if (t === "enum") return "enum";
  switch (t) {
    case ScalarType.DOUBLE: return "double";
    case ScalarType.FLOAT: return "float";
    case ScalarType.INT64: return "int64";
    case ScalarType.UINT64: return "uint64";
    case ScalarType.INT32: return "int32";
    case ScalarType.FIXED64: return "fixed64";
    case ScalarType.FIXED32: return "fixed32";
    case ScalarType.BOOL: return "bool";
    case ScalarType.STRING: return "string";
    case ScalarType.BYTES: return "bytes";
    case ScalarType.UINT32: return "uint32";
    case ScalarType.SFIXED32: return "sfixed32";
    case ScalarType.SFIXED64: return "sfixed64";
    case ScalarType.SINT32: return "sint32";
    case ScalarType.SINT64: return "sint64";
  }
}

/**
 * Decodes one JSON value (as framed by StreamDecoder) into a message of
 * `desc` the way etcd 3.6's gateway does, or throws JsonDecodeError with its
 * message. `undefined` (an empty body) is an empty request.
 */
export function messageFromProtoJson<Desc extends DescMessage>(desc: Desc, value: JValue | undefined): MessageShape<Desc> {
  const msg = create(desc);
  if (value === undefined) return msg;
  const tz = new Tokenizer(value.buf.subarray(value.node.s, value.node.e));
  readMessage(tz, reflect(desc, msg), 0);
  const t = tz.read();
  if (t.kind !== K.EOF) throw tz.unexpected(t);
  return msg;
}

const RECURSION_LIMIT = 10000;

function readMessage(tz: Tokenizer, r: ReflectMessage, depth: number): void {
  if (depth >= RECURSION_LIMIT) throw new JsonDecodeError(PREFIX + "exceeded max recursion depth");
  const open = tz.read();
  if (open.kind !== K.ObjectOpen) throw tz.unexpected(open);
  const seen = new Set<number>();
  const seenOneofs = new Set<string>();
  for (;;) {
    const t = tz.read();
    if (t.kind === K.ObjectClose) return;
    if (t.kind !== K.Name) throw tz.unexpected(t);
    const f = r.desc.fields.find((x) => x.jsonName === t.str) ?? r.desc.fields.find((x) => x.name === t.str);
    if (f === undefined) {
      skipValue(tz);
      continue;
    }
    if (seen.has(f.number)) throw tz.error(t.pos, `duplicate field ${tz.raw(t)}`);
    seen.add(f.number);
    if (tz.peek().kind === K.Null) {
      tz.read();
      continue;
    }
    if (f.fieldKind === "list") {
      readList(tz, r, f, depth);
      continue;
    }
    if (f.fieldKind === "map") throw new JsonDecodeError(`${PREFIX}unsupported map field ${f.name}`);
    if (f.oneof !== undefined) {
      if (seenOneofs.has(f.oneof.name)) throw tz.error(t.pos, `error parsing ${tz.raw(t)}, oneof ${f.oneof.parent.typeName}.${f.oneof.name} is already set`);
      seenOneofs.add(f.oneof.name);
    }
    if (f.fieldKind === "message") {
      const child = reflect(f.message);
      readMessage(tz, child, depth + 1);
      r.set(f, child);
      continue;
    }
    const v = f.fieldKind === "enum" ? readEnum(tz, f, f.enum) : readScalar(tz, f, f.scalar);
    if (v !== undefined) r.set(f, v);
  }
}

function readList(tz: Tokenizer, r: ReflectMessage, f: DescField & { fieldKind: "list" }, depth: number): void {
  const open = tz.read();
  if (open.kind !== K.ArrayOpen) throw tz.unexpected(open);
  const list = r.get(f) as ReflectList;
  for (;;) {
    if (tz.peek().kind === K.ArrayClose) {
      tz.read();
      return;
    }
    switch (f.listKind) {
      case "message": {
        const child = reflect(f.message);
        readMessage(tz, child, depth + 1);
        list.add(child);
        break;
      }
      case "enum": {
        const v = readEnum(tz, f, f.enum);
        if (v !== undefined) list.add(v);
        break;
      }
      case "scalar":
        list.add(readScalar(tz, f, f.scalar));
        break;
    }
  }
}

function invalid(tz: Tokenizer, t: Token, kind: ScalarType | "enum", f: DescField): JsonDecodeError {
  return tz.error(t.pos, `invalid value for ${kindName(kind)} field ${f.jsonName}: ${tz.raw(t)}`);
}

/** An enum number, or undefined for an unknown name (discarded). */
function readEnum(tz: Tokenizer, f: DescField, e: DescEnum): number | undefined {
  const t = tz.read();
  if (t.kind === K.String) {
    const v = e.values.find((x) => x.name === t.str);
    return v?.number;
  }
  if (t.kind === K.Number) {
    const n = intFromToken(tz, t, 32, true);
    if (n !== null) return Number(n);
  }
  throw invalid(tz, t, "enum", f);
}

function readScalar(tz: Tokenizer, f: DescField, st: ScalarType): unknown {
  const t = tz.read();
  const bad = () => invalid(tz, t, st, f);
  switch (st) {
    case ScalarType.BOOL:
      if (t.kind === K.Bool) return t.bool;
      throw bad();
    case ScalarType.STRING:
      if (t.kind === K.String) return t.str;
      throw bad();
    case ScalarType.BYTES: {
      if (t.kind !== K.String) throw bad();
      const b = bytesFromString(t.str);
      if (b === null) throw bad();
      return b;
    }
    case ScalarType.INT32: case ScalarType.SINT32: case ScalarType.SFIXED32: {
      const n = intFromToken(tz, t, 32, true);
      if (n === null) throw bad();
      return Number(n);
    }
    case ScalarType.UINT32: case ScalarType.FIXED32: {
      const n = intFromToken(tz, t, 32, false);
      if (n === null) throw bad();
      return Number(n);
    }
    case ScalarType.INT64: case ScalarType.SINT64: case ScalarType.SFIXED64: {
      const n = intFromToken(tz, t, 64, true);
      if (n === null) throw bad();
      return n;
    }
    case ScalarType.UINT64: case ScalarType.FIXED64: {
      const n = intFromToken(tz, t, 64, false);
      if (n === null) throw bad();
      return n;
    }
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE: {
      const x = floatFromToken(tz, t, st === ScalarType.FLOAT ? 32 : 64);
      if (x === null) throw bad();
      return x;
    }
  }
}

/** Skips one value of an unknown field (its strings are still checked). */
function skipValue(tz: Tokenizer): void {
  const t = tz.read();
  if (t.kind === K.ObjectOpen) {
    for (;;) {
      const n = tz.read();
      if (n.kind === K.ObjectClose) return;
      if (n.kind !== K.Name) throw tz.unexpected(n);
      skipValue(tz);
    }
  }
  if (t.kind === K.ArrayOpen) {
    for (;;) {
      if (tz.peek().kind === K.ArrayClose) {
        tz.read();
        return;
      }
      skipValue(tz);
    }
  }
  if ((t.kind & SCALAR) === 0) throw tz.unexpected(t);
}

// ---------------------------------------------------------------------------
// Output

/** protojson's string literal: escapes ", \ and control characters only. */
export function protoJsonString(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | null = null;
    if (c < 0x20) {
      esc = c === 0x08 ? "\\b" : c === 0x0c ? "\\f" : c === 0x0a ? "\\n" : c === 0x0d ? "\\r" : c === 0x09 ? "\\t" : "\\u" + c.toString(16).padStart(4, "0");
    } else if (c === 0x22) esc = '\\"';
    else if (c === 0x5c) esc = "\\\\";
    if (esc !== null) {
      out += s.slice(start, i) + esc;
      start = i + 1;
    }
  }
  return out + s.slice(start) + '"';
}
