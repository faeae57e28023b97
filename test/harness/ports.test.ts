// freePort hands out ports below the kernel's ephemeral range (so no outgoing
// connection can take one between the check and the server's bind), distinct
// within a process, and bindable when handed out.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import { freePort, freePorts } from "./ports.js";

test("freePort: distinct, bindable ports below the ephemeral range", async () => {
  const ephemeralStart = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
  const ports = [...(await freePorts(30)), await freePort()];
  assert.equal(new Set(ports).size, ports.length, `a port was handed out twice: ${ports.join(",")}`);
  for (const p of ports) {
    assert.ok(p >= 10000 && p < ephemeralStart, `port ${p} is not in 10000-${ephemeralStart - 1}`);
  }
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
