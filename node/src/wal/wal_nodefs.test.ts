// The WAL and the snapshotter on the real file system (NodeFs) in a temp dir:
// the same code path as production, including a segment file cut mid-record.
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { WalCorruptError, WalExistsError } from "./errors.js";
import { Snapshotter } from "./snap.js";
import { Wal } from "./wal.js";
import { ent, ents, hs, META, Model, snapMeta, stateKey } from "./wal.testlib.js";

async function withTempDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "etcdts-wal-"));
  try {
    await f(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("NodeFs: a segment cut mid-record is repaired on open; the log continues after the cut", async () => {
  await withTempDir(async (base) => {
    const dir = join(base, "member", "wal");
    const w = await Wal.create(dir, META);
    await assert.rejects(Wal.create(dir, META), WalExistsError);
    const m = new Model();
    await w.save(hs(1, 1, 0), ents(1, 10, 1));
    m.save(hs(1, 1, 0), ents(1, 10, 1));
    const [name] = (await readdir(dir)).filter((n) => n.endsWith(".wal"));
    const seg = join(dir, name!);
    const good = (await stat(seg)).size;
    await w.save(hs(1, 1, 10), ents(11, 20, 1, "second batch "));
    await w.close();
    const full = (await stat(seg)).size;
    // Cut in the middle of the second batch's fourth record.
    const cut = good + 3 * 48 + 21;
    assert.ok(cut < full);
    await truncate(seg, cut);
    const r = await Wal.open(dir, META);
    assert.deepEqual(r.state.repairedTail, { file: seg, offset: good, droppedBytes: cut - good });
    assert.equal(stateKey(r.state), m.key());
    assert.equal((await stat(seg)).size, good, "the torn batch was cut off the file");
    await r.wal.save(hs(2, 2, 10), ents(11, 12, 2));
    m.save(hs(2, 2, 10), ents(11, 12, 2));
    await r.wal.close();
    const again = await Wal.open(dir, META);
    assert.equal(again.state.repairedTail, undefined);
    assert.equal(stateKey(again.state), m.key());
    await again.wal.close();
  });
});

test("NodeFs: roll, snapshot marker, release; damage in a sealed segment is refused", async () => {
  await withTempDir(async (base) => {
    const dir = join(base, "wal");
    const w = await Wal.create(dir, META, { segmentBytes: 4096 });
    const m = new Model();
    for (let i = 1; i <= 60; i++) {
      const e = ent(i, 1, "v".repeat(200));
      await w.save(hs(1, 1, i - 1), [e]);
      m.save(hs(1, 1, i - 1), [e]);
    }
    const segs = (await readdir(dir)).filter((n) => n.endsWith(".wal")).sort();
    assert.ok(segs.length >= 3, `${segs.length} segments`);
    await w.saveSnapshot(snapMeta(40, 1));
    m.saveSnapshot(snapMeta(40, 1));
    await w.releaseTo(40n);
    const kept = (await readdir(dir)).filter((n) => n.endsWith(".wal")).sort();
    assert.ok(kept.length < segs.length && kept.length >= 1);
    await w.close();
    const r = await Wal.open(dir, META, { segmentBytes: 4096 });
    assert.equal(stateKey(r.state), m.key());
    await r.wal.close();
    assert.ok(kept.length >= 2, "a sealed segment is left to damage");
    const sealed = join(dir, kept[0]!);
    const d = await readFile(sealed);
    d[d.length - 30] = d[d.length - 30]! ^ 0xff;
    await writeFile(sealed, d);
    await assert.rejects(Wal.open(dir, META), (e) => e instanceof WalCorruptError && e.file === sealed);
  });
});

test("NodeFs: snapshotter save, load, fallback past a corrupt file", async () => {
  await withTempDir(async (base) => {
    const dir = join(base, "snap");
    const s = new Snapshotter(dir);
    const data = new TextEncoder().encode("db state");
    await s.save({ metadata: snapMeta(10, 2), data });
    await s.save({ metadata: snapMeta(20, 3), data });
    const names = (await readdir(dir)).sort();
    assert.deepEqual(names, ["0000000000000002-000000000000000a.snap", "0000000000000003-0000000000000014.snap"]);
    await writeFile(join(dir, names[1]!), "garbage");
    const got = await s.load();
    assert.equal(got?.metadata.index, 10n);
    assert.ok((await readdir(dir)).includes(`${names[1]}.broken`));
  });
});
