// etcdserverpb.KV: validate, then read locally or propose to the log.
import type { CompactionResponse, DeleteRangeResponse, PutResponse, TxnResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import { KV } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { EtcdServer } from "../../server/server.js";
import { defineService } from "../registry.js";
import { checkDelete, checkPut, checkRange, checkTxn, putCost, txnCost } from "../validate.js";

export function kvService(s: EtcdServer) {
  return defineService(KV, {
    async range(req) {
      checkRange(req);
      return s.range(req);
    },
    async put(req) {
      checkPut(req);
      await s.checkQuota(putCost(req));
      return s.propose<PutResponse>({ request: { case: "put", value: req } });
    },
    async deleteRange(req) {
      checkDelete(req);
      return s.propose<DeleteRangeResponse>({ request: { case: "deleteRange", value: req } });
    },
    async txn(req) {
      checkTxn(req, s.opts.maxTxnOps);
      const readOnly = s.isReadOnlyTxn(req);
      if (!readOnly) await s.checkQuota(txnCost(req));
      return s.propose<TxnResponse>({ request: { case: "txn", value: req } }, { readOnly });
    },
    async compact(req) {
      return (await s.compact(req.revision, req.physical)) as CompactionResponse;
    },
  });
}
