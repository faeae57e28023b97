// List-then-watch for one resource, forever: every object seen becomes a queue key. A watch
// that ends (server timeout, network error) restarts from the last resourceVersion seen; a
// watch the server answers with 410 Gone (that version was compacted away) relists first.
// The informer in @kubernetes/client-node stops on errors and leaves restarting to the
// caller; this is that caller, kept small.

import * as k8s from "@kubernetes/client-node";
import type { Logger } from "pino";

export interface Listed {
  readonly keys: string[];
  readonly resourceVersion: string;
}

export interface WatchSpec {
  readonly name: string;
  /** API path of the collection, e.g. /apis/etcd.etcd-ts.io/v1alpha1/etcdclusters. */
  readonly path: string;
  readonly labelSelector?: string;
  readonly list: () => Promise<Listed>;
  /** Queue key for a watched object, or undefined to ignore it. */
  readonly keyOf: (obj: { metadata?: { name?: string; namespace?: string; labels?: Record<string, string> } }) => string | undefined;
}

/** What to do after a watch event or the end of a watch. */
export type WatchStep = "continue" | "relist" | "rewatch";

export function stepAfterEvent(type: string, obj: unknown): WatchStep {
  if (type !== "ERROR") return "continue";
  const code = (obj as { code?: unknown } | undefined)?.code;
  return code === 410 ? "relist" : "rewatch";
}

export function stepAfterDone(err: unknown): WatchStep {
  const code = (err as { statusCode?: unknown; code?: unknown } | null | undefined);
  if (code?.statusCode === 410 || code?.code === 410) return "relist";
  return "rewatch";
}

export class ListWatch {
  private stopped = false;
  private abort: AbortController | undefined;
  private rv = "";

  constructor(private readonly kc: k8s.KubeConfig, private readonly spec: WatchSpec, private readonly onKey: (key: string) => void, private readonly log: Logger) {}

  async run(): Promise<void> {
    let needList = true;
    let failures = 0;
    while (!this.stopped) {
      try {
        if (needList) {
          const l = await this.spec.list();
          for (const k of l.keys) this.onKey(k);
          this.rv = l.resourceVersion;
          needList = false;
        }
        const step = await this.watchOnce();
        failures = 0;
        if (step === "relist") {
          this.log.info({ watch: this.spec.name }, "resource version expired (410); relisting");
          needList = true;
        }
      } catch (err) {
        failures++;
        this.log.warn({ watch: this.spec.name, err: String(err) }, "watch failed; retrying");
        if (stepAfterDone(err) === "relist") needList = true;
        await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** failures, 30_000)));
      }
    }
  }

  private watchOnce(): Promise<WatchStep> {
    return new Promise<WatchStep>((resolve, reject) => {
      let step: WatchStep = "rewatch";
      const w = new k8s.Watch(this.kc);
      w.watch(this.spec.path, { resourceVersion: this.rv, allowWatchBookmarks: true, labelSelector: this.spec.labelSelector, timeoutSeconds: 300 },
        (type, obj) => {
          const s = stepAfterEvent(type, obj);
          if (s !== "continue") {
            step = s;
            this.abort?.abort();
            return;
          }
          const rv = (obj as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion;
          if (rv !== undefined) this.rv = rv;
          if (type === "BOOKMARK") return;
          const key = this.spec.keyOf(obj);
          if (key !== undefined) this.onKey(key);
        },
        (err) => {
          if (err !== null && err !== undefined && step === "rewatch" && !isAbort(err)) reject(err);
          else resolve(step);
        }).then((c) => { this.abort = c; }, reject);
    });
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }
}

function isAbort(err: unknown): boolean {
  return typeof err === "object" && err !== null && ((err as { name?: string }).name === "AbortError" || (err as { type?: string }).type === "aborted");
}
