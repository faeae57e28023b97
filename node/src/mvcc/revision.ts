// Revisions: every change to the key space is identified by (main, sub).
// main is the store revision of the request that made the change (one per
// write request or txn); sub orders the changes inside that request.
// Both are bigint (int64 on the wire).

export interface Revision {
  readonly main: bigint;
  readonly sub: bigint;
}

export function rev(main: bigint, sub: bigint = 0n): Revision {
  return { main, sub };
}

/** Compares two revisions; negative if a < b. */
export function compareRev(a: Revision, b: Revision): number {
  if (a.main !== b.main) return a.main < b.main ? -1 : 1;
  if (a.sub !== b.sub) return a.sub < b.sub ? -1 : 1;
  return 0;
}

/** 16 bytes, big-endian main then sub: byte order equals revision order. */
export const REV_BYTES = 16;

export function encodeRev(r: Revision, prefix?: number): Buffer {
  const off = prefix === undefined ? 0 : 1;
  const b = Buffer.allocUnsafe(REV_BYTES + off);
  if (prefix !== undefined) b[0] = prefix;
  b.writeBigInt64BE(r.main, off);
  b.writeBigInt64BE(r.sub, off + 8);
  return b;
}

/**
 * One shared 0n and 1n: a BigInt is a heap object, and every key in the index
 * holds several, most of them a sub-revision of 0 or a version of 1; sharing
 * those is a measurable part of the index's memory with many keys.
 */
export const ZERO = 0n;
export const ONE = 1n;

export function decodeRev(b: Uint8Array, offset = 0): Revision {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const sub = buf.readBigInt64BE(offset + 8);
  return { main: buf.readBigInt64BE(offset), sub: sub === 0n ? ZERO : sub };
}
