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
    const sock = net.connect(Number(new URL(srv.url).port), "127.0.0.1");
    const got: Buffer[] = [];
    sock.on("data", (c: Buffer) => got.push(c));
    sock.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await new Promise<void>((r) => sock.once("close", () => r()));
    const all = Buffer.concat(got);
    // Our SETTINGS and WINDOW_UPDATE, then GOAWAY (type 7) with PROTOCOL_ERROR (1).
    let i = 0;
    let goawayCode: number | undefined;
    while (i + 9 <= all.length) {
      const len = all.readUIntBE(i, 3);
      if (all[i + 3] === 7) goawayCode = all.readUInt32BE(i + 9 + 4);
      i += 9 + len;
    }
    assert.equal(goawayCode, 1);
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
    const sock = net.connect(Number(new URL(srv.url).port), "127.0.0.1");
    sock.on("data", () => {});
    sock.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    await new Promise<void>((r) => sock.once("close", () => r()));
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
    const sock = net.connect(Number(new URL(srv.url).port), "127.0.0.1");
    const got: Buffer[] = [];
    sock.on("data", (c: Buffer) => got.push(c));
    const frame = (type: number, flags: number, id: number, payload: Buffer): Buffer => {
      const b = Buffer.alloc(9);
      b.writeUIntBE(payload.length, 0, 3);
      b[3] = type;
      b[4] = flags;
      b.writeUInt32BE(id, 5);
      return Buffer.concat([b, payload]);
    };
    const hdrs = (path: string) => encodeHeaderBlock([[":method", "POST"], [":scheme", "http"], [":path", path], [":authority", "x"]]);
    const parts = [Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(4, 0, 0, Buffer.alloc(0)), frame(1, 4, 1, hdrs("/paused"))];
    // Our stream window is 1 MiB: 65 frames of 16 KiB go over it.
    for (let i = 0; i < 65; i++) parts.push(frame(0, 0, 1, Buffer.alloc(16384)));
    parts.push(frame(1, 5, 3, hdrs("/after")));
    sock.write(Buffer.concat(parts));
    const frames = async (): Promise<{ type: number; id: number; payload: Buffer }[]> => {
      for (let tries = 0; tries < 200; tries++) {
        const all = Buffer.concat(got);
        const out: { type: number; id: number; payload: Buffer }[] = [];
        let i = 0;
        while (i + 9 <= all.length && i + 9 + all.readUIntBE(i, 3) <= all.length) {
          const len = all.readUIntBE(i, 3);
          out.push({ type: all[i + 3]!, id: all.readUInt32BE(i + 5), payload: all.subarray(i + 9, i + 9 + len) });
          i += 9 + len;
        }
        // Wait for stream 3's answer: its END_STREAM DATA.
        if (out.some((f) => f.id === 3 && f.type === 0)) return out;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error("no answer on stream 3");
    };
    const fs = await frames();
    const rst = fs.find((f) => f.type === 3 && f.id === 1);
    assert.ok(rst !== undefined, "RST_STREAM on stream 1");
    assert.equal(rst.payload.readUInt32BE(0), 3, "FLOW_CONTROL_ERROR");
    assert.equal(fs.find((f) => f.type === 0 && f.id === 3)?.payload.toString(), "ok");
    assert.equal(opened, 2);
    sock.destroy();
  } finally {
    await srv.close();
  }
});

test("a client that opens and resets streams faster than nghttp2's limit (rapid reset) gets GOAWAY ENHANCE_YOUR_CALM", async () => {
  let opened = 0;
  const srv = await serve(() => opened++);
  try {
    const sock = net.connect(Number(new URL(srv.url).port), "127.0.0.1");
    const got: Buffer[] = [];
    sock.on("data", (c: Buffer) => got.push(c));
    const closed = new Promise<void>((r) => sock.once("close", () => r()));
    sock.on("error", () => {});
    const frame = (type: number, flags: number, id: number, payload: Buffer): Buffer => {
      const b = Buffer.alloc(9);
      b.writeUIntBE(payload.length, 0, 3);
      b[3] = type;
      b[4] = flags;
      b.writeUInt32BE(id, 5);
      return Buffer.concat([b, payload]);
    };
    const hdrs = encodeHeaderBlock([[":method", "POST"], [":scheme", "http"], [":path", "/x"], [":authority", "x"]]);
    const cancel = Buffer.from([0, 0, 0, 8]);
    const parts = [Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(4, 0, 0, Buffer.alloc(0))];
    for (let i = 0; i < 1100; i++) parts.push(frame(1, 4, 2 * i + 1, hdrs), frame(3, 0, 2 * i + 1, cancel));
    sock.write(Buffer.concat(parts));
    await closed;
    const all = Buffer.concat(got);
    let goawayCode: number | undefined;
    for (let i = 0; i + 9 <= all.length; i += 9 + all.readUIntBE(i, 3)) if (all[i + 3] === 7) goawayCode = all.readUInt32BE(i + 9 + 4);
    assert.equal(goawayCode, 0xb);
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
    const sock = net.connect(Number(new URL(srv.url).port), "127.0.0.1");
    const frame = (type: number, flags: number, id: number, payload: Buffer): Buffer => {
      const b = Buffer.alloc(9);
      b.writeUIntBE(payload.length, 0, 3);
      b[3] = type;
      b[4] = flags;
      b.writeUInt32BE(id, 5);
      return Buffer.concat([b, payload]);
    };
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(4, 0);
    settings.writeUInt32BE(2 ** 31 - 1, 2); // a stream window large enough for the whole answer
    const wu = Buffer.alloc(4);
    wu.writeUInt32BE(2 ** 31 - 1 - 65535);
    const hdrs = encodeHeaderBlock([[":method", "POST"], [":scheme", "http"], [":path", "/x"], [":authority", "x"]]);
    await new Promise<void>((r) => sock.once("connect", () => r()));
    conn = srv.conns[0];
    sock.pause(); // reads nothing for a while: the server's socket fills up
    sock.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(4, 0, 0, settings), frame(8, 0, 0, wu), frame(1, 5, 1, hdrs)]));
    const got: Buffer[] = [];
    await new Promise((r) => setTimeout(r, 300));
    conn ??= srv.conns[0];
    sock.on("data", (c: Buffer) => got.push(c));
    sock.resume();
    await new Promise<void>((r) => sock.once("close", () => r()));
    const all = Buffer.concat(got);
    const data: Buffer[] = [];
    let trailers = false;
    let goaway = false;
    for (let i = 0; i + 9 <= all.length; i += 9 + all.readUIntBE(i, 3)) {
      const len = all.readUIntBE(i, 3);
      const type = all[i + 3]!;
      const id = all.readUInt32BE(i + 5);
      if (type === 0 && id === 1) data.push(all.subarray(i + 9, i + 9 + len));
      if (type === 1 && id === 1 && (all[i + 4]! & 1) === 1) trailers = true;
      if (type === 7) goaway = true;
    }
    assert.ok(Buffer.concat(data).equals(big), `DATA bytes: ${Buffer.concat(data).length} of ${big.length}`);
    assert.ok(trailers, "trailers");
    assert.ok(goaway, "GOAWAY");
  } finally {
    await srv.close();
  }
});

test("a header block made of endless empty CONTINUATION frames ends the connection (GOAWAY ENHANCE_YOUR_CALM)", async () => {
  const srv = await serve(() => assert.fail("no stream expected"));
  try {
    const sock = net.connect(Number(new URL(srv.url).port), "127.0.0.1");
    const got: Buffer[] = [];
    sock.on("data", (c: Buffer) => got.push(c));
    sock.on("error", () => {});
    const closed = new Promise<void>((r) => sock.once("close", () => r()));
    const head = (type: number, flags: number, id: number, len: number): Buffer => {
      const b = Buffer.alloc(9);
      b.writeUIntBE(len, 0, 3);
      b[3] = type;
      b[4] = flags;
      b.writeUInt32BE(id, 5);
      return b;
    };
    const block = encodeHeaderBlock([[":method", "POST"], [":path", "/x"]]);
    const parts = [Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), head(4, 0, 0, 0), head(1, 1, 1, block.length), block]; // HEADERS without END_HEADERS
    for (let i = 0; i < 10_000; i++) parts.push(head(9, 0, 1, 0));
    sock.write(Buffer.concat(parts));
    await closed;
    const all = Buffer.concat(got);
    let code: number | undefined;
    for (let i = 0; i + 9 <= all.length; i += 9 + all.readUIntBE(i, 3)) if (all[i + 3] === 7) code = all.readUInt32BE(i + 9 + 4);
    assert.equal(code, 0xb);
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
