// Inflights bounds the MsgApps a leader has sent to one follower and not yet seen
// acknowledged: at most `size` messages and (if maxBytes > 0) at most `maxBytes`
// payload bytes. It is a ring buffer of (last index in message, bytes).

export class Inflights {
  private start = 0;
  private cnt = 0;
  private bytes = 0;
  private readonly indexes: bigint[];
  private readonly sizes: number[];

  constructor(
    readonly size: number,
    readonly maxBytes: number,
  ) {
    if (size <= 0) throw new RangeError("inflights size must be positive");
    this.indexes = new Array<bigint>(size).fill(0n);
    this.sizes = new Array<number>(size).fill(0);
  }

  /** Records a sent message whose last entry is `index`. Indexes must be added in increasing order. */
  add(index: bigint, bytes: number): void {
    if (this.full()) throw new Error("cannot add into a full inflights");
    const next = (this.start + this.cnt) % this.size;
    this.indexes[next] = index;
    this.sizes[next] = bytes;
    this.cnt++;
    this.bytes += bytes;
  }

  /** Frees every message whose last index is <= `to` (they are acknowledged). */
  freeLE(to: bigint): void {
    if (this.cnt === 0 || to < this.indexes[this.start]!) return;
    let idx = this.start;
    let i = 0;
    let freedBytes = 0;
    for (; i < this.cnt; i++) {
      if (to < this.indexes[idx]!) break;
      freedBytes += this.sizes[idx]!;
      idx = (idx + 1) % this.size;
    }
    this.cnt -= i;
    this.bytes -= freedBytes;
    this.start = this.cnt === 0 ? 0 : idx;
  }

  /** No more messages may be sent: the count or the byte budget is exhausted. */
  full(): boolean {
    return this.cnt === this.size || (this.maxBytes !== 0 && this.bytes >= this.maxBytes);
  }

  count(): number {
    return this.cnt;
  }

  inflightBytes(): number {
    return this.bytes;
  }

  reset(): void {
    this.start = 0;
    this.cnt = 0;
    this.bytes = 0;
  }
}
