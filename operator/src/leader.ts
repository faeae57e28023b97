// Leader election on a coordination.k8s.io/v1 Lease, so two operator replicas never act at
// once. The same rules as client-go's leaderelection: a holder renews every retry period; a
// lease not renewed for leaseDurationSeconds may be taken over; writes use the lease's
// resourceVersion, so of two candidates racing for an expired lease exactly one wins. A leader
// that cannot renew within the renew deadline stops acting (the process exits and restarts).

import * as k8s from "@kubernetes/client-node";
import { isStatus } from "./kube.js";

export interface LeaseState {
  readonly holder: string | undefined;
  readonly renewTimeMs: number | undefined;
  readonly durationSeconds: number | undefined;
}

/** What a candidate does with the lease as it finds it (pure). */
export function leaseDecision(lease: LeaseState | undefined, identity: string, nowMs: number): "create" | "renew" | "takeover" | "wait" {
  if (lease === undefined) return "create";
  if (lease.holder === identity) return "renew";
  if (lease.holder === undefined || lease.holder === "") return "takeover";
  const expires = (lease.renewTimeMs ?? 0) + (lease.durationSeconds ?? 15) * 1000;
  return nowMs > expires ? "takeover" : "wait";
}

/** Lease times are MicroTime (six fractional digits); a plain Date would send three and be refused. */
const micro = (ms: number): k8s.V1MicroTime => new k8s.V1MicroTime(ms);

export interface ElectorOptions {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationSeconds: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

export class LeaderElector {
  private readonly api: k8s.CoordinationV1Api;
  private lastRenewMs = 0;
  private leading = false;
  private stopped = false;

  constructor(kc: k8s.KubeConfig, private readonly o: ElectorOptions, private readonly now: () => number = Date.now) {
    this.api = kc.makeApiClient(k8s.CoordinationV1Api);
  }

  get isLeader(): boolean {
    return this.leading && this.now() - this.lastRenewMs < this.o.renewDeadlineMs;
  }

  /** Tries once; true when this candidate holds the lease afterwards. */
  async tryOnce(): Promise<boolean> {
    const { namespace, name, identity } = this.o;
    let lease: k8s.V1Lease | undefined;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
    }
    const state: LeaseState | undefined = lease === undefined ? undefined : {
      holder: lease.spec?.holderIdentity,
      renewTimeMs: lease.spec?.renewTime === undefined ? undefined : new Date(lease.spec.renewTime).getTime(),
      durationSeconds: lease.spec?.leaseDurationSeconds,
    };
    const decision = leaseDecision(state, identity, this.now());
    if (decision === "wait") return false;
    const now = this.now();
    const spec: k8s.V1LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: this.o.leaseDurationSeconds,
      renewTime: micro(now),
      acquireTime: micro(decision === "renew" && lease?.spec?.acquireTime !== undefined ? new Date(lease.spec.acquireTime).getTime() : now),
      leaseTransitions: (lease?.spec?.leaseTransitions ?? 0) + (decision === "takeover" ? 1 : 0),
    };
    try {
      if (decision === "create") {
        await this.api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec } });
      } else {
        await this.api.replaceNamespacedLease({ name, namespace, body: { metadata: { ...lease?.metadata, name, namespace }, spec } });
      }
    } catch (err) {
      if (isStatus(err, 409)) return false; // someone else wrote first
      throw err;
    }
    this.lastRenewMs = this.now();
    this.leading = true;
    return true;
  }

  /** Resolves once leading; then keeps renewing and calls onLost if leadership is lost. */
  async run(onLeading: () => void, onLost: () => void): Promise<void> {
    let announced = false;
    while (!this.stopped) {
      let ok = false;
      try {
        ok = await this.tryOnce();
      } catch {
        ok = false;
      }
      if (ok && !announced) {
        announced = true;
        onLeading();
      }
      if (announced && !this.isLeader) {
        this.leading = false;
        onLost();
        return;
      }
      await new Promise((r) => setTimeout(r, this.o.retryPeriodMs));
    }
  }

  /** Gives the lease up (sets holder to empty) so a successor need not wait for expiry. */
  async release(): Promise<void> {
    this.stopped = true;
    if (!this.leading) return;
    try {
      const lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      await this.api.replaceNamespacedLease({
        name: this.o.name, namespace: this.o.namespace,
        body: {
          ...lease,
          spec: {
            ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1,
            renewTime: micro(this.now()),
            acquireTime: lease.spec.acquireTime === undefined ? undefined : micro(new Date(lease.spec.acquireTime).getTime()),
          },
        },
      });
    } catch {
      /* best effort */
    }
  }
}
