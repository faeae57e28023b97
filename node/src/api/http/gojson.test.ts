// Go encoding/json behaviours the gateway reproduces. Expected strings are
// what etcd 3.4.23 (Go 1.19) returned for the same input.

import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { PutRequestSchema, RangeRequestSchema, RangeRequest_SortOrder, TxnRequestSchema, WatchResponseSchema } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType } from "../../../gen/mvccpb/kv_pb.js";
import { StreamDecoder, checkValid, goBase64Decode, goJsonString, quoteChar } from "./gojson.js";
import type { DecodeResult } from "./gojson.js";
import { JsonDecodeError, messageFromJson, messageToJson } from "./jsonpb.js";

const enc = new TextEncoder();

function firstValue(body: string | Uint8Array): DecodeResult {
  const d = new StreamDecoder();
  d.write(typeof body === "string" ? enc.encode(body) : body);
  d.end();
  return d.next();
}

test("syntax errors carry Go's messages", () => {
  const cases: [string, string][] = [
    ["xx", "invalid character 'x' looking for beginning of value"],
    ['{"key" "a"}', `invalid character '"' after object key`],
    ['{"key":"Zm9v",}', "invalid character '}' looking for beginning of object key string"],
    ['{"key":"Zm9v" "a"}', `invalid character '"' after object key:value pair`],
    ['{"key":[1 2]}', "invalid character '2' after array element"],
    ['{"key":"a\\x"}', "invalid character 'x' in string escape code"],
    ['{"key":"\\u12"}', `invalid character '"' in \\u hexadecimal character escape`],
    ['{"key":-}', "invalid character '}' in numeric literal"],
    ['{"key":1.}', "invalid character '}' after decimal point in numeric literal"],
    ['{"key":1e}', "invalid character '}' in exponent of numeric literal"],
    ['{"key":tru}', "invalid character '}' in literal true (expecting 'e')"],
    ['{"key":nul }', "invalid character ' ' in literal null (expecting 'l')"],
    ["'", "invalid character '\\'' looking for beginning of value"],
    ["\u0001", "invalid character '\\x01' looking for beginning of value"],
    ['{"key": ', "unexpected EOF"],
  ];
  for (const [input, want] of cases) {
    const r = firstValue(input);
    assert.deepEqual(r, { kind: "error", message: want }, input);
  }
  assert.deepEqual(firstValue(Uint8Array.of(0xff)), { kind: "error", message: "invalid character 'ÿ' looking for beginning of value" });
  assert.equal(quoteChar(0x3c), "'<'");
  assert.equal(checkValid(enc.encode("0x10")), "invalid character 'x' after top-level value");
  assert.equal(checkValid(enc.encode("-")), "invalid character ' ' in numeric literal");
  assert.equal(checkValid(enc.encode("")), "unexpected end of JSON input");
});

test("the decoder frames consecutive values, however the bytes arrive", () => {
  const body = ' {"a":1} [2]\n"s" 12 true null{"b":{}}  ';
  const whole: string[] = [];
  const d = new StreamDecoder();
  d.write(enc.encode(body));
  d.end();
  for (let r = d.next(); r.kind === "value"; r = d.next()) whole.push(new TextDecoder().decode(r.value.buf).trim());
  assert.deepEqual(whole, ['{"a":1}', "[2]", '"s"', "12", "true", "null", '{"b":{}}']);
  assert.deepEqual(d.next(), { kind: "eof" });

  const piecewise: string[] = [];
  const p = new StreamDecoder();
  for (const byte of enc.encode(body)) {
    p.write(Uint8Array.of(byte));
    for (let r = p.next(); r.kind === "value"; r = p.next()) piecewise.push(new TextDecoder().decode(r.value.buf).trim());
  }
  p.end();
  for (let r = p.next(); r.kind === "value"; r = p.next()) piecewise.push(new TextDecoder().decode(r.value.buf).trim());
  assert.deepEqual(piecewise, whole);

  assert.deepEqual(firstValue(""), { kind: "eof" });
  assert.deepEqual(firstValue("  \n"), { kind: "eof" });
  assert.equal(firstValue("12x").kind, "value");
});

test("base64 follows Go's StdEncoding, error offsets included", () => {
  const bad = (s: string) => {
    const r = goBase64Decode(enc.encode(s));
    return "error" in r ? r.error : Buffer.from(r.bytes).toString("latin1");
  };
  assert.equal(bad("my-key"), "illegal base64 data at input byte 2");
  assert.equal(bad("Zm9"), "illegal base64 data at input byte 0");
  assert.equal(bad("Zm9v="), "illegal base64 data at input byte 4");
  assert.equal(bad("Zm9=v"), "illegal base64 data at input byte 4");
  assert.equal(bad("Zm9vYg"), "illegal base64 data at input byte 4");
  assert.equal(bad("Zm8="), "fo");
  assert.equal(bad("Zm9vYg=="), "foob");
  assert.equal(bad("Zm\n9v"), "foo");
  assert.equal(bad(""), "");
});

test("strings are written like Go's json.Marshal", () => {
  assert.equal(goJsonString('<a&b>\u2028é\u0001"\\\n\t'), '"\\u003ca\\u0026b\\u003e\\u2028é\\u0001\\"\\\\\\n\\t"');
  assert.equal(goJsonString("\ud800x"), '"\\ufffdx"');
  assert.equal(goJsonString("😀"), '"😀"');
});

test("jsonpb: names, enums, int64 forms, oneofs, zero values", () => {
  const v = (s: string) => {
    const r = firstValue(s);
    assert.equal(r.kind, "value");
    return r.kind === "value" ? r.value : undefined;
  };
  const rr = messageFromJson(RangeRequestSchema, v('{"key":"YQ==","rangeEnd":"Yg==","range_end":"Yw==","limit":"5","sort_order":"DESCEND","revision":7}'));
  assert.deepEqual([...rr.rangeEnd], [0x62]); // camelCase wins over proto name
  assert.equal(rr.limit, 5n);
  assert.equal(rr.revision, 7n);
  assert.equal(rr.sortOrder, RangeRequest_SortOrder.DESCEND);
  assert.throws(
    () => messageFromJson(RangeRequestSchema, v('{"sort_order":"F\\"O"}')),
    (e: unknown) => e instanceof JsonDecodeError && e.message === 'unknown value "F\\\\\\"O" for enum etcdserverpb.RangeRequest_SortOrder',
  );
  assert.throws(
    () => messageFromJson(PutRequestSchema, v('{"lease":1e2}')),
    (e: unknown) => e instanceof JsonDecodeError && e.message === "json: cannot unmarshal number 1e2 into Go value of type int64",
  );
  const txn = messageFromJson(TxnRequestSchema, v('{"compare":[{"key":"YQ==","version":"0"}],"success":[{"request_put":null},{"requestRange":{}}]}'));
  assert.equal(txn.compare[0]!.targetUnion.case, "version");
  assert.equal(txn.success[0]!.request.case, undefined);
  assert.equal(txn.success[1]!.request.case, "requestRange");
  assert.equal(messageToJson(TxnRequestSchema, txn), '{"compare":[{"key":"YQ==","version":"0"}],"success":[{},{"request_range":{}}]}');

  const w = create(WatchResponseSchema, {
    watchId: 0n,
    created: true,
    events: [{ type: Event_EventType.PUT, kv: { key: enc.encode("k") } }, { type: Event_EventType.DELETE, kv: { key: enc.encode("k"), modRevision: 9n } }],
  });
  assert.equal(
    messageToJson(WatchResponseSchema, w),
    '{"created":true,"events":[{"kv":{"key":"aw=="}},{"type":"DELETE","kv":{"key":"aw==","mod_revision":"9"}}]}',
  );
  assert.equal(messageToJson(RangeRequestSchema, create(RangeRequestSchema, { sortOrder: 7 as RangeRequest_SortOrder })), '{"sort_order":7}');
});
