// HPACK pieces against RFC 7541's worked examples, and the connection judge
// against Node's own HTTP/2 server and client (nghttp2 on both ends is the
// judge of whether the rewritten bytes are valid HTTP/2).

import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";
import { describe, it } from "node:test";
import { DynamicTable, HpackError, huffmanDecode, readInt, rewriteHeaderBlock, writeInt } from "./hpack.js";
import { authorityWithoutScheme, judgeGrpcConnection } from "./h2authority.js";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");
const PREFACE_LENGTH = 24;

describe("HPACK (RFC 7541 examples)", () => {
  it("integers: C.1.1-C.1.3", () => {
    assert.deepEqual(writeInt(10, 5, 0), [0x0a]);
    assert.deepEqual(writeInt(1337, 5, 0), [0x1f, 0x9a, 0x0a]);
    assert.deepEqual(writeInt(42, 8, 0), [0x2a]);
    assert.deepEqual(readInt(Buffer.from([0x1f, 0x9a, 0x0a]), 0, 5), [1337, 3]);
    assert.deepEqual(readInt(Buffer.from([0xea]), 0, 5), [10, 1]); // flag bits above the prefix ignored
    assert.throws(() => readInt(Buffer.from([0x1f, 0x9a]), 0, 5), HpackError);
  });

  it("Huffman: C.4.1 and C.6.1 strings; bad padding refused", () => {
    assert.equal(huffmanDecode(hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")).toString(), "www.example.com");
    assert.equal(huffmanDecode(hex("6402")).toString(), "302");
    assert.equal(huffmanDecode(hex("aec3 771a 4b")).toString(), "private");
    assert.equal(huffmanDecode(hex("9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3")).toString(), "https://www.example.com");
    assert.throws(() => huffmanDecode(hex("f1e3 c2e5 f23a 6ba0 ab90 f400")), HpackError); // zero padding
    assert.throws(() => huffmanDecode(hex("ffff ffff")), HpackError); // EOS inside the string
  });

  it("rewrites a literal :authority and keeps the dynamic table in step (C.4.1 then C.4.2)", () => {
    const table = new DynamicTable();
    const first = rewriteHeaderBlock(hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"), table, ":authority", () => "x.org");
    assert.deepEqual(first.seen, ["www.example.com"]);
    assert.equal(first.changed, true);
    // Same fields; the value is now a plain literal "x.org".
    assert.deepEqual(first.block, Buffer.concat([hex("8286 8441 05"), Buffer.from("x.org")]));
    // The second request refers to the dynamic entry (index 62): passed as is.
    const second = rewriteHeaderBlock(hex("8286 84be 5886 a8eb 1064 9cbf"), table, ":authority", () => "never");
    assert.equal(second.changed, false);
    assert.deepEqual(second.block, hex("8286 84be 5886 a8eb 1064 9cbf"));
    assert.equal(table.name(62), "cache-control");
    assert.equal(table.name(63), ":authority");
    assert.throws(() => table.name(64), HpackError);
  });

  it("leaves a block alone when nothing needs fixing", () => {
    const block = hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff");
    const r = rewriteHeaderBlock(block, new DynamicTable(), ":authority", authorityWithoutScheme);
    assert.equal(r.changed, false);
    assert.deepEqual(r.block, block);
  });

  it("authorityWithoutScheme", () => {
    assert.equal(authorityWithoutScheme("http://127.0.0.1:2379"), "127.0.0.1:2379");
    assert.equal(authorityWithoutScheme("https://[::1]:2379/x/y"), "[::1]:2379");
    assert.equal(authorityWithoutScheme("127.0.0.1:2379"), undefined);
  });
});

/** Node's HTTP/2 server behind the judge, as the client port runs it; records what each connection became. */
async function judgedServer(): Promise<{ port: number; kinds: string[]; close(): Promise<void> }> {
  const h2 = http2.createServer();
  h2.on("stream", (stream, headers) => {
    stream.respond({ ":status": 200 });
    stream.end(String(headers[":authority"]));
  });
  const kinds: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const chunks: Buffer[] = [];
    const onReadable = () => {
      let c: Buffer | null;
      while ((c = socket.read() as Buffer | null) !== null) chunks.push(c);
      const head = Buffer.concat(chunks);
      if (head.length < PREFACE_LENGTH) return;
      socket.off("readable", onReadable);
      judgeGrpcConnection(socket, head, PREFACE_LENGTH, (conn: Duplex) => {
        kinds.push(conn instanceof net.Socket ? "raw" : "rewriting");
        h2.emit("connection", conn);
      });
    };
    socket.on("readable", onReadable);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    kinds,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function get(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<{ body: string; status: number | undefined; error?: string }> {
  return new Promise((resolve) => {
    const req = session.request({ ":path": "/", ...headers });
    let body = "";
    let status: number | undefined;
    req.on("response", (h) => (status = h[":status"]));
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("error", (e) => resolve({ body, status, error: e.message }));
    req.on("end", () => resolve({ body, status }));
    req.end();
  });
}

describe("judgeGrpcConnection with nghttp2 on both ends", () => {
  it("a clean connection is handed over raw and served", async () => {
    const srv = await judgedServer();
    const c = http2.connect(`http://127.0.0.1:${srv.port}`);
    try {
      assert.deepEqual(await get(c, {}), { body: `127.0.0.1:${srv.port}`, status: 200 });
      assert.deepEqual(await get(c, { ":authority": "example:1" }), { body: "example:1", status: 200 });
      assert.deepEqual(srv.kinds, ["raw"]);
    } finally {
      c.close();
      await srv.close();
    }
  });

  it("a scheme in :authority is removed, on every request of the connection, large header blocks too", async () => {
    const srv = await judgedServer();
    const c = http2.connect(`http://127.0.0.1:${srv.port}`);
    try {
      const auth = `http://127.0.0.1:${srv.port}`;
      const want = { body: `127.0.0.1:${srv.port}`, status: 200 };
      assert.deepEqual(await get(c, { ":authority": auth }), want);
      assert.deepEqual(await get(c, { ":authority": auth }), want); // now from the dynamic table
      // A header block over one frame (40 KB of headers): re-split into CONTINUATION frames.
      const big = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`x-big-${i}`, String(i).repeat(4000)]));
      assert.deepEqual(await get(c, { ":authority": auth, ...big }), want);
      assert.deepEqual(await get(c, { ":authority": "https://other:9/p" }), { body: "other:9", status: 200 });
      assert.deepEqual(await get(c, {}), want);
      assert.deepEqual(srv.kinds, ["rewriting"]);
    } finally {
      c.close();
      await srv.close();
    }
  });

  it("without the judge, nghttp2 refuses such a request (what the judge is for)", async () => {
    const h2 = http2.createServer((_req, res) => res.end("served"));
    await new Promise<void>((r) => h2.listen(0, "127.0.0.1", r));
    const port = (h2.address() as net.AddressInfo).port;
    const c = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const r = await get(c, { ":authority": `http://127.0.0.1:${port}` });
      assert.match(r.error ?? "", /PROTOCOL_ERROR/);
    } finally {
      c.close();
      await new Promise<void>((r) => h2.close(() => r()));
    }
  });

  it("an idle connection is handed over unjudged and still works", async () => {
    const srv = await judgedServer();
    const c = http2.connect(`http://127.0.0.1:${srv.port}`);
    try {
      await new Promise<void>((r) => c.once("connect", () => r()));
      await new Promise((r) => setTimeout(r, 1500)); // about the judge's idle wait
      // Answered whether the idle timer or the PING itself handed the connection over.
      const ping = await new Promise<boolean>((r) => c.ping((err) => r(err === null)));
      assert.equal(ping, true);
      assert.deepEqual(srv.kinds, ["raw"]);
      assert.deepEqual(await get(c, {}), { body: `127.0.0.1:${srv.port}`, status: 200 });
    } finally {
      c.close();
      await srv.close();
    }
  });
});
