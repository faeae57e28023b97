// SimFs keeps the durability contract of fs.ts: what was synced survives every
// crash, and what was not may come back in each of the ways the contract allows.
import assert from "node:assert/strict";
import { test } from "node:test";
import { SeededRand } from "../raft/rand.js";
import { SimCrashedError, SimFaultError, SimFs } from "./sim_fs.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => Buffer.from(b).toString("latin1");

async function base(): Promise<SimFs> {
  const fs = new SimFs();
  await fs.mkdirp("/d");
  await fs.syncDir("/");
  return fs;
}

test("synced bytes survive every crash; unsynced ones are kept, dropped, cut or damaged", async () => {
  const seen = new Set<string>();
  for (let seed = 1; seed <= 300; seed++) {
    const fs = await base();
    const f = await fs.create("/d/f");
    await fs.syncDir("/d");
    await f.append(enc("durable:"));
    await f.sync();
    await f.append(enc("volatile-tail-bytes"));
    const after = fs.crash(new SeededRand(seed));
    const got = dec(await after.readFile("/d/f"));
    assert.ok(got.startsWith("durable:"), `seed ${seed}: ${JSON.stringify(got)}`);
    const rest = got.slice(8);
    if (rest === "") seen.add("dropped");
    else if (rest === "volatile-tail-bytes") seen.add("kept");
    else if ("volatile-tail-bytes".startsWith(rest)) seen.add("cut");
    else seen.add("damaged");
  }
  assert.deepEqual([...seen].sort(), ["cut", "damaged", "dropped", "kept"]);
});

test("a name is durable only after syncDir; a rename is all or nothing", async () => {
  const outcomes = new Set<string>();
  for (let seed = 1; seed <= 100; seed++) {
    const fs = await base();
    const a = await fs.create("/d/a");
    await a.append(enc("A"));
    await a.sync();
    await fs.syncDir("/d");
    const b = await fs.create("/d/b.tmp");
    await b.append(enc("B"));
    await b.sync();
    await fs.rename("/d/b.tmp", "/d/b");
    await fs.unlink("/d/a");
    const after = fs.crash(new SeededRand(seed));
    const names = (await after.readdir("/d")).join(",");
    // Changes since the sync come back as a prefix: create b.tmp, rename it, unlink a.
    assert.ok(["a", "a,b.tmp", "a,b", "b"].includes(names), `seed ${seed}: ${names}`);
    outcomes.add(names);
    if (names.includes("b")) assert.equal(dec(await after.readFile(names.includes("b.tmp") ? "/d/b.tmp" : "/d/b")), "B");
  }
  assert.equal(outcomes.size, 4);
  // After syncDir, the names are certain.
  const fs = await base();
  await (await fs.create("/d/x")).close();
  await fs.syncDir("/d");
  for (let seed = 1; seed <= 20; seed++) assert.deepEqual(await fs.crashImage(new SeededRand(seed)).readdir("/d"), ["x"]);
});

test("an unsynced truncate may or may not happen; a synced one sticks", async () => {
  const kinds = new Set<number>();
  for (let seed = 1; seed <= 100; seed++) {
    const fs = await base();
    const f = await fs.create("/d/f");
    await fs.syncDir("/d");
    await f.append(enc("0123456789"));
    await f.sync();
    await fs.truncate("/d/f", 4);
    const got = dec(await fs.crash(new SeededRand(seed)).readFile("/d/f"));
    assert.ok(got.startsWith("0123"), got);
    kinds.add(got.length);
  }
  assert.ok(kinds.has(4) && kinds.has(10));
  const fs = await base();
  const f = await fs.create("/d/f");
  await fs.syncDir("/d");
  await f.append(enc("0123456789"));
  await fs.truncate("/d/f", 4);
  await f.sync();
  for (let seed = 1; seed <= 20; seed++) assert.equal(dec(await fs.crashImage(new SeededRand(seed)).readFile("/d/f")), "0123");
});

test("a crashed SimFs and its handles refuse all calls", async () => {
  const fs = await base();
  const f = await fs.create("/d/f");
  fs.crash(new SeededRand(1));
  await assert.rejects(f.append(enc("x")), SimCrashedError);
  await assert.rejects(f.sync(), SimCrashedError);
  await assert.rejects(fs.readdir("/d"), SimCrashedError);
  await assert.rejects(fs.rename("/d/f", "/d/g"), SimCrashedError);
});

test("failNext makes exactly the chosen call fail, with nothing of a failed append written", async () => {
  const fs = await base();
  const f = await fs.create("/d/f");
  fs.failNext("append", 1);
  await f.append(enc("one"));
  await assert.rejects(f.append(enc("two")), SimFaultError);
  await f.append(enc("three"));
  assert.equal(dec(await fs.readFile("/d/f")), "onethree");
  fs.failNext("sync");
  await assert.rejects(f.sync(), (e) => e instanceof SimFaultError && e.code === "EIO");
  await f.sync();
  assert.equal(fs.counts.sync, 2);
  assert.equal(fs.counts.append, 3);
});
