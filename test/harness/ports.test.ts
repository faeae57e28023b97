// freePort hands out ports outside the kernel's ephemeral range (so no outgoing
// connection can take one between the check and the server's bind), distinct
// within a process, and bindable when handed out.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import { freePort, freePorts, portRange } from "./ports.js";

const RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range";

test("freePort: distinct, bindable ports outside the ephemeral range", async () => {
  const [lo, hi] = portRange();
  if (existsSync(RANGE_FILE)) {
    const [first, last] = readFileSync(RANGE_FILE, "utf8").trim().split(/\s+/).map(Number);
    assert.ok(hi <= first! || lo > last!, `portRange ${lo}-${hi - 1} overlaps the ephemeral range ${first}-${last}`);
  }
  const ports = [...(await freePorts(30)), await freePort()];
  assert.equal(new Set(ports).size, ports.length, `a port was handed out twice: ${ports.join(",")}`);
  for (const p of ports) assert.ok(p >= lo && p < hi, `port ${p} is not in ${lo}-${hi - 1}`);
  const servers: net.Server[] = [];
  try {
    for (const p of ports) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen({ host: "127.0.0.1", port: p, exclusive: true }, resolve);
      });
      servers.push(s);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
});
