// Our HTTP/2 server side (h2.ts) and HPACK decoder (hpack.ts) against the real
// thing: Node's own HTTP/2 client (nghttp2) sends the requests, with its own
// header compression and flow control, and checks the answers. The gRPC layer
// over it is covered by the server and conformance suites (run them with
// ETCDTS_GRPC_TRANSPORT=own).

import { test } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { randomBytes } from "node:crypto";
import { H2Connection, type H2Headers, type H2Options, type H2Stream } from "./h2.js";
import { HpackDecoder, encodeHeaderBlock, writeInt } from "../hpack.js";

interface Served {
  url: string;
  conns: H2Connection[];
  close(): Promise<void>;
}

async function serve(onStream: (s: H2Stream, h: H2Headers) => void, opts: H2Options = {}): Promise<Served> {
  const conns: H2Connection[] = [];
  const srv = net.createServer((sock) => conns.push(new H2Connection(sock, opts, onStream)));
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    conns,
    close: () =>
      new Promise<void>((r) => {
        for (const c of conns) c.destroy();
        srv.close(() => r());
      }),
  };
}

function request(
  client: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders | undefined; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = client.request(headers, { endStream: body === undefined, waitForTrailers: false });
    let h: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    req.on("response", (x) => (h = x));
    req.on("trailers", (x) => (trailers = x));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve({ headers: h, trailers, body: Buffer.concat(chunks) }));
    req.on("error", reject);
    if (body !== undefined) req.end(body);
  });
}

// ---- a raw client: frames written and read by hand, for what Node's client will not send ----

const CLIENT_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

interface RawFrame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

function rawFrame(type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(9);
  b.writeUIntBE(payload.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(id, 5);
  return Buffer.concat([b, payload]);
}

function requestBlock(path: string): Buffer {
  return encodeHeaderBlock([[":method", "POST"], [":scheme", "http"], [":path", path], [":authority", "x"]]);
}

/** A socket to `srv` that keeps what it reads; frames() parses the complete frames so far. */
function rawConnect(srv: Served): { sock: net.Socket; closed: Promise<void>; frames(): RawFrame[] } {
  const sock = net.connect(Number(new URL(srv.url).port), "127.0.0.1");
  const got: Buffer[] = [];
  sock.on("data", (c: Buffer) => got.push(c));
  sock.on("error", () => {});
  const closed = new Promise<void>((r) => sock.once("close", () => r()));
  const frames = (): RawFrame[] => {
    const all = Buffer.concat(got);
    const out: RawFrame[] = [];
    for (let i = 0; i + 9 <= all.length && i + 9 + all.readUIntBE(i, 3) <= all.length; i += 9 + all.readUIntBE(i, 3)) {
      out.push({ type: all[i + 3]!, flags: all[i + 4]!, id: all.readUInt32BE(i + 5), payload: all.subarray(i + 9, i + 9 + all.readUIntBE(i, 3)) });
    }
    return out;
  };
  return { sock, closed, frames };
}

/** The error code of the GOAWAY among `frames`, if there is one. */
function goawayCode(frames: RawFrame[]): number | undefined {
  return frames.find((f) => f.type === 7)?.payload.readUInt32BE(4);
}

test("HPACK: RFC 7541 appendix C.3 and C.4 request examples decode to the same fields", () => {
  const expect = [
    [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"]],
    [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"], ["cache-control", "no-cache"]],
    [[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [":authority", "www.example.com"], ["custom-key", "custom-value"]],
  ];
  const plain = ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865", "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"];
  const huffman = ["828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf", "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"];
  for (const blocks of [plain, huffman]) {
    const d = new HpackDecoder(); // one connection: the second and third use the table the first filled
    blocks.forEach((hex, i) => assert.deepEqual(d.decode(Buffer.from(hex, "hex")), expect[i]));
  }
});

test("HPACK: what encodeHeaderBlock writes decodes back", () => {
  const fields: [string, string][] = [[":status", "200"], [":status", "415"], ["content-type", "application/grpc"], ["grpc-status", "0"], ["x-long", "v".repeat(300)]];
  assert.deepEqual(new HpackDecoder().decode(encodeHeaderBlock(fields)), fields);
});

test("requests from Node's HTTP/2 client: every header arrives as sent, over many requests on one connection (its dynamic table)", async () => {
  const srv = await serve((s, h) => {
    s.respond({ ":status": 200, "content-type": "application/json" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "x-trailer": "done", "grpc-status": "0" }));
    s.end(Buffer.from(JSON.stringify(h)));
  });
  const client = http2.connect(srv.url);
  try {
    const pool = Array.from({ length: 8 }, (_, i) => `value-${i}-${"x".repeat(i * 40)}`);
    for (let i = 0; i < 300; i++) {
      const sent: Record<string, string> = {};
      // Repeated values (indexed after the first time), fresh ones, and long ones that evict.
      sent["x-repeat"] = pool[i % pool.length]!;
      sent["x-fresh"] = `n${i}-${randomBytes(6).toString("hex")}`;
      if (i % 7 === 0) sent["x-big"] = randomBytes(1500).toString("base64");
      if (i % 11 === 0) sent["authorization"] = `secret-${i}`;
      if (i % 13 === 0) sent["constructor"] = `not-a-prototype-${i}`; // a name every plain object has
      const r = await request(client, { ":method": "POST", ":path": `/svc/m${i}`, ...sent });
      assert.equal(r.headers[":status"], 200);
      assert.equal(r.trailers?.["x-trailer"], "done");
      const got = JSON.parse(r.body.toString()) as Record<string, string>;
      assert.equal(got[":path"], `/svc/m${i}`);
      assert.equal(got[":method"], "POST");
      for (const [k, v] of Object.entries(sent)) assert.equal(got[k], v, `request ${i}, header ${k}`);
    }
  } finally {
    client.close();
    await srv.close();
  }
});

test("large bodies both ways, many streams at once: flow control keeps every byte in order", async () => {
  const srv = await serve((s) => {
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.once("end", () => {
      const all = Buffer.concat(chunks);
      s.respond({ ":status": 200 }, { waitForTrailers: true });
      s.once("wantTrailers", () => s.sendTrailers({ "x-len": String(all.length) }));
      // Echo in 64 KiB writes, waiting for 'drain' as a writer must.
      let off = 0;
      const pump = (): void => {
        while (off < all.length) {
          const ok = s.write(all.subarray(off, off + 65536));
          off += 65536;
          if (!ok) {
            s.once("drain", pump);
            return;
          }
        }
        s.end();
      };
      pump();
    });
  });
  const client = http2.connect(srv.url);
  try {
    const one = randomBytes(3 * 1024 * 1024 + 17);
    const r = await request(client, { ":method": "POST", ":path": "/echo" }, one);
    assert.equal(r.trailers?.["x-len"], String(one.length));
    assert.ok(r.body.equals(one), "3 MiB echo");
    const many = Array.from({ length: 20 }, (_, i) => randomBytes(200_000 + i));
    const rs = await Promise.all(many.map((b) => request(client, { ":method": "POST", ":path": "/echo" }, b)));
    rs.forEach((x, i) => assert.ok(x.body.equals(many[i]!), `stream ${i}`));
  } finally {
    client.close();
    await srv.close();
  }
});

test("a stream the client resets ends with 'close' on ours; the connection serves on", async () => {
  let closedOnServer: () => void = () => {};
  const closed = new Promise<void>((r) => (closedOnServer = r));
  const srv = await serve((s, h) => {
    if (h[":path"] === "/hang") {
      s.once("close", () => closedOnServer());
      return; // never answers
    }
    s.respond({ ":status": 200 });
    s.end(Buffer.from("ok"));
  });
  const client = http2.connect(srv.url);
  try {
    const req = client.request({ ":method": "POST", ":path": "/hang" });
    req.on("error", () => {});
    // Give the server the stream, then cancel it (if the reset comes first, the stream still opens and closes).
    await new Promise((r) => setTimeout(r, 50));
    req.close(http2.constants.NGHTTP2_CANCEL);
    await closed;
    const r = await request(client, { ":method": "POST", ":path": "/after" });
    assert.equal(r.body.toString(), "ok");
  } finally {
    client.close();
    await srv.close();
  }
});

test("close(): GOAWAY; the call in progress finishes, then the connection ends", async () => {
  let answer: () => void = () => {};
  const srv = await serve((s) => {
    answer = () => {
      s.respond({ ":status": 200 });
      s.end(Buffer.from("late"));
    };
  });
  const client = http2.connect(srv.url);
  const goaway = new Promise<void>((r) => client.once("goaway", () => r()));
  const clientClosed = new Promise<void>((r) => client.once("close", () => r()));
  try {
    const pending = request(client, { ":method": "POST", ":path": "/slow" });
    await new Promise((r) => setTimeout(r, 50));
    srv.conns[0]!.close();
    await goaway;
    answer();
    assert.equal((await pending).body.toString(), "late");
    await clientClosed;
  } finally {
    client.destroy();
    await srv.close();
  }
});

test("a connection that does not start with the HTTP/2 preface gets GOAWAY PROTOCOL_ERROR and is closed", async () => {
  const srv = await serve(() => assert.fail("no stream expected"));
  try {
    const c = rawConnect(srv);
    c.sock.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await c.closed;
    // Our SETTINGS and WINDOW_UPDATE, then GOAWAY with PROTOCOL_ERROR (1).
    assert.equal(goawayCode(c.frames()), 1);
  } finally {
    await srv.close();
  }
});

test("keepalive: a client that answers pings stays; one that does not is closed after the timeout", async () => {
  const srv = await serve(
    (s) => {
      s.respond({ ":status": 200 });
      s.end(Buffer.from("ok"));
    },
    { keepaliveTimeMs: 50, keepaliveTimeoutMs: 100 },
  );
  const client = http2.connect(srv.url);
  try {
    // A raw client: preface and SETTINGS, and never a PING ACK.
    const c = rawConnect(srv);
    c.sock.write(Buffer.concat([CLIENT_PREFACE, EMPTY_SETTINGS]));
    await c.closed;
    // Node's client acknowledged every ping meanwhile and is still served.
    const r = await request(client, { ":method": "POST", ":path": "/x" });
    assert.equal(r.body.toString(), "ok");
  } finally {
    client.close();
    await srv.close();
  }
});

test("a client sending beyond the stream's window gets RST_STREAM FLOW_CONTROL_ERROR; the connection serves on", async () => {
  let opened = 0;
  const srv = await serve((s, h) => {
    opened++;
    if (h[":path"] === "/paused") {
      s.pause(); // takes nothing: the window is never given back
      return;
    }
    s.respond({ ":status": 200 });
    s.end(Buffer.from("ok"));
  });
  try {
    const c = rawConnect(srv);
    const parts: Buffer[] = [CLIENT_PREFACE, EMPTY_SETTINGS, rawFrame(1, 4, 1, requestBlock("/paused"))];
    // Our stream window is 1 MiB: 65 frames of 16 KiB go over it.
    for (let i = 0; i < 65; i++) parts.push(rawFrame(0, 0, 1, Buffer.alloc(16384)));
    parts.push(rawFrame(1, 5, 3, requestBlock("/after")));
    c.sock.write(Buffer.concat(parts));
    // Wait for stream 3's answer: its END_STREAM DATA.
    let fs = c.frames();
    for (let tries = 0; tries < 200 && !fs.some((f) => f.id === 3 && f.type === 0); tries++) {
      await new Promise((r) => setTimeout(r, 25));
      fs = c.frames();
    }
    const rst = fs.find((f) => f.type === 3 && f.id === 1);
    assert.ok(rst !== undefined, "RST_STREAM on stream 1");
    assert.equal(rst.payload.readUInt32BE(0), 3, "FLOW_CONTROL_ERROR");
    assert.equal(fs.find((f) => f.type === 0 && f.id === 3)?.payload.toString(), "ok");
    assert.equal(opened, 2);
    c.sock.destroy();
  } finally {
    await srv.close();
  }
});

test("a client that opens and resets streams faster than nghttp2's limit (rapid reset) gets GOAWAY ENHANCE_YOUR_CALM", async () => {
  let opened = 0;
  const srv = await serve(() => opened++);
  try {
    const c = rawConnect(srv);
    const hdrs = requestBlock("/x");
    const cancel = Buffer.from([0, 0, 0, 8]);
    const parts: Buffer[] = [CLIENT_PREFACE, EMPTY_SETTINGS];
    for (let i = 0; i < 1100; i++) parts.push(rawFrame(1, 4, 2 * i + 1, hdrs), rawFrame(3, 0, 2 * i + 1, cancel));
    c.sock.write(Buffer.concat(parts));
    await c.closed;
    assert.equal(goawayCode(c.frames()), 0xb);
    assert.ok(opened > 1000 && opened < 1100, `streams opened before the GOAWAY: ${opened}`);
  } finally {
    await srv.close();
  }
});

test("a slow reader gets a large answer whole, then the trailers and GOAWAY of a graceful close (nothing queued is dropped)", async () => {
  const big = randomBytes(8 << 20);
  let conn: H2Connection | undefined;
  const srv = await serve((s) => {
    s.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(big);
    conn!.close(); // while most of the answer still waits for the client to read
  });
  try {
    const c = rawConnect(srv);
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(4, 0);
    settings.writeUInt32BE(2 ** 31 - 1, 2); // a stream window large enough for the whole answer
    const wu = Buffer.alloc(4);
    wu.writeUInt32BE(2 ** 31 - 1 - 65535);
    await new Promise<void>((r) => c.sock.once("connect", () => r()));
    conn = srv.conns[0];
    c.sock.pause(); // reads nothing for a while: the server's socket fills up
    c.sock.write(Buffer.concat([CLIENT_PREFACE, rawFrame(4, 0, 0, settings), rawFrame(8, 0, 0, wu), rawFrame(1, 5, 1, requestBlock("/x"))]));
    await new Promise((r) => setTimeout(r, 300));
    c.sock.resume();
    await c.closed;
    const fs = c.frames();
    const data = Buffer.concat(fs.filter((f) => f.type === 0 && f.id === 1).map((f) => f.payload));
    assert.ok(data.equals(big), `DATA bytes: ${data.length} of ${big.length}`);
    assert.ok(fs.some((f) => f.type === 1 && f.id === 1 && (f.flags & 1) === 1), "trailers");
    assert.ok(goawayCode(fs) !== undefined, "GOAWAY");
  } finally {
    await srv.close();
  }
});

test("a header block made of endless empty CONTINUATION frames ends the connection (GOAWAY ENHANCE_YOUR_CALM)", async () => {
  const srv = await serve(() => assert.fail("no stream expected"));
  try {
    const c = rawConnect(srv);
    const parts: Buffer[] = [CLIENT_PREFACE, EMPTY_SETTINGS, rawFrame(1, 1, 1, requestBlock("/x"))]; // HEADERS without END_HEADERS
    for (let i = 0; i < 10_000; i++) parts.push(rawFrame(9, 0, 1));
    c.sock.write(Buffer.concat(parts));
    await c.closed;
    assert.equal(goawayCode(c.frames()), 0xb);
  } finally {
    await srv.close();
  }
});

test("HPACK: a small block that repeats a large table entry is refused past the header list limit", () => {
  const value = "v".repeat(4000);
  // A literal with incremental indexing (0x40, new name) puts the field in the table; index 62 then refers to it.
  const lit = Buffer.concat([Buffer.from([0x40, 5]), Buffer.from("x-big"), Buffer.from(writeInt(value.length, 7, 0)), Buffer.from(value)]);
  const block = Buffer.concat([lit, Buffer.alloc(1000, 0xbe)]);
  assert.equal(new HpackDecoder().decode(block).length, 1001); // no limit: the list is 4 MB
  assert.throws(() => new HpackDecoder(4096, 65536).decode(block), /header list larger than 65536 bytes/);
});
