// A work queue of cluster keys ("namespace/name") with one worker: a key is never reconciled
// by two passes at once, a key added while queued is queued once, and a key added while its
// pass runs is run again afterwards (so no event is lost between gather and status).

export type Worker = (key: string) => Promise<{ requeueAfterMs?: number } | undefined>;

export class WorkQueue {
  private readonly pending = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly failures = new Map<string, number>();
  private running = false;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(private readonly worker: Worker, private readonly onError: (key: string, err: unknown) => void) {}

  add(key: string): void {
    if (this.stopped) return;
    this.pending.add(key);
    this.wake?.();
  }

  /** Adds the key after a delay; a later call for the same key replaces an earlier one. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timers.get(key));
    const t = setTimeout(() => { this.timers.delete(key); this.add(key); }, ms);
    t.unref();
    this.timers.set(key, t);
  }

  /** Error back-off: 1 s doubling to 2 min. */
  static backoffMs(failures: number): number {
    return Math.min(1000 * 2 ** Math.max(0, failures - 1), 120_000);
  }

  async run(): Promise<void> {
    if (this.running) throw new Error("WorkQueue.run called twice");
    this.running = true;
    while (!this.stopped) {
      const key = this.pending.values().next().value as string | undefined;
      if (key === undefined) {
        await new Promise<void>((r) => { this.wake = r; });
        this.wake = undefined;
        continue;
      }
      this.pending.delete(key);
      try {
        const r = await this.worker(key);
        this.failures.delete(key);
        if (r?.requeueAfterMs !== undefined) this.addAfter(key, r.requeueAfterMs);
      } catch (err) {
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        this.onError(key, err);
        this.addAfter(key, WorkQueue.backoffMs(n));
      }
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.wake?.();
  }
}
