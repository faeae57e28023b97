// The README's "first five minutes", run line by line: every command in that
// section is run as written (curl, and `npm run -s ctl --`), against a fresh
// member of ours and against real etcd 3.6, and its output must be what the
// README shows. A command added to the section without a step here fails the
// test, and so does a step whose command is no longer in the README.
//
// The only adaptations, both what a reader would do too:
//   - the member listens on a free port, so `127.0.0.1:2379` in a command is
//     replaced by its address, and the CLI gets it through ETCDCTL_ENDPOINTS;
//   - the lease ID the README shows is replaced by the one the grant returned.
// "Another terminal" (the watches) is a background process; the change the
// README asks the reader to make there is a put through the gateway.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { referenceTools } from "../harness/cluster.js";
import { eventually } from "../harness/launch.js";
import { startMember, type Member } from "../harness/member.js";
import { repoRoot } from "../harness/provision.js";

const README = readFileSync(join(repoRoot, "README.md"), "utf8");
const README_LEASE = "7587879370462101002";

/** The commands of the tutorial section's shell blocks, continuation lines joined, comments cut. */
function tutorialCommands(): string[] {
  const start = README.indexOf("## The first five minutes");
  const end = README.indexOf("\n## ", start + 1);
  assert.ok(start >= 0 && end > start, "README has a 'The first five minutes' section");
  const section = README.slice(start, end);
  const cmds: string[] = [];
  for (const block of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    let cur = "";
    for (const raw of block[1]!.split("\n")) {
      const line = raw.replace(/\s+#.*$/, "").replace(/^#.*$/, "").trimEnd();
      if (line.trim() === "") continue;
      if (line.endsWith("\\")) {
        cur += line.slice(0, -1).trimEnd() + " ";
        continue;
      }
      cmds.push((cur + line.trim()).replace(/\s+/g, " "));
      cur = "";
    }
  }
  // The CLI paragraph after the lease block names its commands inline.
  for (const m of section.matchAll(/`(npm run -s ctl -- [^`]+)`/g)) cmds.push(m[1]!.replace(/\s+/g, " "));
  return cmds;
}

interface Target {
  readonly member: Member;
  readonly hostPort: string;
}

/** Runs one README command line against `t` (bash, from the repo root). */
function run(t: Target, cmd: string, lease?: string): string {
  let c = cmd.replaceAll("127.0.0.1:2379", t.hostPort);
  if (lease !== undefined) c = c.replaceAll(README_LEASE, lease).replaceAll("<id>", lease);
  const r = spawnSync("bash", ["-c", c], { cwd: repoRoot, encoding: "utf8", env: { ...process.env, ETCDCTL_ENDPOINTS: t.hostPort }, timeout: 30_000 });
  assert.equal(r.status, 0, `${c}\nexit ${r.status}\nstdout ${r.stdout}\nstderr ${r.stderr}`);
  return r.stdout;
}

/** Starts a README command that keeps running (a watch, a keep-alive); its output accumulates. */
function background(t: Target, cmd: string, lease?: string): { out: () => string; stop: () => Promise<void> } {
  let c = cmd.replaceAll("127.0.0.1:2379", t.hostPort);
  if (lease !== undefined) c = c.replaceAll(README_LEASE, lease).replaceAll("<id>", lease);
  const p = spawn("bash", ["-c", `exec ${c}`], { cwd: repoRoot, env: { ...process.env, ETCDCTL_ENDPOINTS: t.hostPort }, detached: true });
  let out = "";
  p.stdout.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const gone = new Promise<void>((r) => p.once("exit", () => r()));
  return {
    out: () => out,
    stop: async () => {
      try {
        process.kill(-p.pid!, "SIGTERM");
      } catch {
        // already gone
      }
      await gone;
    },
  };
}

/**
 * Matches `out` against a README output line: `…` stands for anything (the
 * README elides headers and IDs), the rest must be there verbatim.
 */
function shows(out: string, readmeLine: string, actualLease?: string): void {
  assert.ok(README.includes(readmeLine), `README shows ${readmeLine}`);
  let shown = readmeLine.replace(/^# /, "");
  if (actualLease !== undefined) shown = shown.replaceAll(README_LEASE, actualLease);
  const re = new RegExp("^" + shown.split("…").map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("[\\s\\S]*?") + "$");
  assert.match(out.trim(), re, `output does not match the README's\n  ${shown}`);
}

const tools = referenceTools();
const cmds = tutorialCommands();
const covered = new Set<string>();
/** A README command, checked to be there verbatim. */
function cmd(c: string): string {
  assert.ok(cmds.includes(c), `README's tutorial has the command: ${c}`);
  covered.add(c);
  return c;
}

const PUT = `curl -s http://127.0.0.1:2379/v3/kv/put -X POST -d '{"key":"Zm9v","value":"YmFy"}'`;
const RANGE = `curl -s http://127.0.0.1:2379/v3/kv/range -X POST -d '{"key":"Zm9v"}'`;
const WATCH = `curl -sN http://127.0.0.1:2379/v3/watch -X POST -d '{"create_request":{"key":"Zm9v"}}'`;
const GRANT = `curl -s http://127.0.0.1:2379/v3/lease/grant -X POST -d '{"TTL":"10"}'`;
const PUT_LEASED = `curl -s http://127.0.0.1:2379/v3/kv/put -X POST -d '{"key":"c2VydmljZXMvc2VydmljZUE=","value":"aHR0cDovL2xvY2FsaG9zdDo4MDgw","lease":"7587879370462101002"}'`;
const DISCOVER = `curl -s http://127.0.0.1:2379/v3/kv/range -X POST -d '{"key":"c2VydmljZXMv","range_end":"c2VydmljZXMw"}'`;
const KEEPALIVE = `curl -s http://127.0.0.1:2379/v3/lease/keepalive -X POST -d '{"ID":"7587879370462101002"}'`;
const GONE = `curl -s http://127.0.0.1:2379/v3/kv/range -X POST -d '{"key":"c2VydmljZXMvc2VydmljZUE="}'`;

/** The "another terminal" change for the watches: a put of bar -> baz (YmF6). */
const CHANGE = `curl -s http://127.0.0.1:2379/v3/kv/put -X POST -d '{"key":"Zm9v","value":"YmF6"}'`;

async function tutorial(t: Target): Promise<void> {
  // Store and read a key.
  shows(run(t, cmd(PUT)), `# {"header":{"cluster_id":"…","member_id":"…","revision":"2","raft_term":"2"}}`);
  shows(run(t, cmd(RANGE)), `# {"header":{…},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}`);

  // Watch it, and change it from "another terminal".
  const w = background(t, cmd(WATCH));
  try {
    await eventually("the watch is created", async () => (w.out().includes('"created":true') ? true : undefined), 20_000);
    run(t, CHANGE);
    await eventually("the watch shows the change", async () => (w.out().trim().split("\n").length >= 2 ? true : undefined), 20_000);
  } finally {
    await w.stop();
  }
  const [created, event] = w.out().trim().split("\n");
  shows(created!, `# {"result":{"header":{…},"created":true}}`);
  shows(event!, `# {"result":{"header":{…},"events":[{"kv":{"key":"Zm9v",…,"value":"YmF6"}}]}}`);

  // The same with the CLI.
  assert.equal(run(t, cmd("npm run -s ctl -- put foo bar")), "OK\n");
  assert.equal(run(t, cmd("npm run -s ctl -- get foo")), "foo\nbar\n");
  const cw = background(t, cmd("npm run -s ctl -- watch foo"));
  try {
    // The watch prints nothing when it starts; put until it has shown one (a put made
    // before the watch was registered is not an event for it).
    await eventually("the CLI watch prints the change", async () => {
      run(t, `curl -s http://127.0.0.1:2379/v3/kv/put -X POST -d '{"key":"Zm9v","value":"cXV4"}'`);
      return cw.out().includes("PUT\nfoo\nqux\n") ? true : undefined;
    }, 20_000, 500);
  } finally {
    await cw.stop();
  }

  // Service registration with a lease.
  const grant = run(t, cmd(GRANT));
  const id = (JSON.parse(grant) as { ID: string }).ID;
  assert.match(id, /^\d+$/);
  shows(grant, `# {"header":{…},"ID":"${README_LEASE}","TTL":"10"}`, id);
  assert.match(run(t, cmd(PUT_LEASED), id), /^\{"header":\{[^}]*"revision":"\d+"[^}]*\}\}$/);
  const found = JSON.parse(run(t, cmd(DISCOVER))) as { kvs?: { key: string; value: string; lease: string }[] };
  assert.deepEqual(found.kvs?.map((kv) => [kv.key, kv.value, kv.lease]), [["c2VydmljZXMvc2VydmljZUE=", "aHR0cDovL2xvY2FsaG9zdDo4MDgw", id]]);
  const ka = JSON.parse(run(t, cmd(KEEPALIVE), id)) as { result: { ID: string; TTL: string } };
  assert.deepEqual([ka.result.ID, ka.result.TTL], [id, "10"]);
  // Stop renewing: the key goes when the lease expires (etcd's expiry takes TTL plus its checks).
  await eventually("the lease expires and takes the key", async () => {
    const r = JSON.parse(run(t, cmd(GONE))) as { kvs?: unknown[] };
    return r.kvs === undefined ? true : undefined;
  }, 60_000, 1000);

  // The same with the CLI.
  const g = run(t, cmd("npm run -s ctl -- lease grant 10"));
  const m = /^lease ([0-9a-f]+) granted with TTL\(10s\)\n$/.exec(g);
  assert.ok(m, `lease grant printed ${JSON.stringify(g)}`);
  const hex = m[1]!;
  assert.equal(run(t, cmd("npm run -s ctl -- put services/serviceA http://localhost:8080 --lease=<id>"), hex), "OK\n");
  const keep = background(t, cmd("npm run -s ctl -- lease keep-alive <id>"), hex);
  try {
    await eventually("keep-alive renews", async () => (keep.out().includes(`lease ${hex} keepalived with TTL(10)`) ? true : undefined), 20_000);
  } finally {
    await keep.stop();
  }
  assert.equal(run(t, cmd("npm run -s ctl -- get services/ --prefix")), "services/serviceA\nhttp://localhost:8080\n");
}

describe("README tutorial, line by line", { skip: !tools.ok }, () => {
  const members: Member[] = [];
  after(async () => {
    for (const m of members) await m.dispose();
  });

  for (const impl of ["ours", "etcd"] as const) {
    test(`${impl}: every command of "The first five minutes" answers as the README shows`, async () => {
      const member = await startMember({ impl, ...(impl === "etcd" && tools.ok ? { etcdBinary: tools.value.etcd36 } : {}) });
      members.push(member);
      await tutorial({ member, hostPort: member.clientUrl.replace(/^http:\/\//, "") });
    });
  }

  test("every command of the section is run by a step above", () => {
    assert.deepEqual(cmds.filter((c) => !covered.has(c)), []);
  });
});
