// The raft wire format: every message type round-trips field for field, and the
// frame parser copes with any split of the byte stream.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { MessageSchema, MessageType as PbMessageType } from "../../gen/etcdts/raft_pb.js";
import { CAMPAIGN_TRANSFER, MessageTypes, encodeConfChange, msg, type Entry, type Message, type Snapshot } from "../raft/index.js";
import {
  CodecError,
  FrameDecoder,
  KEEPALIVE_FRAME,
  decodeConfState,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodeSnapshot,
  encodeConfState,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodeMessageFrame,
  encodeSnapshot,
  frame,
  messageFromPb,
  messageToPb,
  readMessage,
} from "./codec.js";

const MAX = 0xffff_ffff_ffff_ffffn;
const bytes = (s: string) => new TextEncoder().encode(s);

const entries: Entry[] = [
  { term: 1n, index: 1n, type: "normal", data: new Uint8Array(0) },
  { term: 2n, index: 2n, type: "normal", data: bytes("put foo bar") },
  { term: MAX, index: MAX, type: "confChange", data: encodeConfChange({ type: "addLearnerNode", nodeId: 0xabcdef0123456789n, context: bytes("http://x:2380") }) },
];

const snapshot: Snapshot = {
  metadata: { index: 1000n, term: 7n, confState: { voters: [1n, 2n, MAX], learners: [0x8e9e05c52164694dn] } },
  data: bytes("inline snapshot data"),
};

/** One message of each type, with the fields that type uses set to non-zero values. */
function sampleOf(type: Message["type"]): Message {
  const base = { type, to: 0x8211f1d0f64f3269n, from: 0x91bc3c398fb3c146n, term: 5n };
  switch (type) {
    case "MsgApp":
      return msg({ ...base, logTerm: 4n, index: 99n, entries, commit: 98n });
    case "MsgAppResp":
      return msg({ ...base, index: 42n, reject: true, rejectHint: 40n, logTerm: 3n });
    case "MsgSnap":
      return msg({ ...base, snapshot });
    case "MsgHeartbeat":
      return msg({ ...base, commit: 17n, context: bytes("read-ctx-1") });
    case "MsgHeartbeatResp":
      return msg({ ...base, context: bytes("read-ctx-1") });
    case "MsgVote":
    case "MsgPreVote":
      return msg({ ...base, index: 12n, logTerm: 4n, context: CAMPAIGN_TRANSFER });
    case "MsgVoteResp":
    case "MsgPreVoteResp":
      return msg({ ...base, reject: true });
    case "MsgProp":
      return msg({ ...base, term: 0n, entries: [{ term: 0n, index: 0n, type: "normal", data: bytes("proposal") }] });
    case "MsgReadIndex":
      return msg({ ...base, term: 0n, entries: [{ term: 0n, index: 0n, type: "normal", data: bytes("rctx") }] });
    case "MsgReadIndexResp":
      return msg({ ...base, index: 77n, entries: [{ term: 0n, index: 0n, type: "normal", data: bytes("rctx") }] });
    case "MsgSnapStatus":
      return msg({ ...base, reject: true });
    default:
      return msg(base);
  }
}

describe("raft message codec", () => {
  for (const type of MessageTypes) {
    test(`${type} round-trips`, () => {
      const m = sampleOf(type);
      const back = decodeMessage(encodeMessage(m));
      assert.deepStrictEqual(back, m);
      // Key presence matches too (optional keys absent, not undefined).
      assert.deepStrictEqual(Object.keys(back).sort(), Object.keys(m).sort());
    });
  }

  test("a zero-valued message round-trips (all defaults, no optional keys)", () => {
    const m = msg({ type: "MsgHup" });
    const enc = encodeMessage(m);
    assert.equal(enc.length, 0, "proto3 writes nothing for defaults");
    assert.deepStrictEqual(decodeMessage(enc), m);
  });

  test("empty context and empty snapshot are kept apart from absent ones", () => {
    const withEmpty = msg({ type: "MsgHeartbeat", to: 1n, from: 2n, context: new Uint8Array(0) });
    assert.deepStrictEqual(decodeMessage(encodeMessage(withEmpty)), withEmpty);
    assert.ok("context" in decodeMessage(encodeMessage(withEmpty)));
    const without = msg({ type: "MsgHeartbeat", to: 1n, from: 2n });
    assert.ok(!("context" in decodeMessage(encodeMessage(without))));
    const emptySnap = msg({
      type: "MsgSnap",
      to: 1n,
      from: 2n,
      snapshot: { metadata: { index: 0n, term: 0n, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) },
    });
    assert.deepStrictEqual(decodeMessage(encodeMessage(emptySnap)), emptySnap);
  });

  test("uint64 extremes survive", () => {
    const m = msg({ type: "MsgApp", to: MAX, from: 1n, term: MAX, logTerm: MAX - 1n, index: MAX, commit: MAX, rejectHint: MAX });
    assert.deepStrictEqual(decodeMessage(encodeMessage(m)), m);
  });

  test("HardState, Entry, Snapshot, ConfState round-trip", () => {
    for (const hs of [
      { term: 0n, vote: 0n, commit: 0n },
      { term: 3n, vote: 0x8211f1d0f64f3269n, commit: MAX },
    ]) {
      assert.deepStrictEqual(decodeHardState(encodeHardState(hs)), hs);
    }
    for (const e of entries) assert.deepStrictEqual(decodeEntry(encodeEntry(e)), e);
    assert.deepStrictEqual(decodeSnapshot(encodeSnapshot(snapshot)), snapshot);
    assert.deepStrictEqual(decodeConfState(encodeConfState(snapshot.metadata.confState)), snapshot.metadata.confState);
  });

  test("wire numbers follow raftpb", () => {
    const enc = toBinary(MessageSchema, create(MessageSchema, { type: PbMessageType.MSG_PRE_VOTE_RESP, to: 1n }));
    assert.equal(decodeMessage(enc).type, "MsgPreVoteResp");
    assert.equal(PbMessageType.MSG_SNAP, 7);
    assert.equal(PbMessageType.MSG_HEARTBEAT, 8);
  });

  test("garbage and unknown enum values are refused", () => {
    assert.throws(() => decodeMessage(Uint8Array.of(0x0a, 0xff)), CodecError);
    const unknownType = toBinary(MessageSchema, create(MessageSchema, { type: 99 as PbMessageType, to: 1n }));
    assert.throws(() => decodeMessage(unknownType), /unknown message type 99/);
  });
});

/** xorshift32: the same random messages on every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** A random message: each field zero, small, 32-bit, or up to 2^64-1 (member IDs are). */
function randomMessage(next: () => number): Message {
  const pick = <T>(xs: readonly T[]): T => xs[next() % xs.length]!;
  const u64 = (): bigint => {
    switch (next() % 4) {
      case 0:
        return 0n;
      case 1:
        return BigInt(next() % 300);
      case 2:
        return BigInt(next());
      default:
        return (BigInt(next()) << 32n) | BigInt(next());
    }
  };
  const data = (): Uint8Array => Uint8Array.from({ length: pick([0, 1, 127, 128, 300, 20_000]) }, () => next() & 0xff);
  const ents: Entry[] = Array.from({ length: pick([0, 0, 1, 1, 2, 5]) }, () => ({ term: u64(), index: u64(), type: pick(["normal", "normal", "confChange"] as const), data: data() }));
  return msg({
    type: pick(MessageTypes.filter((t) => t !== "MsgSnap")),
    to: u64(),
    from: u64(),
    term: u64(),
    logTerm: u64(),
    index: u64(),
    entries: ents,
    commit: u64(),
    reject: next() % 2 === 0,
    rejectHint: u64(),
    ...(next() % 3 === 0 ? { context: data() } : {}),
  });
}

/** What the protobuf-es decoding makes of `b`: the message, or the error's class (fromBinary's errors become CodecErrors). */
function reflectDecode(b: Uint8Array): Message | string {
  let pb;
  try {
    pb = fromBinary(MessageSchema, b);
  } catch {
    return "CodecError";
  }
  try {
    return messageFromPb(pb);
  } catch (err) {
    return (err as Error).name;
  }
}

function handDecode(b: Uint8Array): Message | string {
  try {
    return decodeMessage(b);
  } catch (err) {
    return (err as Error).name;
  }
}

describe("raft message codec by hand", () => {
  test("writes protobuf-es's bytes and reads them back, for 3,000 random messages", () => {
    const next = rng(6);
    for (let i = 0; i < 3000; i++) {
      const m = randomMessage(next);
      const want = toBinary(MessageSchema, messageToPb(m));
      const got = encodeMessage(m);
      assert.deepStrictEqual(Buffer.from(got), Buffer.from(want), `message ${i}: ${m.type}`);
      assert.deepStrictEqual(encodeMessageFrame(m), frame(want));
      const back = decodeMessage(want);
      assert.deepStrictEqual(back, m);
      assert.deepStrictEqual(readMessage(want), m, "read by hand, not by the protobuf-es fallback");
      assert.deepStrictEqual(Object.keys(back).sort(), Object.keys(m).sort());
    }
  });

  test("reads what protobuf-es reads, or refuses what it refuses, for damaged and foreign bytes", () => {
    const next = rng(7);
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.from(encodeMessage(randomMessage(next)));
      if (b.length === 0) continue;
      switch (i % 4) {
        case 0: // one byte changed
          b[next() % b.length] = next() & 0xff;
          break;
        case 1: // cut short
          break;
        case 2: // a field protobuf-es keeps as unknown, or a snapshot, appended
          break;
        default: // random bytes
          for (let j = 0; j < b.length; j++) b[j] = next() & 0xff;
      }
      let input: Uint8Array = b;
      if (i % 4 === 1) input = b.subarray(0, next() % b.length);
      if (i % 4 === 2) input = Buffer.concat([b, i % 8 === 2 ? Buffer.from([0x68, 0x05]) : Buffer.from(encodeMessage(msg({ type: "MsgSnap", snapshot })))]);
      const want = reflectDecode(input);
      if (typeof want === "string") refused++;
      assert.deepStrictEqual(handDecode(input), want, `case ${i}: ${Buffer.from(input).toString("hex").slice(0, 80)}`);
    }
    assert.ok(refused > 100, `only ${refused} inputs were refused: the damage is too mild to test refusals`);
  });
});

describe("frames", () => {
  test("any split of a stream of frames yields the same frames, each in its own buffer", () => {
    const payloads = [bytes("a"), new Uint8Array(0), bytes("hello world"), new Uint8Array(70_000).fill(7), bytes("z")];
    const stream = Buffer.concat(payloads.map((p) => frame(p)));
    for (const step of [1, 2, 3, 4, 5, 7, 1000, stream.length]) {
      const dec = new FrameDecoder(1 << 20);
      const got: Uint8Array[] = [];
      for (let i = 0; i < stream.length; i += step) got.push(...dec.push(stream.subarray(i, i + step)));
      assert.equal(got.length, payloads.length, `step ${step}`);
      got.forEach((g, i) => {
        assert.deepStrictEqual(Buffer.from(g), Buffer.from(payloads[i]!));
        assert.equal(g.byteOffset, 0);
        assert.equal(g.buffer.byteLength, g.length, "a frame owns its memory");
      });
      assert.equal(dec.buffered, 0);
    }
  });

  test("keepalive is an empty frame", () => {
    assert.deepStrictEqual([...new FrameDecoder(16).push(KEEPALIVE_FRAME)].map((f) => f.length), [0]);
  });

  test("a frame over the limit is refused before it is buffered", () => {
    const dec = new FrameDecoder(100);
    const hdr = Buffer.alloc(4);
    hdr.writeUInt32BE(101);
    assert.throws(() => dec.push(hdr), /exceeds the limit of 100/);
  });
});
