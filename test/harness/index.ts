export { startMember } from "./member.js";
export type { Impl, Member, StartOptions } from "./member.js";
export { freePort, freePorts } from "./ports.js";
export { etcdBinaries, oursMain, oursAvailability, repoRoot, isCI, banner } from "./provision.js";
export type { EtcdBinaries, Availability } from "./provision.js";
export { conformanceTargets, availableTargets } from "./targets.js";
export type { TargetStatus } from "./targets.js";
export { GrpcConn, GrpcCallError, methodPath } from "./grpc.js";
