// Every gRPC service one member serves, built over one EtcdServer.
import type { AnyServiceImpl } from "../api/registry.js";
import { clusterService } from "../api/grpc/cluster.js";
import { electionService } from "../api/grpc/election.js";
import { healthService } from "../api/grpc/health.js";
import { kvService } from "../api/grpc/kv.js";
import { leaseService } from "../api/grpc/lease.js";
import { lockService } from "../api/grpc/lock.js";
import { maintenanceService } from "../api/grpc/maintenance.js";
import { watchService } from "../api/grpc/watch.js";
import type { EtcdServer } from "./server.js";

export function allServices(s: EtcdServer): AnyServiceImpl[] {
  return [kvService(s), watchService(s), leaseService(s), maintenanceService(s), clusterService(s), healthService(), lockService(s), electionService(s)];
}
