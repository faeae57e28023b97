// etcdserverpb.Lease: grants and revokes go through the log; keep-alives and
// TTL queries are answered from this member's lessor.
import { create } from "@bufbuild/protobuf";
import {
  Lease,
  LeaseKeepAliveResponseSchema,
  LeaseLeasesResponseSchema,
  LeaseStatusSchema,
  LeaseTimeToLiveResponseSchema,
  type LeaseGrantResponse,
  type LeaseRevokeResponse,
} from "../../../gen/etcdserverpb/rpc_pb.js";
import { Errors } from "../../errors.js";
import { MAX_LEASE_TTL } from "../../lease/lessor.js";
import type { EtcdServer } from "../../server/server.js";
import { defineService } from "../registry.js";

/** etcd's quota cost of a lease grant. */
const LEASE_COST = 64;

export function leaseService(s: EtcdServer) {
  return defineService(Lease, {
    async leaseGrant(req) {
      if (req.TTL > MAX_LEASE_TTL) throw Errors.LeaseTTLTooLarge;
      await s.checkQuota(LEASE_COST);
      const ID = req.ID === 0n ? s.newLeaseId() : req.ID;
      return s.propose<LeaseGrantResponse>({ request: { case: "leaseGrant", value: { ID, TTL: req.TTL } } });
    },
    async leaseRevoke(req) {
      return s.propose<LeaseRevokeResponse>({ request: { case: "leaseRevoke", value: req } });
    },
    async leaseKeepAlive(stream) {
      for await (const req of stream.requests) {
        const header = s.header(s.store.durableRev);
        // Renewed by the leader (forwarded from a follower). An unknown or expired
        // lease answers TTL 0, not an error (etcd).
        const ttl = await s.renewLease(req.ID);
        await stream.send(create(LeaseKeepAliveResponseSchema, { header, ID: req.ID, TTL: ttl }));
      }
    },
    async leaseTimeToLive(req) {
      const header = s.header(s.store.durableRev);
      const t = await s.leaseTimeToLive(req.ID);
      if (t.ttl === -1n) return create(LeaseTimeToLiveResponseSchema, { header, ID: req.ID, TTL: -1n });
      return create(LeaseTimeToLiveResponseSchema, {
        header,
        ID: req.ID,
        TTL: t.ttl,
        grantedTTL: t.grantedTTL,
        keys: req.keys ? t.keys.map((k) => Buffer.from(k, "latin1")) : [],
      });
    },
    async leaseLeases() {
      return create(LeaseLeasesResponseSchema, {
        header: s.header(s.store.durableRev),
        leases: s.lessor.all().map((l) => create(LeaseStatusSchema, { ID: l.id })),
      });
    },
  });
}
