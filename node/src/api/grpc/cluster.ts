// etcdserverpb.Cluster: membership. One member until the Raft work lands;
// changing membership answers Unimplemented (registry default) until then.
import { create } from "@bufbuild/protobuf";
import { Cluster, MemberListResponseSchema, MemberSchema } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { EtcdServer } from "../../server/server.js";
import { defineService } from "../registry.js";

export function clusterService(s: EtcdServer) {
  return defineService(Cluster, {
    async memberList() {
      return create(MemberListResponseSchema, {
        header: s.header(0n),
        members: [
          create(MemberSchema, {
            ID: s.memberId,
            name: s.opts.name,
            peerURLs: s.opts.initialAdvertisePeerUrls,
            clientURLs: s.opts.advertiseClientUrls,
          }),
        ],
      });
    },
  });
}
