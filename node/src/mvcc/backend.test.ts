import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Backend, type BatchOp } from "./backend.js";

async function withBackend(fn: (be: Backend) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "etcdts-backend-"));
  try {
    const be = await Backend.open(join(dir, "db"));
    try {
      await fn(be);
    } finally {
      await be.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const key = (i: number): Buffer => {
  const b = Buffer.alloc(5);
  b[0] = 0x6b;
  b.writeUInt32BE(i, 1);
  return b;
};

test("scan: every entry of [gte, lt) once, in key order, in batches, from one snapshot", async () => {
  await withBackend(async (be) => {
    const ops: BatchOp[] = [];
    for (let i = 0; i < 2500; i++) ops.push({ type: "put", key: key(i), value: Buffer.from(String(i)) });
    ops.push({ type: "put", key: Buffer.from([0x6c, 1]), value: Buffer.from("outside") });
    void be.write(ops, false); // not awaited: a scan sees the writes called before it
    const seen: number[] = [];
    const sizes: number[] = [];
    let wrote: Promise<void> | undefined;
    await be.scan(key(10), key(2400), (batch) => {
      sizes.push(batch.length);
      for (const [k, v] of batch) {
        const i = k.readUInt32BE(1);
        assert.equal(v.toString(), String(i), `entry ${i}`);
        seen.push(i);
      }
      // Written while the scan runs, ahead of where it is: later batches do not see it.
      wrote ??= be.write([{ type: "put", key: key(2000), value: Buffer.from("changed") }, { type: "del", key: key(2100) }], false);
    });
    await wrote;
    assert.deepEqual(seen, Array.from({ length: 2390 }, (_, j) => j + 10));
    assert.ok(sizes.length >= 3, `read in batches: ${sizes.join(",")}`);
    assert.equal((await be.get(key(2000)))?.toString(), "changed");
    assert.equal(await be.get(key(2100)), undefined);
  });
});

test("scan: an error thrown by the callback stops the scan and reaches the caller; the database stays usable", async () => {
  await withBackend(async (be) => {
    const ops: BatchOp[] = [];
    for (let i = 0; i < 3000; i++) ops.push({ type: "put", key: key(i), value: Buffer.from("v") });
    await be.write(ops, false);
    let calls = 0;
    await assert.rejects(
      be.scan(key(0), key(3000), () => {
        calls++;
        throw new Error("stop here");
      }),
      /stop here/,
    );
    assert.equal(calls, 1);
    let n = 0;
    await be.scan(key(0), key(3000), (batch) => void (n += batch.length));
    assert.equal(n, 3000);
  });
});
