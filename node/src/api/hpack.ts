// Just enough HPACK (RFC 7541) to find and rewrite one header in a request's
// header block while passing everything else through byte for byte.
//
// The rewriter keeps a mirror of the receiver's dynamic table (names and
// entry sizes; values only as long as needed to size them). When it rewrites
// a literal that the sender asked to index, the receiver stores the rewritten
// (shorter) value; its table then holds entries no larger than the sender's,
// so it evicts no later than the sender does and every index the sender uses
// still names the same entry on the receiving side.
//
// Contract: rewriteHeaderBlock() takes one complete header block (HEADERS plus
// its CONTINUATIONs, payloads concatenated, padding and priority removed) and
// returns the block to forward; it throws HpackError on a block that is not
// valid HPACK (the caller closes the connection, as the HTTP/2 layer would).

import { HUFFMAN_CODES, HUFFMAN_LENGTHS, STATIC_NAMES, STATIC_VALUES } from "./hpack_tables.js";

export class HpackError extends Error {}

/** A node of the Huffman decoding tree: children for bit 0 and 1, or the decoded symbol at a leaf. */
interface HuffNode {
  zero?: HuffNode;
  one?: HuffNode;
  sym?: number;
}

let huffRoot: HuffNode | undefined;

function huffTree(): HuffNode {
  if (huffRoot !== undefined) return huffRoot;
  const root: HuffNode = {};
  for (let sym = 0; sym < 256; sym++) {
    const code = HUFFMAN_CODES[sym]!;
    const len = HUFFMAN_LENGTHS[sym]!;
    let n = root;
    for (let b = len - 1; b >= 0; b--) {
      const bit = Math.floor(code / 2 ** b) % 2;
      const next: HuffNode = (bit === 0 ? n.zero : n.one) ?? {};
      if (bit === 0) n.zero = next;
      else n.one = next;
      n = next;
    }
    n.sym = sym;
  }
  huffRoot = root;
  return root;
}

/** Decodes a Huffman-coded string; the padding must be at most 7 one-bits (EOS prefix). */
export function huffmanDecode(src: Uint8Array): Buffer {
  const root = huffTree();
  const out: number[] = [];
  let n = root;
  let depth = 0;
  let allOnes = true;
  for (const byte of src) {
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >> b) & 1;
      const next = bit === 0 ? n.zero : n.one;
      if (next === undefined) throw new HpackError("invalid Huffman code");
      depth++;
      allOnes &&= bit === 1;
      if (next.sym !== undefined) {
        out.push(next.sym);
        n = root;
        depth = 0;
        allOnes = true;
      } else {
        n = next;
      }
    }
  }
  if (depth > 7 || !allOnes) throw new HpackError("invalid Huffman padding");
  return Buffer.from(out);
}

/** Reads an HPACK integer with an N-bit prefix at `pos`; returns [value, next position]. */
export function readInt(buf: Uint8Array, pos: number, prefixBits: number): [number, number] {
  if (pos >= buf.length) throw new HpackError("truncated integer");
  const max = (1 << prefixBits) - 1;
  let v = buf[pos]! & max;
  pos++;
  if (v < max) return [v, pos];
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new HpackError("truncated integer");
    const b = buf[pos++]!;
    v += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (v > 0x7fff_ffff) throw new HpackError("integer too large");
    if ((b & 0x80) === 0) return [v, pos];
  }
}

/** Encodes an HPACK integer; `first` holds the representation's flag bits above the prefix. */
export function writeInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let rest = value - max;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return out;
}

/** Reads a string literal at `pos`; returns [decoded bytes, next position]. */
function readString(buf: Uint8Array, pos: number): [Buffer, number] {
  if (pos >= buf.length) throw new HpackError("truncated string");
  const huffman = (buf[pos]! & 0x80) !== 0;
  const [len, start] = readInt(buf, pos, 7);
  const end = start + len;
  if (end > buf.length) throw new HpackError("truncated string");
  const raw = buf.subarray(start, end);
  return [huffman ? huffmanDecode(raw) : Buffer.from(raw), end];
}

/** A string literal, not Huffman-coded. */
function encodeString(s: Buffer): Buffer {
  return Buffer.concat([Buffer.from(writeInt(s.length, 7, 0)), s]);
}

/** The receiver's dynamic table, newest entry first. */
export class DynamicTable {
  private entries: { name: string; size: number }[] = [];
  private used = 0;
  /** The receiver's SETTINGS_HEADER_TABLE_SIZE (4096 unless the server changes it). */
  constructor(private limit = 4096) {}

  get maxSize(): number {
    return this.limit;
  }

  resize(size: number): void {
    this.limit = size;
    this.evict();
  }

  add(name: Buffer, value: Buffer): void {
    const size = 32 + name.length + value.length;
    this.entries.unshift({ name: name.toString("latin1"), size });
    this.used += size;
    this.evict();
  }

  /** Name of the entry at HPACK index `i` (1..61 static, then dynamic). */
  name(i: number): string {
    if (i >= 1 && i <= STATIC_NAMES.length) return STATIC_NAMES[i - 1]!;
    const e = this.entries[i - STATIC_NAMES.length - 1];
    if (e === undefined) throw new HpackError(`header index ${i} out of range`);
    return e.name;
  }

  private evict(): void {
    while (this.used > this.limit && this.entries.length > 0) this.used -= this.entries.pop()!.size;
  }
}

/**
 * Rewrites the values of header `name` in a header block with `fix` (which
 * returns undefined to leave a value alone). Returns the block to forward and
 * the original values seen for that header.
 */
export function rewriteHeaderBlock(
  block: Uint8Array,
  table: DynamicTable,
  name: string,
  fix: (value: string) => string | undefined,
): { block: Buffer; seen: string[]; changed: boolean } {
  const parts: Uint8Array[] = [];
  const seen: string[] = [];
  let changed = false;
  let pos = 0;
  while (pos < block.length) {
    const start = pos;
    const b = block[pos]!;
    if ((b & 0x80) !== 0) {
      // Indexed header field: the receiver's table already holds what it needs.
      const [i, next] = readInt(block, pos, 7);
      if (i === 0) throw new HpackError("index 0");
      table.name(i);
      pos = next;
      parts.push(block.subarray(start, pos));
      continue;
    }
    if ((b & 0xe0) === 0x20) {
      // Dynamic table size update.
      const [size, next] = readInt(block, pos, 5);
      if (size > 4096) throw new HpackError("table size update above the limit");
      table.resize(size);
      pos = next;
      parts.push(block.subarray(start, pos));
      continue;
    }
    // A literal: with incremental indexing (01), without (0000) or never indexed (0001).
    const indexing = (b & 0xc0) === 0x40;
    const prefix = indexing ? 6 : 4;
    const [idx, afterIdx] = readInt(block, pos, prefix);
    let fieldName: Buffer;
    let afterName: number;
    if (idx === 0) {
      [fieldName, afterName] = readString(block, afterIdx);
    } else {
      fieldName = Buffer.from(table.name(idx), "latin1");
      afterName = afterIdx;
    }
    const [value, afterValue] = readString(block, afterName);
    pos = afterValue;
    let stored = value;
    if (fieldName.toString("latin1") === name) {
      const v = value.toString("latin1");
      seen.push(v);
      const fixed = fix(v);
      if (fixed !== undefined && fixed !== v) {
        stored = Buffer.from(fixed, "latin1");
        parts.push(block.subarray(start, afterName), encodeString(stored));
        changed = true;
      } else {
        parts.push(block.subarray(start, pos));
      }
    } else {
      parts.push(block.subarray(start, pos));
    }
    if (indexing) table.add(fieldName, stored);
  }
  return { block: changed ? Buffer.concat(parts) : Buffer.from(block), seen, changed };
}

/**
 * A header block decoder for one connection's requests (RFC 7541 section 3):
 * keeps the dynamic table with values, as the sender's encoder expects.
 * decode() takes one complete header block and returns its fields in order,
 * names and values as latin1 strings (the bytes, one char each, as Node's
 * HTTP/2 gives them); it throws HpackError on anything that is not valid HPACK,
 * after which the connection must be closed (the table is then unusable).
 */
export class HpackDecoder {
  private entries: { name: string; value: string; size: number }[] = [];
  private used = 0;
  private limit: number;

  /**
   * `maxTableSize`: our SETTINGS_HEADER_TABLE_SIZE (4096 unless we announce another).
   * `maxListSize`: the largest decoded header list, counted as RFC 7541 counts table
   * entries (32 + name + value octets per field); a block over it throws, so a small
   * block that repeats a large table entry cannot make us build a huge list.
   */
  constructor(
    private readonly maxTableSize = 4096,
    private readonly maxListSize = Number.POSITIVE_INFINITY,
  ) {
    this.limit = maxTableSize;
  }

  decode(block: Uint8Array): [string, string][] {
    const out: [string, string][] = [];
    let pos = 0;
    let sizeUpdateAllowed = true;
    let listSize = 0;
    const field = (name: string, value: string): void => {
      listSize += 32 + name.length + value.length;
      if (listSize > this.maxListSize) throw new HpackError(`header list larger than ${this.maxListSize} bytes`);
      out.push([name, value]);
    };
    while (pos < block.length) {
      const b = block[pos]!;
      if ((b & 0x80) !== 0) {
        const [i, next] = readInt(block, pos, 7);
        const [n, v] = this.entry(i);
        field(n, v);
        pos = next;
        sizeUpdateAllowed = false;
        continue;
      }
      if ((b & 0xe0) === 0x20) {
        // A dynamic table size update: only at the start of a block (section 4.2).
        if (!sizeUpdateAllowed) throw new HpackError("table size update after a header field");
        const [size, next] = readInt(block, pos, 5);
        if (size > this.maxTableSize) throw new HpackError("table size update above the limit");
        this.limit = size;
        this.evict();
        pos = next;
        continue;
      }
      sizeUpdateAllowed = false;
      const indexing = (b & 0xc0) === 0x40;
      const [idx, afterIdx] = readInt(block, pos, indexing ? 6 : 4);
      let name: string;
      let nameLen: number;
      let afterName: number;
      if (idx === 0) {
        const [n, p] = readString(block, afterIdx);
        name = n.toString("latin1");
        nameLen = n.length;
        afterName = p;
      } else {
        name = this.entry(idx)[0];
        nameLen = name.length;
        afterName = afterIdx;
      }
      const [v, afterValue] = readString(block, afterName);
      const value = v.toString("latin1");
      pos = afterValue;
      field(name, value);
      if (indexing) this.add(name, value, 32 + nameLen + v.length);
    }
    return out;
  }

  private entry(i: number): [string, string] {
    if (i === 0) throw new HpackError("index 0");
    if (i <= STATIC_NAMES.length) return [STATIC_NAMES[i - 1]!, STATIC_VALUES[i - 1]!];
    const e = this.entries[i - STATIC_NAMES.length - 1];
    if (e === undefined) throw new HpackError(`header index ${i} out of range`);
    return [e.name, e.value];
  }

  private add(name: string, value: string, size: number): void {
    if (size > this.limit) {
      // Larger than the whole table: it empties the table and is not stored (section 4.4).
      this.entries = [];
      this.used = 0;
      return;
    }
    this.entries.unshift({ name, value, size });
    this.used += size;
    this.evict();
  }

  private evict(): void {
    while (this.used > this.limit && this.entries.length > 0) this.used -= this.entries.pop()!.size;
  }
}

/**
 * Encodes header fields for a response without touching the peer's dynamic table:
 * `:status` from the static table when it is there, every other field as a literal
 * "without indexing" (a static name index where one exists), strings not
 * Huffman-coded. Names must be lower-case; values are written as latin1.
 */
export function encodeHeaderBlock(fields: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    if (name === ":status") {
      const s = STATUS_INDEX.get(value);
      if (s !== undefined) {
        parts.push(Buffer.from([0x80 | s]));
        continue;
      }
    }
    const ni = STATIC_NAME_INDEX.get(name);
    if (ni !== undefined) parts.push(Buffer.from(writeInt(ni, 4, 0x00)));
    else parts.push(Buffer.from([0x00]), encodeString(Buffer.from(name, "latin1")));
    parts.push(encodeString(Buffer.from(value, "latin1")));
  }
  return Buffer.concat(parts);
}

const STATUS_INDEX = new Map<string, number>();
const STATIC_NAME_INDEX = new Map<string, number>();
for (let i = STATIC_NAMES.length; i >= 1; i--) {
  STATIC_NAME_INDEX.set(STATIC_NAMES[i - 1]!, i); // the lowest index of a name wins
  if (STATIC_NAMES[i - 1] === ":status") STATUS_INDEX.set(STATIC_VALUES[i - 1]!, i);
}
