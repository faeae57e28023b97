// Free TCP ports for servers under test.
//
// Ports come from outside the kernel's ephemeral range (net.ipv4.ip_local_port_range,
// 32768-60999 by default; portRange), chosen at random and checked by binding a throwaway
// server to the port on 127.0.0.1 and releasing it. A port the kernel hands out
// with bind(0) is an ephemeral one, which any outgoing connection of any process
// (a client of another test, etcdctl) may take as its local port between our
// release and the server's own bind: a member restarted on its old port then
// died with "address already in use". Outside the ephemeral range only another
// server's bind can take a port, and concurrent test files each pick at random
// among 22,000. startMember() still retries with new ports on "address already
// in use" before readiness. Within one process we never hand out a port twice.

import { readFileSync } from "node:fs";
import net from "node:net";

const handedOut = new Set<number>();

/**
 * The ports this module hands out, [lo, hi): those below the kernel's ephemeral
 * range (from 10000), or above it when it starts too low to leave room below.
 * Without /proc (not Linux), 10000-32767, below Linux's and the IANA's defaults.
 */
export function portRange(): [number, number] {
  range ??= readPortRange();
  return range;
}

let range: [number, number] | undefined;

function readPortRange(): [number, number] {
  let first = 32768;
  let last = 60999;
  try {
    const [a, b] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(a) && Number.isInteger(b)) [first, last] = [a!, b!];
  } catch {
    // not Linux: keep the defaults
  }
  if (first - 10000 >= 1000) return [10000, first];
  if (65536 - (last + 1) >= 1000) return [last + 1, 65536];
  throw new Error(`freePort: the ephemeral port range ${first}-${last} leaves no room for test servers; narrow net.ipv4.ip_local_port_range`);
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", () => resolve(false));
    srv.listen({ host: "127.0.0.1", port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** One free port on 127.0.0.1, outside the ephemeral range, not handed out before by this process. */
export async function freePort(): Promise<number> {
  const [lo, hi] = portRange();
  for (let i = 0; i < 200; i++) {
    const p = lo + Math.floor(Math.random() * (hi - lo));
    if (handedOut.has(p)) continue;
    if (await bindable(p)) {
      handedOut.add(p);
      return p;
    }
  }
  throw new Error(`freePort: no free port in ${lo}-${hi - 1} after 200 tries`);
}

/** n distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await freePort());
  return out;
}
