// The etcd membership calls the reconciler makes, behind one small interface so decisions can
// be exercised against real etcd members (tests) or anything else that speaks etcd's Cluster
// and Maintenance services. Member IDs cross this seam as 16-digit lower-case hex strings
// (etcdctl's spelling), never as `number`.
//
// Contract:
//  - list() asks any reachable endpoint and returns the full membership, learners included,
//    with `name` empty for a member that has been added but has not started yet.
//  - status(endpoint) asks exactly that member; it throws when the member does not answer
//    within the timeout. The reconciler treats a throw as "unhealthy".
//  - health(endpoint) is `etcdctl endpoint health`: a linearizable Get of "health" from
//    exactly that member; it throws when the member cannot serve one within the timeout (a
//    member can answer Status and still be unable to serve: e.g. one restarted over a wiped
//    data directory under its old ID, whose raft log is behind what the leader knows it had).
//    Learners refuse linearizable reads, so it is asked of voters only.
//  - add/promote/remove/moveLeader are etcd's MemberAdd(isLearner)/MemberPromote/
//    MemberRemove/MoveLeader; errors carry etcd's own messages (e.g. "etcdserver: can only
//    promote a learner member which is in sync with leader").

import { Cluster, KV, Maintenance } from "../../node/gen/etcdserverpb/rpc_pb.js";
import { EtcdClient } from "../../node/src/ctl/client.js";

export interface EtcdMember {
  readonly id: string;
  readonly name: string;
  readonly peerURLs: readonly string[];
  readonly clientURLs: readonly string[];
  readonly isLearner: boolean;
}

export interface MemberStatus {
  readonly memberId: string;
  readonly clusterId: string;
  readonly leaderId: string;
  readonly raftIndex: bigint;
  readonly version: string;
  readonly isLearner: boolean;
}

export interface Membership {
  list(): Promise<EtcdMember[]>;
  status(clientURL: string): Promise<MemberStatus>;
  health(clientURL: string): Promise<void>;
  add(peerURL: string, learner: boolean): Promise<EtcdMember>;
  promote(id: string): Promise<void>;
  remove(id: string): Promise<void>;
  /** Asks the current leader (reached at leaderClientURL) to hand leadership to `toId`. */
  moveLeader(leaderClientURL: string, toId: string): Promise<void>;
  close(): void;
}

export const hexId = (id: bigint): string => id.toString(16).padStart(16, "0");
export const idFromHex = (hex: string): bigint => BigInt(`0x${hex}`);

function member(m: { ID: bigint; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean }): EtcdMember {
  return { id: hexId(m.ID), name: m.name, peerURLs: [...m.peerURLs], clientURLs: [...m.clientURLs], isLearner: m.isLearner };
}

/** The real thing, over gRPC with the project's own client and protos. */
export class GrpcMembership implements Membership {
  private readonly all: EtcdClient;
  private readonly single = new Map<string, EtcdClient>();

  constructor(endpoints: readonly string[], private readonly timeoutMs = 5000) {
    this.all = new EtcdClient({ endpoints, dialTimeoutMs: timeoutMs });
  }

  private one(url: string): EtcdClient {
    let c = this.single.get(url);
    if (c === undefined) {
      c = new EtcdClient({ endpoints: [url], dialTimeoutMs: this.timeoutMs });
      this.single.set(url, c);
    }
    return c;
  }

  async list(): Promise<EtcdMember[]> {
    const r = await this.all.service(Cluster).memberList({ linearizable: true }, { timeoutMs: this.timeoutMs });
    return r.members.map(member);
  }

  async status(clientURL: string): Promise<MemberStatus> {
    const r = await this.one(clientURL).service(Maintenance).status({}, { timeoutMs: this.timeoutMs });
    return {
      memberId: hexId(r.header?.memberId ?? 0n),
      clusterId: hexId(r.header?.clusterId ?? 0n),
      leaderId: hexId(r.leader),
      raftIndex: r.raftIndex,
      version: r.version,
      isLearner: r.isLearner,
    };
  }

  async health(clientURL: string): Promise<void> {
    try {
      await this.one(clientURL).service(KV).range({ key: new TextEncoder().encode("health") }, { timeoutMs: this.timeoutMs });
    } catch (err) {
      // etcdctl counts "permission denied" as healthy: the member served the request.
      if (err instanceof Error && /permission denied/.test(err.message)) return;
      throw err;
    }
  }

  async add(peerURL: string, learner: boolean): Promise<EtcdMember> {
    const r = await this.all.service(Cluster).memberAdd({ peerURLs: [peerURL], isLearner: learner }, { timeoutMs: this.timeoutMs });
    if (r.member === undefined) throw new Error("MemberAdd answered without the new member");
    return member(r.member);
  }

  async promote(id: string): Promise<void> {
    await this.all.service(Cluster).memberPromote({ ID: idFromHex(id) }, { timeoutMs: this.timeoutMs });
  }

  async remove(id: string): Promise<void> {
    await this.all.service(Cluster).memberRemove({ ID: idFromHex(id) }, { timeoutMs: this.timeoutMs });
  }

  async moveLeader(leaderClientURL: string, toId: string): Promise<void> {
    await this.one(leaderClientURL).service(Maintenance).moveLeader({ targetID: idFromHex(toId) }, { timeoutMs: this.timeoutMs });
  }

  close(): void {
    this.all.close();
    for (const c of this.single.values()) c.close();
    this.single.clear();
  }
}
