// ReadIndex bookkeeping on the leader (ReadOnlySafe): a read request records the
// commit index at arrival, and is released once a quorum of voters has answered
// a heartbeat carrying the request's context — proof that this node was still
// the leader after the request arrived, so no newer leader can have committed
// anything the read would miss.

import type { Message } from "./types.js";

export interface ReadIndexStatus {
  readonly req: Message;
  readonly index: bigint;
  readonly acks: Set<bigint>;
}

function key(ctx: Uint8Array): string {
  return Buffer.from(ctx).toString("hex");
}

export class ReadOnly {
  private pending = new Map<string, ReadIndexStatus>();
  /** Request keys in arrival order; a quorum ack for one releases all before it too. */
  private queue: string[] = [];

  /**
   * Starts tracking a read at commit index `index`. A request whose context is
   * already pending is ignored (contexts must be unique per request).
   */
  addRequest(index: bigint, m: Message): void {
    const k = key(m.context ?? new Uint8Array(0));
    if (this.pending.has(k)) return;
    this.pending.set(k, { req: m, index, acks: new Set() });
    this.queue.push(k);
  }

  /** Records a heartbeat ack for context `ctx`; returns the acks so far (undefined if unknown). */
  recvAck(id: bigint, ctx: Uint8Array): Set<bigint> | undefined {
    const rs = this.pending.get(key(ctx));
    if (rs === undefined) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /**
   * Releases the request with context `ctx` and every request queued before it
   * (a quorum that confirmed a later heartbeat round confirmed the earlier ones).
   */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const k = key(ctx);
    const at = this.queue.indexOf(k);
    if (at < 0) return [];
    const released = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: ReadIndexStatus[] = [];
    for (const rk of released) {
      const rs = this.pending.get(rk);
      if (rs === undefined) throw new Error("read index queue and pending map disagree");
      this.pending.delete(rk);
      out.push(rs);
    }
    return out;
  }

  /** The context of the newest pending request, piggybacked on periodic heartbeats. */
  lastPendingRequestCtx(): Uint8Array | undefined {
    const k = this.queue[this.queue.length - 1];
    if (k === undefined) return undefined;
    return this.pending.get(k)?.req.context;
  }

  pendingCount(): number {
    return this.queue.length;
  }
}
