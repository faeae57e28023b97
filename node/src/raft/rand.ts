// A small seeded pseudo-random source, so that a raft node (and a whole simulated
// cluster) is a pure function of its seed. The consensus core never touches
// Math.random.

/** The random source raft takes through its config. */
export interface Rand {
  /** A uniformly distributed integer in [0, n). n must be a positive safe integer below 2^32. */
  intn(n: number): number;
}

/**
 * SplitMix32-style generator (32-bit state; Mulberry32 mixing). Fast, tiny, and
 * plenty for election jitter and fault schedules; not for cryptography.
 */
export class SeededRand implements Rand {
  private state: number;

  constructor(seed: number | bigint) {
    // Fold a bigint seed into 32 bits so that large seeds still vary the stream.
    let s = typeof seed === "bigint" ? Number(BigInt.asUintN(32, seed ^ (seed >> 32n))) : seed >>> 0;
    s = (s ^ 0x9e3779b9) >>> 0;
    this.state = s;
  }

  /** Next 32-bit unsigned value. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  intn(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new RangeError(`intn(${n})`);
    // Rejection sampling keeps the distribution uniform for any n.
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const v = this.next();
      if (v < limit) return v % n;
    }
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next() / 0x100000000;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** An integer in [lo, hi] inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.intn(hi - lo + 1);
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError("pick from empty list");
    return xs[this.intn(xs.length)]!;
  }

  /** A new independent stream derived from this one. */
  fork(): SeededRand {
    return new SeededRand(this.next());
  }
}
