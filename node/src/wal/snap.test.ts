// The snapshotter: atomic saves, newest-valid load with fallback past corrupt
// files, the WAL-marker filter, and release of old files.
import assert from "node:assert/strict";
import { test } from "node:test";
import { SeededRand } from "../raft/rand.js";
import type { Snapshot } from "../raft/types.js";
import { SnapCorruptError } from "./errors.js";
import { decodeSnapFile, encodeSnapFile, snapName, Snapshotter } from "./snap.js";
import { SimFs } from "./sim_fs.js";
import { simWithDir, snapMeta } from "./wal.testlib.js";

const DIR = "/data/snap";

function snap(index: number, term: number, data = `state@${index}`): Snapshot {
  return { metadata: snapMeta(index, term, [1n, 2n, 3n]), data: new TextEncoder().encode(data) };
}

function same(a: Snapshot | undefined, b: Snapshot): void {
  assert.ok(a !== undefined);
  assert.deepEqual(a.metadata, b.metadata);
  assert.deepEqual(Buffer.from(a.data), Buffer.from(b.data));
}

async function flipByte(fs: SimFs, path: string, at: number): Promise<void> {
  const d = await fs.readFile(path);
  d[at] = d[at]! ^ 0x40;
  fs.setBytes(path, d);
}

test("snapshot files: encode/decode round trip, and every single-byte flip is detected", () => {
  const s = snap(12, 3, "some application state");
  const b = encodeSnapFile(s);
  const back = decodeSnapFile(b);
  assert.ok(typeof back !== "string");
  same(back, s);
  for (let i = 0; i < b.length; i++) {
    const c = Buffer.from(b);
    c[i] = c[i]! ^ 1;
    assert.equal(typeof decodeSnapFile(c), "string", `flip at ${i}`);
  }
  assert.equal(typeof decodeSnapFile(b.subarray(0, b.length - 1)), "string", "cut short");
  assert.equal(typeof decodeSnapFile(Buffer.concat([b, Buffer.alloc(1)])), "string", "extra byte");
});

test("save then load: the newest snapshot by index; none gives undefined", async () => {
  const fs = await simWithDir();
  const s = new Snapshotter(DIR, { fs });
  assert.equal(await s.load(), undefined);
  await s.save(snap(5, 1));
  await s.save(snap(20, 2));
  await s.save(snap(10, 2));
  same(await s.load(), snap(20, 2));
  assert.deepEqual(await fs.readdir(DIR), [snapName(1n, 5n), snapName(2n, 10n), snapName(2n, 20n)]);
  await assert.rejects(s.save(snap(0, 0)), RangeError);
});

test("a corrupt newest file is renamed to .broken and the previous one is loaded", async () => {
  const fs = await simWithDir();
  const s = new Snapshotter(DIR, { fs });
  await s.save(snap(5, 1));
  await s.save(snap(9, 1));
  await flipByte(fs, `${DIR}/${snapName(1n, 9n)}`, 40);
  same(await s.load(), snap(5, 1));
  assert.deepEqual(await fs.readdir(DIR), [snapName(1n, 5n), `${snapName(1n, 9n)}.broken`]);
  // A file whose name disagrees with its content is corrupt too.
  const other = await fs.readFile(`${DIR}/${snapName(1n, 5n)}`);
  fs.setBytes(`${DIR}/${snapName(1n, 7n)}`, other);
  same(await s.load(), snap(5, 1));
  assert.ok((await fs.readdir(DIR)).includes(`${snapName(1n, 7n)}.broken`));
});

test("only corrupt files: SnapCorruptError naming the newest", async () => {
  const fs = await simWithDir();
  const s = new Snapshotter(DIR, { fs });
  await s.save(snap(3, 1));
  await s.save(snap(4, 1));
  await flipByte(fs, `${DIR}/${snapName(1n, 3n)}`, 0);
  fs.setBytes(`${DIR}/${snapName(1n, 4n)}`, new Uint8Array(10));
  await assert.rejects(s.load(), (e) => e instanceof SnapCorruptError && e.file === `${DIR}/${snapName(1n, 4n)}` && /too short/.test(e.reason));
  // Both were moved aside; a second load finds nothing.
  assert.equal(await s.load(), undefined);
});

test("load(acceptable) returns the newest snapshot that matches a WAL marker", async () => {
  const fs = await simWithDir();
  const s = new Snapshotter(DIR, { fs });
  await s.save(snap(5, 1));
  await s.save(snap(9, 2));
  await s.save(snap(12, 2));
  same(await s.load([snapMeta(5, 1), snapMeta(9, 2)]), snap(9, 2));
  // Same index and term but another membership: not the snapshot the marker describes.
  same(await s.load([snapMeta(5, 1), snapMeta(9, 2, [1n])]), snap(5, 1));
  assert.equal(await s.load([snapMeta(7, 1)]), undefined);
  assert.equal((await fs.readdir(DIR)).length, 3, "nothing was renamed");
});

test("releaseBefore removes older snapshot files only", async () => {
  const fs = await simWithDir();
  const s = new Snapshotter(DIR, { fs });
  for (const [i, t] of [[3, 1], [6, 1], [9, 2]] as const) await s.save(snap(i, t));
  await s.releaseBefore(6n);
  assert.deepEqual(await fs.readdir(DIR), [snapName(1n, 6n), snapName(2n, 9n)]);
  await s.releaseBefore(100n);
  assert.deepEqual(await fs.readdir(DIR), []);
});

test("a crash during save leaves the old snapshot or the complete new one, never a broken file", async () => {
  for (let seed = 1; seed <= 60; seed++) {
    const rand = new SeededRand(seed);
    let fs = await simWithDir();
    const s = new Snapshotter(DIR, { fs });
    await s.save(snap(5, 1));
    let crashed: SimFs | undefined;
    const live = fs;
    fs.onSync = async () => {
      if (rand.chance(0.5)) crashed ??= live.crash(rand);
    };
    let saved = false;
    try {
      await s.save(snap(8, 2, "x".repeat(rand.intn(2000))));
      saved = true;
    } catch {
      /* crashed */
    }
    fs = crashed ?? live.crash(rand);
    const got = await new Snapshotter(DIR, { fs }).load();
    assert.ok(got !== undefined, `seed ${seed}`);
    if (saved) assert.equal(got.metadata.index, 8n, `seed ${seed}: a saved snapshot was lost`);
    else assert.ok(got.metadata.index === 5n || got.metadata.index === 8n, `seed ${seed}`);
    assert.ok(!(await fs.readdir(DIR)).some((n) => n.endsWith(".broken") || n.endsWith(".tmp")), `seed ${seed}: ${await fs.readdir(DIR)}`);
  }
});
