// Free TCP ports for servers under test.
//
// A port is found by binding a throwaway net.Server to port 0 on 127.0.0.1
// and releasing it. Between the release and the server's own bind another
// process could take the port; startMember() detects that ("address already
// in use" before readiness) and retries with new ports. Within one process we
// never hand out the same port twice.

import net from "node:net";

const handedOut = new Set<number>();

function probe(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** One free port on 127.0.0.1 not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const p = await probe();
    if (p > 0 && !handedOut.has(p)) {
      handedOut.add(p);
      return p;
    }
  }
  throw new Error("freePort: could not find a free port after 100 tries");
}

/** n distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await freePort());
  return out;
}
