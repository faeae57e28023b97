// v3lockpb.Lock against a real in-process server (and, where /usr/bin/etcd
// exists, the same scenarios against real etcd for comparison), driven by a
// raw grpc-js client, the etcd3 npm client (leases, reads) and etcdctl's
// client-side lock recipe (which shares the key layout). No timing
// assertions: every wait is an "eventually" poll with a generous cap.

import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { Etcd3 } from "etcd3";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import pino from "pino";
import { KV, Lease } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Lock } from "../../../gen/v3lockpb/v3lock_pb.js";
import { EtcdServer } from "../../server/server.js";
import { allServices } from "../../server/services.js";
import { bindServices } from "./bind.js";

// ---------------------------------------------------------------- harness
// (the same small harness is in election.test.ts)

const ETCD = "/usr/bin/etcd";
const ETCDCTL = "/usr/bin/etcdctl";

interface Target {
  readonly name: "ours" | "etcd";
  readonly addr: string; // host:port
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      srv.close(() => (typeof a === "object" && a !== null ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

async function startOurs(): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), "etcdts-lock-"));
  const logger = pino({ level: "silent" });
  const s = await EtcdServer.start({
    name: "default",
    dataDir: dir,
    advertiseClientUrls: ["http://127.0.0.1:2379"],
    initialAdvertisePeerUrls: ["http://localhost:2380"],
    initialClusterToken: "etcd-cluster",
    quotaBackendBytes: 0n,
    maxRequestBytes: 1572864,
    maxTxnOps: 128,
    autoCompactionMode: "periodic",
    autoCompactionRetention: 0n,
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 1000,
    watchProgressNotifyIntervalMs: 600000,
    logger,
    onFatal: (err) => {
      throw err;
    },
  });
  const g = new grpc.Server({ "grpc.max_receive_message_length": 1572864 + 512 * 1024 });
  bindServices(g, allServices(s), logger);
  const port = await new Promise<number>((resolve, reject) =>
    g.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    name: "ours",
    addr: `127.0.0.1:${port}`,
    async stop() {
      g.forceShutdown();
      await new Promise((r) => setTimeout(r, 20));
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startEtcd(): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), "etcd-lock-"));
  const cp = await freePort();
  const pp = await freePort();
  const proc = spawn(
    ETCD,
    [
      "--name", "default",
      "--data-dir", join(dir, "data"),
      "--listen-client-urls", `http://127.0.0.1:${cp}`,
      "--advertise-client-urls", `http://127.0.0.1:${cp}`,
      "--listen-peer-urls", `http://127.0.0.1:${pp}`,
      "--initial-advertise-peer-urls", `http://127.0.0.1:${pp}`,
      "--initial-cluster", `default=http://127.0.0.1:${pp}`,
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const t: Target = {
    name: "etcd",
    addr: `127.0.0.1:${cp}`,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const c = new Client(t.addr);
  try {
    await eventually(async () => {
      await c.unary(KV.method.range, { key: Buffer.from("health") }, 1000);
      return true;
    }, 30000);
  } catch (err) {
    await t.stop();
    throw err;
  } finally {
    c.close();
  }
  return t;
}

/** A failed call: the gRPC status code and message. */
class CallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`gRPC ${code}: ${details}`);
  }
}

class Client {
  readonly c: grpc.Client;
  constructor(addr: string) {
    this.c = new grpc.Client(addr, grpc.credentials.createInsecure());
  }
  /** A unary call; `cancel` abandons it (the server sees the call cancelled). */
  start<I extends DescMessage, O extends DescMessage>(
    m: DescMethod & { input: I; output: O },
    req: MessageInitShape<I>,
    deadlineMs = 120000,
  ): { result: Promise<MessageShape<O>>; cancel(): void } {
    let call: grpc.ClientUnaryCall | undefined;
    const result = new Promise<MessageShape<O>>((resolve, reject) => {
      call = this.c.makeUnaryRequest(
        `/${m.parent.typeName}/${m.name}`,
        (x: MessageShape<I>) => Buffer.from(toBinary(m.input, x)),
        (b: Buffer) => fromBinary(m.output, b),
        create(m.input, req),
        new grpc.Metadata(),
        { deadline: new Date(Date.now() + deadlineMs) },
        (err, res) => (err ? reject(new CallError(err.code, err.details)) : res === undefined ? reject(new Error("no response")) : resolve(res)),
      );
    });
    return { result, cancel: () => call?.cancel() };
  }
  unary<I extends DescMessage, O extends DescMessage>(m: DescMethod & { input: I; output: O }, req: MessageInitShape<I>, deadlineMs?: number): Promise<MessageShape<O>> {
    return this.start(m, req, deadlineMs).result;
  }
  stream<I extends DescMessage, O extends DescMessage>(m: DescMethod & { input: I; output: O }, req: MessageInitShape<I>): grpc.ClientReadableStream<MessageShape<O>> {
    return this.c.makeServerStreamRequest(
      `/${m.parent.typeName}/${m.name}`,
      (x: MessageShape<I>) => Buffer.from(toBinary(m.input, x)),
      (b: Buffer) => fromBinary(m.output, b),
      create(m.input, req),
      new grpc.Metadata(),
      {},
    );
  }
  close(): void {
    this.c.close();
  }
}

/** Polls fn until it returns a value other than undefined/false (errors count as "not yet"). */
async function eventually<T>(fn: () => Promise<T | undefined | false>, capMs = 20000): Promise<T> {
  const end = Date.now() + capMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`condition not met within ${capMs} ms${last !== undefined ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function rejectsWith(p: Promise<unknown>, code: number, details: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CallError, String(err));
    assert.equal(err.details, details);
    assert.equal(err.code, code);
    return true;
  });
}

/** Tracks whether a promise has settled, without waiting on it. */
function track<T>(p: Promise<T>): { done: () => boolean; p: Promise<T> } {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  return { done: () => settled, p };
}

/** A long-running etcdctl (v3 API) whose stdout is collected. */
function etcdctl(addr: string, args: string[]): { proc: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const proc = spawn(ETCDCTL, [`--endpoints=${addr}`, ...args], { env: { ...process.env, ETCDCTL_API: "3" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return { proc, out: () => out, exited };
}

const UNKNOWN = 2;
const b = (s: string) => Buffer.from(s);
const str = (u: Uint8Array) => Buffer.from(u).toString();

const targets: Array<{ name: "ours" | "etcd"; start: () => Promise<Target> }> = [{ name: "ours", start: startOurs }];
if (existsSync(ETCD)) targets.push({ name: "etcd", start: startEtcd });

// ---------------------------------------------------------------- tests

for (const impl of targets) {
  describe(`v3lock (${impl.name})`, () => {
    let t: Target;
    let c: Client;
    const grant = async (ttl: bigint) => (await c.unary(Lease.method.leaseGrant, { TTL: ttl })).ID;
    const keysUnder = async (name: string) =>
      (await c.unary(KV.method.range, { key: b(`${name}/`), rangeEnd: b(`${name}0`), sortTarget: 2 /* CREATE */, sortOrder: 1 })).kvs;

    before(async () => {
      t = await impl.start();
      c = new Client(t.addr);
    });
    after(async () => {
      c.close();
      await t.stop();
    });

    test("uncontended lock: key is <name>/<lease hex>, on the lease; re-entrant per lease; unlock deletes it", async () => {
      const lease = await grant(100n);
      const r = await c.unary(Lock.method.lock, { name: b("solo"), lease });
      assert.equal(str(r.key), `solo/${lease.toString(16)}`);
      const kvs = await keysUnder("solo");
      assert.equal(kvs.length, 1);
      assert.equal(kvs[0]!.lease, lease);
      assert.equal(str(kvs[0]!.value), "");
      assert.equal(r.header?.revision, kvs[0]!.createRevision);
      assert.ok((r.header?.clusterId ?? 0n) !== 0n && (r.header?.memberId ?? 0n) !== 0n);

      // The same lease locks again at once: same key, no new revision.
      const again = await c.unary(Lock.method.lock, { name: b("solo"), lease });
      assert.equal(str(again.key), str(r.key));
      assert.equal(again.header?.revision, r.header?.revision);

      const u = await c.unary(Lock.method.unlock, { key: r.key });
      assert.equal(u.header?.revision, r.header!.revision + 1n);
      assert.equal((await keysUnder("solo")).length, 0);
      // Unlocking a key that is not there is not an error.
      const u2 = await c.unary(Lock.method.unlock, { key: r.key });
      assert.equal(u2.header?.revision, u.header?.revision);
    });

    test("a second contender waits until the first unlocks", async () => {
      const la = await grant(100n);
      const lb = await grant(100n);
      const a = await c.unary(Lock.method.lock, { name: b("pair"), lease: la });
      const bCall = track(c.unary(Lock.method.lock, { name: b("pair"), lease: lb }));
      // B has joined the queue (its key exists) but does not hold the lock.
      await eventually(async () => (await keysUnder("pair")).length === 2);
      await c.unary(KV.method.range, { key: b("pair") }); // one more round trip
      assert.equal(bCall.done(), false, "B must wait while A holds the lock");

      const u = await c.unary(Lock.method.unlock, { key: a.key });
      const rb = await bCall.p;
      assert.equal(str(rb.key), `pair/${lb.toString(16)}`);
      assert.ok(rb.header!.revision >= u.header!.revision, "B's header is read after A's key is gone");
      const kvs = await keysUnder("pair");
      assert.deepEqual(kvs.map((kv) => str(kv.key)), [str(rb.key)]);
      await c.unary(Lock.method.unlock, { key: rb.key });
    });

    test("three contenders acquire in arrival order", async () => {
      const leases = [await grant(100n), await grant(100n), await grant(100n)];
      const first = await c.unary(Lock.method.lock, { name: b("queue"), lease: leases[0]! });
      const second = track(c.unary(Lock.method.lock, { name: b("queue"), lease: leases[1]! }));
      await eventually(async () => (await keysUnder("queue")).length === 2);
      const third = track(c.unary(Lock.method.lock, { name: b("queue"), lease: leases[2]! }));
      await eventually(async () => (await keysUnder("queue")).length === 3);

      await c.unary(Lock.method.unlock, { key: first.key });
      const r2 = await second.p;
      assert.equal(str(r2.key), `queue/${leases[1]!.toString(16)}`);
      await c.unary(KV.method.range, { key: b("queue") });
      assert.equal(third.done(), false, "the third waits for the second");
      await c.unary(Lock.method.unlock, { key: r2.key });
      const r3 = await third.p;
      assert.equal(str(r3.key), `queue/${leases[2]!.toString(16)}`);
      await c.unary(Lock.method.unlock, { key: r3.key });
    });

    test("the holder's lease expiring releases the lock", async () => {
      const short = await grant(2n);
      const long = await grant(100n);
      await c.unary(Lock.method.lock, { name: b("expiring"), lease: short });
      const r = await c.unary(Lock.method.lock, { name: b("expiring"), lease: long }); // waits for the expiry
      assert.equal(str(r.key), `expiring/${long.toString(16)}`);
      const kvs = await keysUnder("expiring");
      assert.deepEqual(kvs.map((kv) => str(kv.key)), [str(r.key)]);
      await c.unary(Lock.method.unlock, { key: r.key });
    });

    test("revoking the holder's lease (etcd3 client) releases the lock", async () => {
      const e3 = new Etcd3({ hosts: `http://${t.addr}` });
      try {
        const holder = e3.lease(100, { autoKeepAlive: false });
        const id = BigInt(await holder.grant());
        const waiter = await grant(100n);
        const a = await c.unary(Lock.method.lock, { name: b("revoked"), lease: id });
        assert.equal(str(a.key), `revoked/${id.toString(16)}`);
        // etcd3 sees the lock key under the prefix, attached to its lease.
        assert.deepEqual(await e3.getAll().prefix("revoked/").keys(), [str(a.key)]);
        const w = track(c.unary(Lock.method.lock, { name: b("revoked"), lease: waiter }));
        await eventually(async () => (await e3.getAll().prefix("revoked/").keys()).length === 2);
        assert.equal(w.done(), false);
        await holder.revoke();
        const r = await w.p;
        assert.equal(str(r.key), `revoked/${waiter.toString(16)}`);
        assert.deepEqual(await e3.getAll().prefix("revoked/").keys(), [str(r.key)]);
        await c.unary(Lock.method.unlock, { key: r.key });
      } finally {
        e3.close();
      }
    });

    test("a waiter that goes away takes its key out of the queue", async () => {
      const la = await grant(100n);
      const lb = await grant(100n);
      const a = await c.unary(Lock.method.lock, { name: b("cancel"), lease: la });
      const call = c.start(Lock.method.lock, { name: b("cancel"), lease: lb });
      call.result.catch(() => undefined);
      await eventually(async () => (await keysUnder("cancel")).length === 2);
      call.cancel();
      await eventually(async () => (await keysUnder("cancel")).length === 1);
      assert.deepEqual((await keysUnder("cancel")).map((kv) => str(kv.key)), [str(a.key)]);
      // The waiter's lease is left alone (etcd orphans the session, never revokes it).
      const ttl = await c.unary(Lease.method.leaseTimeToLive, { ID: lb });
      assert.ok(ttl.TTL > 0n);
      await c.unary(Lock.method.unlock, { key: a.key });
    });

    test("a waiter whose own lease expires while waiting", async () => {
      const la = await grant(100n);
      const lb = await grant(2n);
      const a = await c.unary(Lock.method.lock, { name: b("lost"), lease: la });
      const w = track(c.unary(Lock.method.lock, { name: b("lost"), lease: lb }));
      w.p.catch(() => undefined);
      await eventually(async () => (await keysUnder("lost")).length === 2);
      // B's lease expires: its key goes, but B keeps waiting for A.
      await eventually(async () => (await keysUnder("lost")).length === 1);
      await c.unary(KV.method.range, { key: b("lost") });
      assert.equal(w.done(), false);
      await c.unary(Lock.method.unlock, { key: a.key });
      if (impl.name === "ours") {
        // etcd >= 3.5 (concurrency.Mutex checks its key after waiting).
        await rejectsWith(w.p, UNKNOWN, "mutex: session is expired");
      } else {
        // etcd 3.4.23 predates that check and answers with a key that is gone;
        // newer etcd answers like ours. Either way nobody holds the lock.
        await w.p.then(
          () => undefined,
          (err: unknown) => assert.equal((err as CallError).details, "mutex: session is expired"),
        );
      }
      assert.equal((await keysUnder("lost")).length, 0);
    });

    test("lease 0: the server grants a 60 s session lease for the key", async () => {
      const r = await c.unary(Lock.method.lock, { name: b("nolease") });
      const kvs = await keysUnder("nolease");
      assert.equal(kvs.length, 1);
      const lease = kvs[0]!.lease;
      assert.ok(lease > 0n);
      assert.equal(str(r.key), `nolease/${lease.toString(16)}`);
      const ttl = await c.unary(Lease.method.leaseTimeToLive, { ID: lease });
      assert.equal(ttl.grantedTTL, 60n);
      await c.unary(Lease.method.leaseRevoke, { ID: lease });
    });

    test("errors: unknown lease, empty unlock key (code Unknown, etcd's text)", async () => {
      await rejectsWith(c.unary(Lock.method.lock, { name: b("bad"), lease: 0x1234567n }), UNKNOWN, "etcdserver: requested lease not found");
      assert.equal((await keysUnder("bad")).length, 0);
      await rejectsWith(c.unary(Lock.method.unlock, {}), UNKNOWN, "etcdserver: key is not provided");
    });

    test("an empty name locks under the prefix \"/\"", async () => {
      const lease = await grant(100n);
      const r = await c.unary(Lock.method.lock, { lease });
      assert.equal(str(r.key), `/${lease.toString(16)}`);
      await c.unary(Lock.method.unlock, { key: r.key });
    });

    test("etcdctl lock (client-side recipe) and the Lock RPC exclude each other", { skip: !existsSync(ETCDCTL) }, async () => {
      // Our RPC holds the lock; etcdctl queues behind it and runs its command once we unlock.
      const lease = await grant(100n);
      const mine = await c.unary(Lock.method.lock, { name: b("ctl"), lease });
      const ctl = etcdctl(t.addr, ["lock", "ctl", "echo", "ctl-acquired"]);
      try {
        await eventually(async () => (await keysUnder("ctl")).length === 2);
        assert.doesNotMatch(ctl.out(), /ctl-acquired/);
        await c.unary(Lock.method.unlock, { key: mine.key });
        assert.equal(await ctl.exited, 0, ctl.out());
        assert.match(ctl.out(), /ctl-acquired/);
        await eventually(async () => (await keysUnder("ctl")).length === 0);
      } finally {
        ctl.proc.kill("SIGKILL");
      }

      // etcdctl holds the lock; our RPC waits until etcdctl lets go.
      const holder = etcdctl(t.addr, ["lock", "ctl2"]);
      try {
        await eventually(async () => /^ctl2\/[0-9a-f]+$/m.test(holder.out()));
        const w = track(c.unary(Lock.method.lock, { name: b("ctl2"), lease }));
        await eventually(async () => (await keysUnder("ctl2")).length === 2);
        assert.equal(w.done(), false);
        holder.proc.kill("SIGINT"); // etcdctl unlocks and revokes its session
        const r = await w.p;
        assert.equal(str(r.key), `ctl2/${lease.toString(16)}`);
        await c.unary(Lock.method.unlock, { key: r.key });
      } finally {
        holder.proc.kill("SIGKILL");
        await holder.exited;
      }
    });
  });
}
