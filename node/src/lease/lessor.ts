// Leases: a TTL that keys can be attached to; when the lease expires or is
// revoked, its keys are deleted (in one revision).
//
// Grants and revokes are log entries (applied by the apply loop, persisted in
// the backend). Expiry is local: the server's clock decides when a lease has
// expired, and the server then proposes a revoke through the log, so every
// replica deletes the same keys at the same revision. Keep-alives only move
// the in-memory deadline, as in etcd; after a restart every lease gets a full
// TTL again (etcd does the same when a member becomes leader).

import { Errors } from "../errors.js";
import { NS_LEASE, type BatchOp } from "../mvcc/backend.js";
import type { Backend } from "../mvcc/backend.js";
import type { LeaseHooks } from "../mvcc/store.js";

/** A monotonic millisecond clock (injected so tests and the simulator control time). */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => performance.now() };

/** etcd's upper bound on a lease TTL, in seconds. */
export const MAX_LEASE_TTL = 9_000_000_000n;

export interface Lease {
  readonly id: bigint;
  /** Granted TTL in seconds (after raising to the minimum). */
  readonly ttl: bigint;
  /** Clock time (ms) at which the lease expires. */
  expiry: number;
  readonly keys: Set<string>;
}

function leaseKey(id: bigint): Buffer {
  const b = Buffer.allocUnsafe(9);
  b[0] = NS_LEASE;
  b.writeBigInt64BE(id, 1);
  return b;
}

export class Lessor implements LeaseHooks {
  private readonly leases = new Map<bigint, Lease>();

  /** @param minTTL seconds; shorter requested TTLs are raised to it, as etcd does. */
  constructor(
    private readonly clock: Clock,
    readonly minTTL: bigint,
  ) {}

  /** Loads persisted leases; attached keys come from the store's index. */
  async restore(backend: Backend, leasedKeys: Iterable<[bigint, string]>): Promise<void> {
    const now = this.clock.now();
    for await (const [k, v] of backend.range(Buffer.from([NS_LEASE]), Buffer.from([NS_LEASE + 1]))) {
      const id = k.readBigInt64BE(1);
      const ttl = v.readBigInt64BE(0);
      this.leases.set(id, { id, ttl, expiry: now + Number(ttl) * 1000, keys: new Set() });
    }
    for (const [id, key] of leasedKeys) this.leases.get(id)?.keys.add(key);
  }

  /** Forgets every lease (before restore() from a replaced backend). */
  clear(): void {
    this.leases.clear();
  }

  lookup(id: bigint): Lease | undefined {
    return this.leases.get(id);
  }

  all(): Lease[] {
    return [...this.leases.values()];
  }

  /** Apply loop: creates the lease. */
  grant(id: bigint, ttl: bigint, ops: BatchOp[]): Lease {
    if (this.leases.has(id)) throw Errors.LeaseExist;
    const t = ttl < this.minTTL ? this.minTTL : ttl;
    const l: Lease = { id, ttl: t, expiry: this.clock.now() + Number(t) * 1000, keys: new Set() };
    this.leases.set(id, l);
    const v = Buffer.allocUnsafe(8);
    v.writeBigInt64BE(t);
    ops.push({ type: "put", key: leaseKey(id), value: v });
    return l;
  }

  /** Apply loop: forgets the lease. The caller deletes its keys in the same txn. */
  revoke(id: bigint, ops: BatchOp[]): void {
    this.leases.delete(id);
    ops.push({ type: "del", key: leaseKey(id) });
  }

  /** Keep-alive: returns the TTL granted again, or undefined if the lease is gone or expired. */
  renew(id: bigint): bigint | undefined {
    const l = this.leases.get(id);
    if (l === undefined) return undefined;
    const now = this.clock.now();
    if (l.expiry <= now) return undefined;
    l.expiry = now + Number(l.ttl) * 1000;
    return l.ttl;
  }

  /** Remaining whole seconds (truncated), as etcd reports in TimeToLive. */
  remaining(l: Lease): bigint {
    const ms = l.expiry - this.clock.now();
    return ms <= 0 ? 0n : BigInt(Math.floor(ms / 1000));
  }

  /** Leases whose deadline has passed, oldest first, at most `max`. */
  expired(max: number): bigint[] {
    const now = this.clock.now();
    const out: Lease[] = [];
    for (const l of this.leases.values()) if (l.expiry <= now) out.push(l);
    out.sort((a, b) => a.expiry - b.expiry);
    return out.slice(0, max).map((l) => l.id);
  }

  attach(lease: bigint, key: string): void {
    this.leases.get(lease)?.keys.add(key);
  }

  detach(lease: bigint, key: string): void {
    this.leases.get(lease)?.keys.delete(key);
  }
}
