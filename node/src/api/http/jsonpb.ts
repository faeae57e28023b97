// JSON <-> protobuf-es messages, the way etcd's gateway (grpc-gateway v1 with
// golang/protobuf's jsonpb, OrigName: true, EmitDefaults: false,
// AllowUnknownFields: true) reads requests and writes responses.
//
// Reading: fields are matched by proto name or lowerCamel JSON name (camel
// wins when both appear); unknown fields are ignored; int64/uint64 (and any
// integer) may be a number or a quoted number; enums a name or a number;
// bytes standard base64; null leaves a field unset. Errors carry the exact
// text etcd 3.4 returns (Go's encoding/json messages with Go type names such
// as []uint8, int64, etcdserverpb.RangeRequest_SortOrder).
//
// Writing: proto field names, declaration order, zero values / empty lists /
// unset messages omitted, a set oneof member always written, 64-bit integers
// as strings, enums by name (unknown numbers bare), bytes as padded base64,
// strings escaped like Go's json.Marshal (HTML-safe), no whitespace.

import { ScalarType, create } from "@bufbuild/protobuf";
import type { DescEnum, DescField, DescMessage, MessageShape } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import type { ReflectList, ReflectMessage } from "@bufbuild/protobuf/reflect";
import {
  base64Encode,
  checkValid,
  goBase64Decode,
  goJsonString,
  goQuoteBytes,
  parseValid,
  unquoteBytes,
  utf8Decode,
} from "./gojson.js";
import type { JNode, JValue } from "./gojson.js";

/** A request body that etcd's gateway would reject; `message` is etcd's text. */
export class JsonDecodeError extends Error {
  override readonly name = "JsonDecodeError";
}

// ---------------------------------------------------------------------------
// Go type names (they appear in Go's "cannot unmarshal" messages)

function goTypeOfScalar(t: ScalarType): string {
  switch (t) {
    case ScalarType.DOUBLE: return "float64";
    case ScalarType.FLOAT: return "float32";
    case ScalarType.INT64: case ScalarType.SINT64: case ScalarType.SFIXED64: return "int64";
    case ScalarType.UINT64: case ScalarType.FIXED64: return "uint64";
    case ScalarType.INT32: case ScalarType.SINT32: case ScalarType.SFIXED32: return "int32";
    case ScalarType.UINT32: case ScalarType.FIXED32: return "uint32";
    case ScalarType.BOOL: return "bool";
    case ScalarType.STRING: return "string";
    case ScalarType.BYTES: return "[]uint8";
  }
}

/** gogo/golang protobuf's Go name of an enum: package.Outer_Inner. */
function goTypeOfEnum(e: DescEnum): string {
  const pkg = e.file.proto.package;
  const rest = pkg && e.typeName.startsWith(pkg + ".") ? e.typeName.slice(pkg.length + 1) : e.typeName;
  return (pkg ? pkg + "." : "") + rest.replace(/\./g, "_");
}

function kindWord(n: JNode): string {
  switch (n.k) {
    case "obj": return "object";
    case "arr": return "array";
    case "str": return "string";
    case "num": return "number";
    case "true": case "false": return "bool";
    case "null": return "null";
  }
}

function typeError(what: string, goType: string): JsonDecodeError {
  return new JsonDecodeError(`json: cannot unmarshal ${what} into Go value of type ${goType}`);
}

const dec = new TextDecoder();
function text(v: Uint8Array, n: JNode): string {
  return dec.decode(v.subarray(n.s, n.e));
}

// ---------------------------------------------------------------------------
// Reading

/**
 * Decodes one JSON value (as framed by StreamDecoder) into a message of
 * `desc`, or throws JsonDecodeError with etcd's message.
 */
export function messageFromJson<Desc extends DescMessage>(desc: Desc, value: JValue | undefined): MessageShape<Desc> {
  const msg = create(desc);
  if (value === undefined) return msg;
  const r = reflect(desc, msg);
  // The top-level message is a struct, not a pointer: null means "empty".
  if (value.node.k !== "null") fillMessage(r, value.buf, value.node);
  return msg;
}

function fillMessage(r: ReflectMessage, buf: Uint8Array, node: JNode): void {
  if (node.k !== "obj") throw typeError(kindWord(node), "map[string]json.RawMessage");
  const fields = new Map<string, JNode>();
  for (const [k, v] of node.members) fields.set(k, v);
  const consume = (f: DescField): JNode | undefined => {
    const orig = fields.get(f.name);
    const camel = fields.get(f.jsonName);
    fields.delete(f.name);
    fields.delete(f.jsonName);
    return camel ?? orig;
  };
  for (const f of r.desc.fields) {
    if (f.oneof !== undefined) continue;
    const v = consume(f);
    if (v !== undefined) setField(r, f, buf, v);
  }
  if (fields.size === 0) return;
  for (const f of r.desc.fields) {
    if (f.oneof === undefined) continue;
    const v = consume(f);
    if (v === undefined) continue;
    // Go allocates the oneof wrapper even for null: a scalar member becomes
    // set to its zero value, a message member stays nil (i.e. unset).
    if (v.k === "null") {
      if (f.fieldKind === "scalar") r.set(f, zeroScalar(f.scalar));
      else if (f.fieldKind === "enum") r.set(f, 0);
      continue;
    }
    setField(r, f, buf, v);
  }
}

function setField(r: ReflectMessage, f: DescField, buf: Uint8Array, v: JNode): void {
  switch (f.fieldKind) {
    case "message": {
      if (v.k === "null") return;
      const child = reflect(f.message);
      fillMessage(child, buf, v);
      r.set(f, child);
      return;
    }
    case "enum": {
      const x = readEnum(f.enum, buf, v);
      if (x !== undefined) r.set(f, x);
      return;
    }
    case "scalar": {
      const x = readScalar(f.scalar, buf, v);
      if (x !== undefined) r.set(f, x);
      return;
    }
    case "list": {
      if (v.k === "null") return;
      if (v.k !== "arr") throw typeError(kindWord(v), "[]json.RawMessage");
      const list = r.get(f) as ReflectList;
      for (const item of v.items) {
        switch (f.listKind) {
          case "message": {
            const child = reflect(f.message);
            if (item.k !== "null") fillMessage(child, buf, item);
            list.add(child);
            break;
          }
          case "enum":
            list.add(readEnum(f.enum, buf, item) ?? 0);
            break;
          case "scalar":
            list.add(readScalar(f.scalar, buf, item) ?? zeroScalar(f.scalar));
            break;
        }
      }
      return;
    }
    case "map":
      // etcd's API has no map fields.
      throw new JsonDecodeError(`unsupported map field ${f.name}`);
  }
}

function zeroScalar(t: ScalarType): unknown {
  switch (t) {
    case ScalarType.BOOL: return false;
    case ScalarType.STRING: return "";
    case ScalarType.BYTES: return new Uint8Array(0);
    case ScalarType.INT64: case ScalarType.SINT64: case ScalarType.SFIXED64:
    case ScalarType.UINT64: case ScalarType.FIXED64:
      return 0n;
    default:
      return 0;
  }
}

function readEnum(e: DescEnum, buf: Uint8Array, v: JNode): number | undefined {
  const goType = goTypeOfEnum(e);
  if (v.k === "str") {
    // Names are matched on the raw bytes between the quotes (no unescaping).
    const raw = buf.subarray(v.s + 1, v.e - 1);
    const name = dec.decode(raw);
    const ev = e.values.find((x) => x.name === name);
    if (ev === undefined) {
      throw new JsonDecodeError(`unknown value ${goQuoteBytes(raw)} for enum ${goType}`);
    }
    return ev.number;
  }
  const n = readInteger(buf, v, goType, 32, true);
  return n === undefined ? undefined : Number(n);
}

function readScalar(t: ScalarType, buf: Uint8Array, v: JNode): unknown {
  const goType = goTypeOfScalar(t);
  switch (t) {
    case ScalarType.BYTES:
      return readBytes(buf, v);
    case ScalarType.STRING:
      if (v.k === "null") return undefined;
      if (v.k !== "str") throw typeError(kindWord(v), goType);
      return utf8Decode(unquoteBytes(buf.subarray(v.s, v.e)));
    case ScalarType.BOOL:
      if (v.k === "null") return undefined;
      if (v.k === "true") return true;
      if (v.k === "false") return false;
      throw typeError(kindWord(v), goType);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return readFloat(buf, v, goType);
    case ScalarType.INT64: case ScalarType.SINT64: case ScalarType.SFIXED64: {
      return readInteger(buf, v, goType, 64, true);
    }
    case ScalarType.UINT64: case ScalarType.FIXED64:
      return readInteger(buf, v, goType, 64, false);
    case ScalarType.INT32: case ScalarType.SINT32: case ScalarType.SFIXED32: {
      const n = readInteger(buf, v, goType, 32, true);
      return n === undefined ? undefined : Number(n);
    }
    case ScalarType.UINT32: case ScalarType.FIXED32: {
      const n = readInteger(buf, v, goType, 32, false);
      return n === undefined ? undefined : Number(n);
    }
  }
}

/**
 * jsonpb drops the quotes around a quoted number and hands the rest to
 * json.Unmarshal, so "abc" fails as a syntax error and "[1]" as an array.
 */
function unquoteNumber(buf: Uint8Array, v: JNode): JValue {
  const inner = buf.subarray(v.s + 1, v.e - 1);
  const err = checkValid(inner);
  if (err !== null) throw new JsonDecodeError(err);
  return parseValid(inner);
}

function readInteger(buf: Uint8Array, v: JNode, goType: string, bits: 32 | 64, signed: boolean): bigint | undefined {
  if (v.k === "str") {
    const inner = unquoteNumber(buf, v);
    buf = inner.buf;
    v = inner.node;
  }
  if (v.k === "null") return undefined;
  if (v.k !== "num") throw typeError(kindWord(v), goType);
  const s = text(buf, v);
  const bad = () => typeError(`number ${s}`, goType);
  if (!/^-?[0-9]+$/.test(s)) throw bad();
  const n = BigInt(s);
  if (signed) {
    const lim = 1n << BigInt(bits - 1);
    if (n < -lim || n >= lim) throw bad();
  } else {
    if (s.startsWith("-") || n >= 1n << BigInt(bits)) throw bad();
  }
  return n;
}

function readFloat(buf: Uint8Array, v: JNode, goType: string): number | undefined {
  if (v.k === "str") {
    const s = text(buf, v);
    if (s === '"NaN"') return NaN;
    if (s === '"Infinity"') return Infinity;
    if (s === '"-Infinity"') return -Infinity;
    const inner = unquoteNumber(buf, v);
    buf = inner.buf;
    v = inner.node;
  }
  if (v.k === "null") return undefined;
  if (v.k !== "num") throw typeError(kindWord(v), goType);
  const s = text(buf, v);
  const x = Number(s);
  const max = goType === "float32" ? 3.4028234663852886e38 : Number.MAX_VALUE;
  if (!Number.isFinite(x) || Math.abs(x) > max) throw typeError(`number ${s}`, goType);
  return x;
}

function readBytes(buf: Uint8Array, v: JNode): Uint8Array | undefined {
  switch (v.k) {
    case "null":
      return undefined;
    case "str": {
      const r = goBase64Decode(unquoteBytes(buf.subarray(v.s, v.e)));
      if ("error" in r) throw new JsonDecodeError(r.error);
      return r.bytes;
    }
    case "arr": {
      // Go also accepts an array of small numbers for []byte.
      const out = new Uint8Array(v.items.length);
      v.items.forEach((item, i) => {
        if (item.k === "null") return;
        if (item.k !== "num") throw typeError(kindWord(item), "uint8");
        const s = text(buf, item);
        if (!/^[0-9]+$/.test(s) || Number(s) > 255) throw typeError(`number ${s}`, "uint8");
        out[i] = Number(s);
      });
      return out;
    }
    default:
      throw typeError(kindWord(v), "[]uint8");
  }
}

// ---------------------------------------------------------------------------
// Writing

/**
 * Serialises a message as etcd 3.4's gateway does. etcd 3.6's protojson
 * writes the same shape but escapes strings differently: pass its string
 * quoting as `quote`.
 */
export function messageToJson<Desc extends DescMessage>(desc: Desc, msg: MessageShape<Desc>, quote: (s: string) => string = goJsonString): string {
  const out: string[] = [];
  const q = quoteString;
  quoteString = quote;
  try {
    writeMessage(reflect(desc, msg), out);
  } finally {
    quoteString = q;
  }
  return out.join("");
}

let quoteString: (s: string) => string = goJsonString;

function writeMessage(r: ReflectMessage, out: string[]): void {
  out.push("{");
  let first = true;
  const emit = (f: DescField) => {
    if (!first) out.push(",");
    first = false;
    out.push(JSON.stringify(f.name), ":");
    writeFieldValue(r, f, out);
  };
  for (const m of r.desc.members) {
    if (m.kind === "oneof") {
      const f = r.oneofCase(m);
      if (f !== undefined) emit(f);
    } else if (r.isSet(m)) {
      emit(m);
    }
  }
  out.push("}");
}

function writeFieldValue(r: ReflectMessage, f: DescField, out: string[]): void {
  switch (f.fieldKind) {
    case "message":
      writeMessage(r.get(f) as ReflectMessage, out);
      return;
    case "enum":
      out.push(enumText(f.enum, r.get(f) as number));
      return;
    case "scalar":
      out.push(scalarText(f.scalar, r.get(f)));
      return;
    case "list": {
      const list = r.get(f) as ReflectList;
      out.push("[");
      let i = 0;
      for (const item of list) {
        if (i++ > 0) out.push(",");
        if (f.listKind === "message") writeMessage(item as ReflectMessage, out);
        else if (f.listKind === "enum") out.push(enumText(f.enum, item as number));
        else out.push(scalarText(f.scalar, item));
      }
      out.push("]");
      return;
    }
    case "map":
      out.push("{}");
      return;
  }
}

function enumText(e: DescEnum, n: number): string {
  const v = e.value[n];
  return v === undefined ? String(n) : `"${v.name}"`;
}

function scalarText(t: ScalarType, v: unknown): string {
  switch (t) {
    case ScalarType.STRING:
      return quoteString(v as string);
    case ScalarType.BYTES:
      return `"${base64Encode(v as Uint8Array)}"`;
    case ScalarType.BOOL:
      return v ? "true" : "false";
    case ScalarType.INT64: case ScalarType.SINT64: case ScalarType.SFIXED64:
    case ScalarType.UINT64: case ScalarType.FIXED64:
      return `"${String(v)}"`;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT: {
      const x = v as number;
      if (Number.isNaN(x)) return '"NaN"';
      if (x === Infinity) return '"Infinity"';
      if (x === -Infinity) return '"-Infinity"';
      return JSON.stringify(x);
    }
    default:
      return String(v);
  }
}
