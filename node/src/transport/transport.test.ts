// Two real Transports on loopback HTTP servers: delivery both ways, refusal of
// another cluster and of a removed member, and reconnection after a peer
// restarts on the same port; each with streams that switch protocols (the
// listener has the transport's upgrade handler) and with chunked responses (it
// does not, as an older member), and one member of each kind together.

import assert from "node:assert/strict";
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from "node:net";
import { test } from "node:test";
import { msg, type Message } from "../raft/index.js";
import { encodeMessageFrame } from "./codec.js";
import { Transport, type TransportOptions } from "./index.js";

interface End {
  t: Transport;
  server: Server;
  url: string;
  got: Message[];
  removedBy: bigint[];
  /** Stream requests this end's listener answered by switching protocols, and with a chunked 200. */
  switched: number;
  chunked: number;
}

/** "switch": the listener has upgradeHandler (a current member); "chunked": it does not (an older one). */
type Streams = "switch" | "chunked";

const FAST = { backoffBaseMs: 20, backoffMaxMs: 200, refusedRetryMs: 200, keepaliveIntervalMs: 100, readIdleTimeoutMs: 1000, dialTimeoutMs: 1000 };

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function listen(port = 0): Promise<{ server: Server; port: number; setHandler: (h: Handler) => void }> {
  let handler: Handler = (_req, res) => {
    res.writeHead(503);
    res.end();
  };
  const server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port, setHandler: (h) => (handler = h) };
}

async function end(clusterId: bigint, memberId: bigint, port = 0, extra: Partial<TransportOptions> = {}, streams: Streams = "switch"): Promise<End> {
  const l = await listen(port);
  const got: Message[] = [];
  const removedBy: bigint[] = [];
  const t = new Transport({
    clusterId,
    memberId,
    limits: FAST,
    onMessage: (m) => got.push(m),
    onRemoved: (by) => removedBy.push(by),
    ...extra,
  });
  const e: End = { t, server: l.server, url: `http://127.0.0.1:${l.port}`, got, removedBy, switched: 0, chunked: 0 };
  const h = t.handler();
  l.setHandler((req, res) => {
    if (req.url === "/raft/stream") e.chunked++;
    h(req, res);
  });
  if (streams === "switch") {
    const u = t.upgradeHandler();
    l.server.on("upgrade", (req: IncomingMessage, socket, head: Buffer) => {
      if (req.url === "/raft/stream") e.switched++;
      u(req, socket, head);
    });
  }
  return e;
}

async function close(e: End): Promise<void> {
  e.t.stop();
  e.server.closeAllConnections();
  await new Promise<void>((r) => e.server.close(() => r()));
}

async function until(what: string, cond: () => boolean, capMs = 20_000): Promise<void> {
  const deadline = Date.now() + capMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const hb = (from: bigint, to: bigint, term: bigint) => msg({ type: "MsgHeartbeat", from, to, term, commit: 0n });

for (const mode of ["switch", "chunked"] as const) {
  test(`messages flow both ways between two members, in order (${mode})`, async () => {
    const a = await end(7n, 1n, 0, {}, mode);
    const b = await end(7n, 2n, 0, {}, mode);
    try {
      a.t.addPeer(2n, [b.url]);
      b.t.addPeer(1n, [a.url]);
      await until("both links active", () => a.t.activeSince(2n) !== undefined && b.t.activeSince(1n) !== undefined);
      for (let i = 1n; i <= 20n; i++) a.t.send([hb(1n, 2n, i)]);
      b.t.send([
        msg({ type: "MsgApp", from: 2n, to: 1n, term: 3n, index: 4n, logTerm: 2n, commit: 4n, entries: [{ term: 3n, index: 5n, type: "normal", data: new Uint8Array([1, 2, 3]) }] }),
      ]);
      await until("20 heartbeats at b", () => b.got.length === 20);
      await until("the append at a", () => a.got.length === 1);
      assert.deepEqual(b.got.map((m) => m.term), Array.from({ length: 20 }, (_, i) => BigInt(i + 1)));
      const app = a.got[0]!;
      assert.equal(app.type, "MsgApp");
      assert.equal(app.from, 2n);
      assert.deepEqual([...app.entries[0]!.data], [1, 2, 3]);
      // Each stream went the way this listener answers.
      for (const e of [a, b]) assert.deepEqual([e.switched, e.chunked], mode === "switch" ? [1, 0] : [0, 1]);
    } finally {
      await close(a);
      await close(b);
    }
  });

  test(`a member of another cluster is refused; nothing it sends is delivered (${mode})`, async () => {
    const a = await end(7n, 1n, 0, {}, mode);
    const stranger = await end(8n, 2n, 0, {}, mode);
    try {
      a.t.addPeer(2n, [stranger.url]);
      stranger.t.addPeer(1n, [a.url]);
      for (let i = 0; i < 10; i++) {
        stranger.t.send([hb(2n, 1n, 1n)]);
        a.t.send([hb(1n, 2n, 1n)]);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(a.got.length, 0);
      assert.equal(stranger.got.length, 0);
      assert.equal(a.t.activeSince(2n), undefined);
      assert.match(a.t.peerStatus(2n)?.lastError ?? "", /cluster ID mismatch/);
    } finally {
      await close(a);
      await close(stranger);
    }
  });

  test(`a removed member is refused and told so (${mode})`, async () => {
    const a = await end(7n, 1n, 0, {}, mode);
    const b = await end(7n, 2n, 0, {}, mode);
    try {
      a.t.addPeer(2n, [b.url]);
      b.t.addPeer(1n, [a.url]);
      await until("link active", () => a.t.activeSince(2n) !== undefined);
      a.t.removePeer(2n);
      await until("b learns it was removed", () => b.removedBy.length > 0);
      assert.equal(b.removedBy[0], 1n);
      const before = a.got.length;
      b.t.send([hb(2n, 1n, 9n)]);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(a.got.length, before);
    } finally {
      await close(a);
      await close(b);
    }
  });

  test(`after a peer restarts on the same port, the link comes back and messages flow again (${mode})`, async () => {
    const a = await end(7n, 1n, 0, {}, mode);
    let b = await end(7n, 2n, 0, {}, mode);
    const port = Number(new URL(b.url).port);
    try {
      a.t.addPeer(2n, [b.url]);
      b.t.addPeer(1n, [a.url]);
      await until("link active", () => a.t.activeSince(2n) !== undefined && b.t.activeSince(1n) !== undefined);
      await close(b);
      await until("a notices b is gone", () => a.t.activeSince(2n) === undefined);
      b = await end(7n, 2n, port, {}, mode);
      b.t.addPeer(1n, [a.url]);
      await until("link active again", () => a.t.activeSince(2n) !== undefined && b.t.activeSince(1n) !== undefined);
      a.t.send([hb(1n, 2n, 42n)]);
      await until("delivery after the restart", () => b.got.some((m) => m.term === 42n));
    } finally {
      await close(a);
      await close(b);
    }
  });
}

test("a member that switches protocols and one that answers 200 (an older member) talk both ways", async () => {
  const a = await end(7n, 1n, 0, {}, "switch");
  const b = await end(7n, 2n, 0, {}, "chunked");
  try {
    a.t.addPeer(2n, [b.url]);
    b.t.addPeer(1n, [a.url]);
    await until("both links active", () => a.t.activeSince(2n) !== undefined && b.t.activeSince(1n) !== undefined);
    for (let i = 1n; i <= 5n; i++) {
      a.t.send([hb(1n, 2n, i)]);
      b.t.send([hb(2n, 1n, i)]);
    }
    await until("5 heartbeats each way", () => a.got.length === 5 && b.got.length === 5);
    assert.deepEqual([a.switched, a.chunked, b.switched, b.chunked], [1, 0, 0, 1]);
  } finally {
    await close(a);
    await close(b);
  }
});

/** One raw HTTP/1.1 request to `url` with an Upgrade header: the answer's status, headers and body. */
function askToSwitch(url: string, path: string, protocol: string): Promise<{ status: number; headers: IncomingMessage["headers"]; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { headers: { Connection: "Upgrade", Upgrade: protocol, "X-Etcd-Cluster-ID": "7", "X-Server-From": "2", "X-Raft-To": "1" } });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: "" });
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("a switch to anything but a raft stream is refused with 400; an unknown member is refused; the listener keeps serving", async () => {
  const a = await end(7n, 1n);
  const b = await end(7n, 2n);
  try {
    const ws = await askToSwitch(a.url, "/version", "websocket");
    assert.equal(ws.status, 400);
    assert.match(ws.body, /switches protocols only for GET \/raft\/stream to etcdts-raft-stream\/1, not for GET \/version to "websocket"/);
    const other = await askToSwitch(a.url, "/raft/stream", "h2c");
    assert.equal(other.status, 400);
    // The right protocol from a member a does not know yet: refused as the chunked path refuses it.
    const unknown = await askToSwitch(a.url, "/raft/stream", "etcdts-raft-stream/1");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers["x-raft-error"], "unknown-sender");
    assert.match(unknown.body, /member 2 is not a known peer of member 1/);
    a.t.addPeer(2n, [b.url]);
    b.t.addPeer(1n, [a.url]);
    await until("link active", () => a.t.activeSince(2n) !== undefined && b.t.activeSince(1n) !== undefined);
    a.t.send([hb(1n, 2n, 3n)]);
    await until("delivery", () => b.got.length === 1);
  } finally {
    await close(a);
    await close(b);
  }
});

/**
 * A peer that answers every stream request with a hand-written 101 (headers as
 * given) followed by `after(socket)`: what a member of ours or a broken one could send.
 */
async function fakePeer(headers: string, after: (socket: Socket) => void): Promise<{ server: TcpServer; url: string }> {
  const server = createTcpServer((socket) => {
    let seen = "";
    const onData = (c: Buffer) => {
      seen += c.toString("latin1");
      if (!seen.includes("\r\n\r\n")) return;
      socket.off("data", onData);
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n${headers}\r\n`);
      after(socket);
    };
    socket.on("data", onData);
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function closeFake(f: { server: TcpServer }): Promise<void> {
  f.server.close();
}

test("frames that come in the same read as the 101 answer, and a frame split across reads, are delivered in order", async () => {
  const a = await end(7n, 1n);
  const frames = Buffer.concat([1n, 2n, 3n].map((t) => encodeMessageFrame(hb(2n, 1n, t))));
  const cut = frames.length - 5; // the third frame arrives in two pieces
  const fake = await fakePeer("Upgrade: etcdts-raft-stream/1\r\nX-Etcd-Cluster-ID: 7\r\nX-Server-From: 2\r\n", (socket) => {
    socket.write(frames.subarray(0, cut)); // Node's client reads it with the 101 answer
    setTimeout(() => socket.write(frames.subarray(cut)), 50);
  });
  try {
    a.t.addPeer(2n, [fake.url]);
    await until("3 heartbeats", () => a.got.length === 3);
    assert.deepEqual(a.got.map((m) => m.term), [1n, 2n, 3n]);
  } finally {
    await close(a);
    await closeFake(fake);
  }
});

test("a 101 answer for another cluster, or to another protocol, is not read", async () => {
  for (const [headers, why] of [
    ["Upgrade: etcdts-raft-stream/1\r\nX-Etcd-Cluster-ID: 8\r\nX-Server-From: 2\r\n", /cluster ID mismatch/],
    ["Upgrade: websocket\r\nX-Etcd-Cluster-ID: 7\r\nX-Server-From: 2\r\n", /switched to protocol "websocket", not etcdts-raft-stream\/1/],
  ] as const) {
    const a = await end(7n, 1n);
    const fake = await fakePeer(headers, (socket) => socket.write(encodeMessageFrame(hb(2n, 1n, 1n))));
    try {
      a.t.addPeer(2n, [fake.url]);
      await until("the answer refused", () => why.test(a.t.peerStatus(2n)?.lastError ?? ""));
      assert.equal(a.got.length, 0, "nothing read from a refused stream");
      assert.equal(a.t.peerStatus(2n)?.inbound, false);
    } finally {
      await close(a);
      await closeFake(fake);
    }
  }
});

// (The timeout: without the fix, closing the listener would wait for that connection forever.)
test("a refused switch closes the connection even if the client keeps its side open", { timeout: 30_000 }, async () => {
  const a = await end(7n, 1n);
  try {
    const port = Number(new URL(a.url).port);
    const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    let answer = "";
    let ended = false;
    socket.on("data", (c: Buffer) => (answer += c.toString("latin1")));
    socket.on("end", () => (ended = true)); // and we keep our side open
    socket.write(
      "GET /raft/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: etcdts-raft-stream/1\r\n" +
        "X-Etcd-Cluster-ID: 8\r\nX-Server-From: 2\r\nX-Raft-To: 1\r\n\r\n",
    );
    await until("the answer", () => ended);
    assert.match(answer, /^HTTP\/1\.1 412 /);
    assert.match(answer, /X-Raft-Error: cluster-id-mismatch/);
    // The listener's side is gone too (net.Server still counts a switched socket until then).
    const open = () => new Promise<number>((resolve) => a.server.getConnections((_e, n) => resolve(n)));
    const deadline = Date.now() + 5000;
    while ((await open()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await open(), 0, "the refused connection is still open on the listener");
    socket.destroy();
  } finally {
    await close(a);
  }
});
