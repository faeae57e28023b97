// The Go-compatible primitives, checked against outputs of Go itself
// (values printed by etcdctl 3.4 / Go 1.19, noted beside each case).

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { CommandTree, FlagError } from "./flags.js";
import {
  goDurationString, goJsonString, goParseDuration, goParseInt, goQuote, goTabwriter, goUnquotePrefix, humanizeBytes,
  renderTable,
} from "./gofmt.js";
import { argify, parseCompare } from "./txn.js";

describe("gofmt", () => {
  it("time.Duration.String", () => {
    assert.equal(goDurationString(0n), "0s");
    assert.equal(goDurationString(999n), "999ns");
    assert.equal(goDurationString(880_293n), "880.293µs");
    assert.equal(goDurationString(1_052_678n), "1.052678ms");
    assert.equal(goDurationString(1_500_000_000n), "1.5s");
    assert.equal(goDurationString(123_500_000_000n), "2m3.5s");
    assert.equal(goDurationString(3_600_000_000_000n), "1h0m0s");
  });

  it("time.ParseDuration", () => {
    assert.equal(goParseDuration("5s"), 5e9);
    assert.equal(goParseDuration("1m30s"), 90e9);
    assert.equal(goParseDuration("1.5ms"), 1.5e6);
    assert.equal(goParseDuration("1ns"), 1);
    assert.throws(() => goParseDuration("x"), { message: 'time: invalid duration "x"' });
    assert.throws(() => goParseDuration("5"), { message: 'time: missing unit in duration "5"' });
  });

  it("strconv.ParseInt and its errors", () => {
    assert.equal(goParseInt("694d7a1b2c3d4e5f", 16), 0x694d7a1b2c3d4e5fn);
    assert.equal(goParseInt("0x10", 0), 16n);
    assert.equal(goParseInt("-12", 10), -12n);
    assert.throws(() => goParseInt("zz", 16), { message: 'strconv.ParseInt: parsing "zz": invalid syntax' });
    assert.throws(() => goParseInt("ffffffffffffffffff", 16), { message: 'strconv.ParseInt: parsing "ffffffffffffffffff": value out of range' });
    assert.throws(() => goParseInt("0x10", 16), { message: 'strconv.ParseInt: parsing "0x10": invalid syntax' });
  });

  it("humanize.Bytes", () => {
    assert.equal(humanizeBytes(9n), "9 B");
    assert.equal(humanizeBytes(20480n), "20 kB");
    assert.equal(humanizeBytes(24576n), "25 kB");
    assert.equal(humanizeBytes(479232n), "479 kB");
    assert.equal(humanizeBytes(1_400_000n), "1.4 MB");
    assert.equal(humanizeBytes(20_500n), "20 kB"); // 20.5 rounds half to even in Go's %.0f
  });

  it("%q and encoding/json strings", () => {
    assert.equal(goQuote("foo"), '"foo"');
    assert.equal(goQuote(Buffer.from([0x76, 0x01, 0x09, 0x0a, 0xc3, 0xa9, 0xff])), '"v\\x01\\t\\né\\xff"');
    assert.equal(goQuote("\u2028"), '"\\u2028"');
    assert.equal(goJsonString('<a&"b">\n\u0001'), '"\\u003ca\\u0026\\"b\\"\\u003e\\n\\u0001"');
    assert.deepEqual(goUnquotePrefix('"a\\tb" rest'), { value: "a\tb", used: 6 });
    assert.equal(goUnquotePrefix('"unterminated'), undefined);
  });

  it("text/tabwriter with tab padding", () => {
    assert.equal(goTabwriter("\tshort\tA\n\tmuch-longer-name\tB\n"), "\tshort\t\t\tA\n\tmuch-longer-name\tB\n");
  });

  it("tablewriter: right-aligned cells, centred headers, wrapping at 30 columns", () => {
    const out = renderTable(["endpoint", "errors"], [["127.0.0.1:42379", "memberID:10276657743932975437 alarm:NOSPACE "]]);
    assert.equal(out, [
      "+-----------------+--------------------------------+",
      "|    ENDPOINT     |             ERRORS             |",
      "+-----------------+--------------------------------+",
      "| 127.0.0.1:42379 |  memberID:10276657743932975437 |",
      "|                 |                 alarm:NOSPACE  |",
      "+-----------------+--------------------------------+",
      "",
    ].join("\n"));
  });
});

describe("flag parsing (pflag semantics)", () => {
  const tree = new CommandTree({
    name: "root", use: "root", short: "",
    persistentFlags: [{ name: "write-out", short: "w", kind: "string", def: "simple", usage: "" },
      { name: "endpoints", kind: "stringSlice", def: "127.0.0.1:2379", usage: "" }],
    children: [{ name: "get", use: "get", short: "", flags: [{ name: "prefix", kind: "bool", def: "false", usage: "" },
      { name: "limit", kind: "int64", def: "0", usage: "" }] }],
  });

  it("finds the command around global flags and parses interspersed flags", () => {
    const { cmd, rest } = tree.find(["--endpoints", "a:1", "get", "k", "-wjson", "--prefix", "--limit=0x10", "--endpoints", "b:2,c:3"]);
    assert.equal(cmd.name, "get");
    const inv = tree.parse(cmd, rest);
    assert.deepEqual(inv.args, ["k"]);
    assert.equal(inv.flags.string("write-out"), "json");
    assert.equal(inv.flags.bool("prefix"), true);
    assert.equal(inv.flags.int("limit"), 16n);
    assert.deepEqual(inv.flags.slice("endpoints"), ["a:1", "b:2", "c:3"]);
  });

  it("'--' ends flags", () => {
    const inv = tree.parse(tree.find(["get", "--", "-k", "--prefix"]).cmd, ["--", "-k", "--prefix"]);
    assert.deepEqual(inv.args, ["-k", "--prefix"]);
    assert.equal(inv.argsLenAtDash, 0);
  });

  it("reports errors with pflag's texts", () => {
    const get = tree.find(["get"]).cmd;
    assert.throws(() => tree.parse(get, ["--bogus"]), new FlagError(get, "unknown flag: --bogus"));
    assert.throws(() => tree.parse(get, ["-5"]), { message: "unknown shorthand flag: '5' in -5" });
    assert.throws(() => tree.parse(get, ["--limit"]), { message: "flag needs an argument: --limit" });
    assert.throws(() => tree.parse(get, ["-w"]), { message: "flag needs an argument: 'w' in -w" });
    assert.throws(() => tree.parse(get, ["--limit", "x"]),
      { message: 'invalid argument "x" for "--limit" flag: strconv.ParseInt: parsing "x": invalid syntax' });
  });
});

describe("txn grammar", () => {
  it("argify splits like etcdctl", () => {
    assert.deepEqual(argify(`put k "a b\\tc" 'x y' plain`), ["put", "k", "a b\tc", "x y", "plain"]);
  });

  it("parses compares", () => {
    const c = parseCompare('mod("k") > "5"');
    assert.equal(c.targetUnion.case, "modRevision");
    assert.equal(c.targetUnion.value, 5n);
    assert.equal(parseCompare('lease("k") = "694d7a1b2c3d4e5f"').targetUnion.value, 0x694d7a1b2c3d4e5fn);
    assert.throws(() => parseCompare('mod("a")>"0"'), { message: 'malformed comparison: mod("a")>"0"; got mod("a")  ""' });
    assert.throws(() => parseCompare('value("a") ~ "0"'), { message: 'malformed comparison: value("a") ~ "0" (unknown result op ~)' });
  });
});
