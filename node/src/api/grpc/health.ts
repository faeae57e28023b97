// grpc.health.v1.Health: the overall service ("") is SERVING while the server runs.
import { create } from "@bufbuild/protobuf";
import { Health, HealthCheckResponse_ServingStatus as Status, HealthCheckResponseSchema } from "../../../gen/grpc/health/v1/health_pb.js";
import { Code, EtcdError } from "../../errors.js";
import { defineService } from "../registry.js";

export function healthService() {
  const known = new Set(["", "etcdserverpb.KV"]);
  return defineService(Health, {
    async check(req) {
      if (!known.has(req.service)) throw new EtcdError(Code.NotFound, "unknown service");
      return create(HealthCheckResponseSchema, { status: Status.SERVING });
    },
    async watch(req, stream, ctx) {
      await stream.send(create(HealthCheckResponseSchema, { status: known.has(req.service) ? Status.SERVING : Status.SERVICE_UNKNOWN }));
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        else ctx.signal.addEventListener("abort", () => resolve());
      });
    },
  });
}
