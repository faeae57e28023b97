// etcdserverpb.Maintenance: status, alarms, hashes, defragmentation and snapshots.
import { create } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import {
  AlarmType,
  DefragmentResponseSchema,
  DowngradeInfoSchema,
  HashKVResponseSchema,
  HashResponseSchema,
  Maintenance,
  MoveLeaderResponseSchema,
  SnapshotResponseSchema,
  StatusResponseSchema,
  type AlarmResponse,
} from "../../../gen/etcdserverpb/rpc_pb.js";
import type { EtcdServer } from "../../server/server.js";
import { SERVER_VERSION, STORAGE_VERSION } from "../../version.js";
import { defineService } from "../registry.js";
import { snapshotStream } from "../../server/snapshot.js";

const SNAPSHOT_BLOB_BYTES = 32 * 1024;

export function maintenanceService(s: EtcdServer) {
  return defineService(Maintenance, {
    async alarm(req) {
      return s.propose<AlarmResponse>({ request: { case: "alarm", value: req } });
    },
    async status() {
      const { dbSize, dbSizeInUse } = s.sizes();
      return create(StatusResponseSchema, {
        header: s.header(s.store.durableRev),
        version: SERVER_VERSION,
        dbSize,
        dbSizeInUse,
        leader: s.leader,
        raftIndex: s.raft.committed,
        raftTerm: s.term,
        raftAppliedIndex: s.appliedIndex,
        errors: s.alarms.get().map((a) => `memberID:${a.memberID} alarm:${AlarmType[a.alarm]} `),
        isLearner: s.isLearner,
        storageVersion: STORAGE_VERSION,
        dbSizeQuota: s.quota < 0n ? 0n : s.quota,
        downgradeInfo: create(DowngradeInfoSchema, {}), // no downgrade in progress (etcd 3.6 always sends it)
      });
    },
    async defragment() {
      await s.defragment();
      // etcd (3.4 and 3.6) answers an empty DefragmentResponse: no header.
      return create(DefragmentResponseSchema, {});
    },
    async hash() {
      return create(HashResponseSchema, { header: s.header(s.store.durableRev), hash: await s.hash() });
    },
    async hashKV(req) {
      const h = await s.hashKV(req.revision);
      return create(HashKVResponseSchema, { header: s.header(s.store.durableRev), ...h });
    },
    async snapshot(_req, stream) {
      const header = s.header(s.store.durableRev);
      const sha = createHash("sha256");
      // Streamed from one LevelDB snapshot, read twice: sizes (remaining_bytes is
      // exact, as etcd's), then bytes, as the client takes them.
      const { total, chunks } = await snapshotStream(s.backend, { withSize: true, trailer: false });
      let remaining = total;
      let first = true;
      for await (const chunk of chunks) {
        // etcd sends 32 KiB blobs.
        for (let off = 0; off < chunk.length; off += SNAPSHOT_BLOB_BYTES) {
          const blob = chunk.subarray(off, Math.min(chunk.length, off + SNAPSHOT_BLOB_BYTES));
          sha.update(blob);
          remaining -= BigInt(blob.length);
          await stream.send(create(SnapshotResponseSchema, { header: first ? header : undefined, remainingBytes: remaining + 32n, blob, version: SERVER_VERSION }));
          first = false;
        }
      }
      // etcd ends the stream with the sha256 of what was sent, for integrity checks on restore.
      await stream.send(create(SnapshotResponseSchema, { header: first ? header : undefined, remainingBytes: 0n, blob: sha.digest(), version: SERVER_VERSION }));
    },
    async moveLeader(req) {
      await s.moveLeader(req.targetID);
      return create(MoveLeaderResponseSchema, { header: s.header(s.store.durableRev) });
    },
  });
}
