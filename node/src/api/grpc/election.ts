// v3electionpb.Election: leader election served by the member itself. etcd
// runs its Go client's concurrency.Election recipe against the local server;
// this file runs the same requests through propose() and range() and waits
// with internal watches on the hub (the helpers are in lock.ts).
//
// An election named N is the set of keys under "N/". A candidate's key is
// "N/<lease id in lower-case hex>" holding its value, attached to its lease;
// the leader is the key with the smallest create revision. A LeaderKey
// (name, key, create revision, lease) identifies one term of one leader:
// Proclaim and Resign act only while that key still has that create revision.
//
// Errors reach the caller as etcd sends them: code Unknown with etcd's text
// ("election: not leader", "election: no leader", `"leader" field must be
// provided`, and the KV errors of the requests the recipe makes).

import { create } from "@bufbuild/protobuf";
import type { ResponseHeader } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType, type KeyValue } from "../../../gen/mvccpb/kv_pb.js";
import {
  CampaignResponseSchema,
  Election,
  LeaderResponseSchema,
  ProclaimResponseSchema,
  ResignResponseSchema,
  type LeaderKey,
} from "../../../gen/v3electionpb/v3election_pb.js";
import { Code, EtcdError } from "../../errors.js";
import type { EtcdServer } from "../../server/server.js";
import { defineService } from "../registry.js";
import {
  createRevIs,
  ErrContextCanceled,
  firstCreated,
  InternalWatch,
  opDelete,
  opGet,
  opPut,
  prefixEnd,
  rangeKvs,
  recipeError,
  recipeKey,
  recipePrefix,
  runTxn,
  sessionLease,
  waitDeletes,
} from "./lock.js";

/** concurrency.ErrElectionNotLeader */
export const ErrElectionNotLeader = new EtcdError(Code.Unknown, "election: not leader");
/** concurrency.ErrElectionNoLeader */
export const ErrElectionNoLeader = new EtcdError(Code.Unknown, "election: no leader");
/** v3election.ErrMissingLeaderKey */
export const ErrMissingLeaderKey = new EtcdError(Code.Unknown, '"leader" field must be provided');

/** Puts a new value on the leader key if it is still the same term; returns the txn header. */
async function proclaim(s: EtcdServer, key: Uint8Array, rev: bigint, lease: bigint, value: Uint8Array): Promise<ResponseHeader | undefined> {
  const r = await runTxn(s, { compare: [createRevIs(key, rev)], success: [opPut(key, value, lease)] });
  if (!r.succeeded) throw ErrElectionNotLeader;
  return r.header;
}

/** Deletes the leader key if it is still the same term (no error if it is not). */
async function resign(s: EtcdServer, key: Uint8Array, rev: bigint): Promise<ResponseHeader | undefined> {
  const r = await runTxn(s, { compare: [createRevIs(key, rev)], success: [opDelete(key)] });
  return r.header;
}

function requireLeader(l: LeaderKey | undefined): LeaderKey {
  if (l === undefined) throw ErrMissingLeaderKey;
  return l;
}

export function electionService(s: EtcdServer) {
  return defineService(Election, {
    async campaign(req, ctx) {
      const signal = ctx.signal;
      try {
        if (signal.aborted) throw ErrContextCanceled;
        const lease = await sessionLease(s, req.lease);
        const prefix = recipePrefix(req.name);
        const key = recipeKey(req.name, lease);
        // Stand as a candidate, or resume the candidacy this lease already has.
        const resp = await runTxn(s, {
          compare: [createRevIs(key, 0n)],
          success: [opPut(key, req.value, lease)],
          failure: [opGet({ key })],
        });
        let rev = resp.header?.revision ?? 0n;
        if (!resp.succeeded) {
          const kv = rangeKvs(resp, 0)[0];
          if (kv === undefined) throw new Error("election: own key missing from its txn response");
          rev = kv.createRevision;
          if (!Buffer.from(kv.value).equals(req.value)) {
            try {
              await proclaim(s, key, rev, lease, req.value);
            } catch (err) {
              await resign(s, key, rev).catch(() => undefined);
              throw err;
            }
          }
        }
        // Wait until every older candidate is gone. If the caller goes away,
        // withdraw; on any other failure the key stays (as etcd leaves it).
        try {
          await waitDeletes(s, prefix, rev - 1n, signal);
        } catch (err) {
          if (signal.aborted) await resign(s, key, rev).catch(() => undefined);
          throw err;
        }
        return create(CampaignResponseSchema, {
          header: resp.header,
          leader: { name: req.name, key, rev, lease },
        });
      } catch (err) {
        throw recipeError(err);
      }
    },

    async proclaim(req) {
      try {
        const l = requireLeader(req.leader);
        const lease = await sessionLease(s, l.lease);
        const header = await proclaim(s, l.key, l.rev, lease, req.value);
        return create(ProclaimResponseSchema, { header });
      } catch (err) {
        throw recipeError(err);
      }
    },

    async leader(req) {
      try {
        const r = await s.range(firstCreated(recipePrefix(req.name)));
        const kv = r.kvs[0];
        if (kv === undefined) throw ErrElectionNoLeader;
        return create(LeaderResponseSchema, { header: r.header, kv });
      } catch (err) {
        throw recipeError(err);
      }
    },

    async resign(req) {
      try {
        const l = requireLeader(req.leader);
        await sessionLease(s, l.lease); // etcd opens (and orphans) a session here too
        const header = await resign(s, l.key, l.rev);
        return create(ResignResponseSchema, { header });
      } catch (err) {
        throw recipeError(err);
      }
    },

    // The current leader, then every new value of it, then each next leader,
    // until the caller goes away. Like etcd, it does not promise every
    // intermediate value, only that the latest one is always sent. A read
    // error or a lost watch ends the stream (without an error, as etcd does).
    async observe(req, stream, ctx) {
      const signal = ctx.signal;
      const prefix = recipePrefix(req.name);
      const send = (header: ResponseHeader | undefined, kv: KeyValue) => stream.send(create(LeaderResponseSchema, { header, kv }));
      while (!signal.aborted) {
        let r;
        try {
          r = await s.range(firstCreated(prefix));
        } catch {
          return;
        }
        let kv: KeyValue | undefined = r.kvs[0];
        let header = r.header;
        if (kv === undefined) {
          // No leader: wait for the first put under the prefix.
          const w = new InternalWatch(s, prefix, prefixEnd(prefix), r.header?.revision ?? 0n, signal);
          try {
            while (kv === undefined) {
              const m = await w.next();
              if (m === undefined || m.canceled) return;
              const ev = m.events.find((e) => e.type === Event_EventType.PUT);
              if (ev?.kv !== undefined) {
                kv = ev.kv;
                // The response may cover several revisions: report the put's.
                header = s.header(kv.modRevision);
              }
            }
          } finally {
            w.close();
          }
        }
        await send(header, kv);
        // Follow the leader's key: each put is a new value; a delete ends its term.
        const w = new InternalWatch(s, kv.key, new Uint8Array(0), (header?.revision ?? 0n) + 1n, signal);
        try {
          for (let deleted = false; !deleted; ) {
            const m = await w.next();
            if (m === undefined || m.canceled) return;
            for (const ev of m.events) {
              if (ev.type === Event_EventType.DELETE) {
                deleted = true;
                break;
              }
              if (ev.kv !== undefined) await send(m.header, ev.kv);
            }
          }
        } finally {
          w.close();
        }
      }
    },
  });
}
