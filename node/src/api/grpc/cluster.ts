// etcdserverpb.Cluster: membership. Changes go through raft as conf changes
// (server.ts addMember/removeMember/updateMember/promoteMember); lists come
// from the membership the apply loop keeps.
import { create } from "@bufbuild/protobuf";
import {
  Cluster,
  MemberAddResponseSchema,
  MemberListResponseSchema,
  MemberPromoteResponseSchema,
  MemberRemoveResponseSchema,
  MemberSchema,
  MemberUpdateResponseSchema,
  type Member,
} from "../../../gen/etcdserverpb/rpc_pb.js";
import type { MemberInfo } from "../../server/membership.js";
import type { EtcdServer } from "../../server/server.js";
import { defineService } from "../registry.js";

function toProto(m: MemberInfo): Member {
  return create(MemberSchema, { ID: m.id, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner });
}

export function clusterService(s: EtcdServer) {
  const members = () => s.membership.list().map(toProto);
  // etcd's cluster server leaves the revision unset in its headers.
  const header = () => s.header(0n);
  return defineService(Cluster, {
    async memberAdd(req) {
      const m = await s.addMember([...req.peerURLs], req.isLearner);
      return create(MemberAddResponseSchema, { header: header(), member: toProto(m), members: members() });
    },
    async memberRemove(req) {
      await s.removeMember(req.ID);
      return create(MemberRemoveResponseSchema, { header: header(), members: members() });
    },
    async memberUpdate(req) {
      await s.updateMember(req.ID, [...req.peerURLs]);
      return create(MemberUpdateResponseSchema, { header: header(), members: members() });
    },
    async memberPromote(req) {
      await s.promoteMember(req.ID);
      if (!s.raft.isLeader) await s.linearizableReadNotify(); // see the promotion the leader applied
      return create(MemberPromoteResponseSchema, { header: header(), members: members() });
    },
    async memberList(req) {
      if (req.linearizable) await s.linearizableReadNotify();
      return create(MemberListResponseSchema, { header: header(), members: members() });
    },
  });
}
