// etcdserverpb.Watch: one bidirectional stream carrying many watchers. The
// receive side creates/cancels watchers and asks for progress; the send side
// drains the stream's queue (watch/hub.ts) at the client's pace.
import { Watch, WatchCreateRequest_FilterType as Filter } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { EtcdServer } from "../../server/server.js";
import { defineService } from "../registry.js";

export function watchService(s: EtcdServer) {
  return defineService(Watch, {
    async watch(stream, ctx) {
      const ws = s.hub.openStream();
      const sender = (async () => {
        for (;;) {
          const m = await ws.next();
          if (m === undefined) return;
          await stream.send(m);
        }
      })();
      const onAbort = () => ws.close();
      ctx.signal.addEventListener("abort", onAbort);
      try {
        for await (const req of stream.requests) {
          const r = req.requestUnion;
          if (r.case === "createRequest") {
            const c = r.value;
            s.hub.watch(
              ws,
              {
                key: c.key,
                rangeEnd: c.rangeEnd,
                startRevision: c.startRevision,
                prevKv: c.prevKv,
                noPut: c.filters.includes(Filter.NOPUT),
                noDelete: c.filters.includes(Filter.NODELETE),
                progressNotify: c.progressNotify,
                fragment: c.fragment,
              },
              c.watchId,
            );
          } else if (r.case === "cancelRequest") {
            s.hub.cancel(ws, r.value.watchId);
          } else if (r.case === "progressRequest") {
            s.hub.requestProgress(ws);
          }
        }
        // The client half-closed: keep sending until the client goes away.
        await new Promise<void>((resolve) => {
          if (ctx.signal.aborted) resolve();
          else ctx.signal.addEventListener("abort", () => resolve());
        });
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
        ws.close();
        await sender.catch(() => undefined);
      }
    },
  });
}
